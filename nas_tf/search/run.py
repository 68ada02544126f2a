"""A search run: its directory, its loop, resuming it.

The run directory holds ``config.json`` (the frozen ``SearchConfig``),
``history.jsonl`` (one record per child), ``checkpoints/`` (the strategy's
learned state after every batch), TensorBoard events in ``search/`` (the run
TensorBoard lists as "search"), ``run.lock`` (held by the process working
in it), ``finished/`` (children that finished before an earlier child of
their batch, until they enter the history) and, at the end,
``best_arch.txt`` with ``best_arch.cfg`` (the flags of its space). Besides
the scalars, the events hold a drawing of the best architecture and a
table of the ten best (``nas_tf/search/review.py``).

Children are numbered from 1 wherever a person reads them (progress lines,
TensorBoard steps, the top table, the summary): child ``k`` is line ``k`` of
``history.jsonl``, whose ``step`` is ``k - 1``.

The loop works in batches (``SearchConfig.batch_size``: NAS-RL's ``m``
children per controller update, evolution's ``evolution_batch``, one child
by default). Batch ``b`` is proposed from the strategy's state after batch
``b - 1``, the history before it and ``(seed, b)`` alone, so after a kill
the run restores the last checkpoint, proposes the same batch again, takes
every child already in the history from there (never training it twice)
and trains only the missing ones. With the same seed the finished history
equals an uninterrupted run's.
"""

import dataclasses
import json
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from nas_tf.search import child_dispatch
from nas_tf.search import children
from nas_tf.search import finished_children
from nas_tf import distribute
from nas_tf.utils import fileio
from nas_tf.utils import run_lock
from nas_tf.search import history as history_lib
from nas_tf.utils import progress
from nas_tf.search import search_config
from nas_tf.search import review as search_review
from nas_tf import strategies
from nas_tf.data import datasets

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.jsonl"
BEST_FILE = "best_arch.txt"
# The space flags of the best child's space, a flagfile for train.py: with a
# depth schedule the best child's space is not the run's first.
BEST_SPACE_FILE = "best_arch.cfg"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_DIR = "search"
# Children finished but not yet in the history (an earlier child of their
# batch still trains); a killed run takes them from here.
FINISHED_DIR = "finished"
RELAUNCH_FILE = "flags.cfg"


@dataclasses.dataclass
class SearchResult:
    """The best child of a finished run and the whole history.

    ``best_space`` and ``best_space_params`` name the space the best child
    was sampled from: with a depth schedule it is not the first one.
    """

    best_tokens: str
    best_reward: float
    history: list
    best_space: str = ""
    best_space_params: dict = dataclasses.field(default_factory=dict)


def load_search_data(config: search_config.SearchConfig):
    """The data of ``config.dataset``: ``ImageData`` or an ``LmCorpus``."""
    return datasets.load_dataset(config.dataset, config.data_dir, config.seed,
                                 config.validation_size,
                                 manual_dir=config.manual_dir)


def make_strategy(config):
    if config.strategy == "nasrl":
        return strategies.NasrlStrategy(config.seed, config.all_spaces(),
                                        config.controller, config.reinforce)
    if config.strategy == "random":
        return strategies.RandomSearch(config.seed)
    return strategies.RegularizedEvolution(
        config.seed, config.population_size, config.sample_size,
        config.identity_mutation_probability, config.mutate_combine)


# Config fields that say where the data lives, not what the run is: a run
# resumes with its data moved.
LOCATION_FIELDS = ("data_dir", "manual_dir")


def check_run_directory(logdir: str, config) -> bool:
    """True if ``logdir`` holds a run to resume; raises if that run was
    started with a different config."""
    path = os.path.join(logdir, CONFIG_FILE)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        before = json.load(f)
    now = json.loads(config.to_json())
    # A field added since the run was written counts as its default (so
    # e.g. a run from before ``precision`` existed resumes in float32).
    defaults = json.loads(type(config)().to_json())
    changed = sorted(k for k in set(before) | set(now)
                     if k not in LOCATION_FIELDS and
                     before.get(k, defaults.get(k)) != now.get(k))
    if changed:
        raise ValueError(
            f"{logdir} holds a run with a different configuration (changed: "
            f"{', '.join(changed)}); resume it with its own flags "
            f"({os.path.join(logdir, 'flags.cfg')}) or use a new --logdir")
    return True


class SearchRun:
    """One run of ``config`` in ``logdir``; ``run()`` finishes it."""

    def __init__(self, config, logdir, data=None, log=print,
                 relaunch_flags=None, execution=None):
        """``relaunch_flags``: the command line's flags as a flagfile,
        written as ``flags.cfg`` so the run can be relaunched with them.
        ``execution``: where children train (``child_dispatch.Execution``;
        default one at a time)."""
        search_config.check_search_config(config)
        self.execution = execution or child_dispatch.Execution()
        child_dispatch.check_execution(self.execution, config)
        self.config, self.logdir, self.log = config, logdir, log
        resuming = check_run_directory(logdir, config)
        # Data first: a run that cannot get its data leaves no directory.
        self.data = load_search_data(config) if data is None else data
        created = not os.path.exists(logdir)
        os.makedirs(logdir, exist_ok=True)
        try:
            self.lock = run_lock.RunLock(logdir)
        except run_lock.RunDirectoryInUse:
            if created:
                shutil.rmtree(logdir, ignore_errors=True)
            raise
        try:
            self._start(resuming, relaunch_flags)
        except BaseException:
            self.lock.release()
            # A run that fails before its first child leaves nothing.
            if created:
                shutil.rmtree(logdir, ignore_errors=True)
            raise

    def _start(self, resuming, relaunch_flags):
        config, logdir, log = self.config, self.logdir, self.log
        if relaunch_flags is not None:
            fileio.write_file_atomically(
                os.path.join(logdir, RELAUNCH_FILE), relaunch_flags)
        if not resuming:
            fileio.write_file_atomically(os.path.join(logdir, CONFIG_FILE),
                                         config.to_json())
        self.history = history_lib.History(os.path.join(logdir, HISTORY_FILE))
        self.history.load()
        self._connection = child_dispatch.connect(self.execution)
        # On a cluster the children's strategy is the coordinator's
        # (``--distribute`` would list the remote tasks' devices).
        self.device_strategy = (
            self._connection[0] if self._connection is not None
            else distribute.make_strategy(config.distribute))
        # The controller's initial weights come from the run's seed.
        keras.utils.set_random_seed(config.seed)
        self.checkpoint = tf.train.Checkpoint(**self._build())
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(logdir, CHECKPOINT_DIR),
            max_to_keep=3)
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint) \
                .assert_existing_objects_matched()
        if resuming:
            log(f"resuming {logdir}: {self._resumed_line()}")
        self.writer = tf.summary.create_file_writer(
            os.path.join(logdir, SUMMARY_DIR))
        self._metric = ("valid_accuracy" if config.kind == "image"
                        else "valid_ppl")
        self.review = search_review.SearchReview(
            self.history, self.writer, self.space_of, self._metric, log)
        self._trained, self._training_began = 0, None
        self._finished = finished_children.FinishedChildren(
            os.path.join(logdir, FINISHED_DIR))

    def _build(self) -> dict:
        """Creates what the strategy learns and returns it as checkpoint
        items."""
        self.strategy = make_strategy(self.config)
        self.evaluator = children.ChildEvaluator(
            self.config, self.data, self.device_strategy, self.log)
        self.dispatcher = child_dispatch.make_dispatcher(
            self.execution, self.evaluator, self.data, self._connection)
        self.done = tf.Variable(0, dtype=tf.int64, trainable=False)
        return {"children": self.done, **self.strategy.checkpoint_items()}

    def _resumed_line(self) -> str:
        return (f"{len(self.history)} children in the history, the "
                f"strategy's state after {int(self.done)}")

    def space_of(self, index: int):
        """The search space of child ``index``: its batch's, since a batch
        takes the space of its first child (the depth schedule grows it)."""
        return self.config.space_at(index - index % self.config.batch_size)

    # -- the loop ----------------------------------------------------------
    def run(self) -> SearchResult:
        """Trains every child not in the history yet; releases the run
        directory however it ends."""
        try:
            return self._run()
        finally:
            self.lock.release()

    def _run(self) -> SearchResult:
        cfg = self.config
        m = cfg.batch_size
        start = int(self.done)
        self.review.update_best()  # a resumed run's best, from its history
        if self.dispatcher.name != "sequential":
            self.log(f"children train on {self._where()}")
        while start < cfg.num_children:
            count = min(m, cfg.num_children - start)
            space = self.space_of(start)
            proposed = self.strategy.propose(
                space, count, start // m, self.history.records[:start])
            records = self._train_batch(space, start, proposed)
            tokens = [r["decision_values"] for r in records]
            rewards = [r["reward"] for r in records]
            stats = self.strategy.learn(space, tokens, rewards)
            self.done.assign(start + count)
            self.manager.save(checkpoint_number=start + count)
            self._batch_summaries(space, start + count, tokens, stats)
            self.review.write_table(start + count)
            start += count
        return self._finish()

    def _where(self) -> str:
        if self.execution.cluster is not None:
            workers = len(self.execution.cluster.cluster["worker"])
            return f"the {workers} workers of the cluster (TF_CONFIG)"
        groups = self.dispatcher.groups
        return (f"{len(groups)} device groups at once: " +
                "; ".join(", ".join(g) for g in groups))

    def _train_batch(self, space, start, proposed) -> list:
        """The records of the batch's children: those in the history as
        they are, those finished but not yet in it (a parallel batch killed
        before its earlier children finished) from ``finished/``, the rest
        trained by the dispatcher. Each enters the history in child order,
        as soon as every child before it is there."""
        records, jobs = {}, []
        for i, values in enumerate(proposed):
            index = start + i
            if index < len(self.history):
                records[index] = self._recorded(index, values)
                # Killed between the history and the cleanup.
                self._finished.discard(index)
                continue
            arch = space.from_tokens(values)
            finished = self._finished.get(index, list(arch.tokens))
            if finished is not None:
                records[index] = finished
            else:
                jobs.append(child_dispatch.Job(index, space, arch))
        self._commit_ready(records)

        def done(index, outcome, seconds):
            job = next(j for j in jobs if j.index == index)
            records[index] = self._record(job, outcome, seconds)
            self._commit_ready(records)
            if index >= len(self.history):  # an earlier child still trains
                self._finished.put(records[index])

        if jobs and self._training_began is None:
            self._training_began = time.time()
        self.dispatcher.run(jobs, done)
        return [records[start + i] for i in range(len(proposed))]

    def _recorded(self, index, values) -> dict:
        record = self.history.records[index]
        if tuple(record["decision_values"]) != tuple(values):
            self.log(f"child {index + 1}: the resumed proposal differs "
                     f"from the recorded one; keeping the recorded child")
        return record

    def _record(self, job, outcome, seconds) -> dict:
        space, arch = job.space, job.arch
        self._trained += 1
        return json_record({
            "step": job.index, "child": job.index + 1,
            "tokens": space.format(arch),
            "decision_values": list(arch.tokens),
            "space": space.name, "space_params": space.params,
            "reward": outcome["reward"], "status": outcome["status"],
            "metrics": outcome["metrics"], "wall_time": round(seconds, 3)})

    def _commit_ready(self, records):
        """Appends to the history every record that is next in child
        order."""
        while len(self.history) in records:
            index = len(self.history)
            record = records[index]
            self.history.append(record)
            self._finished.discard(index)
            self.review.write_rewards(record)
            self._child_summaries(index, record)
            self.review.update_best()
            if self._training_began is not None:
                self._progress(index, record)

    # -- reporting ---------------------------------------------------------
    def _progress(self, index, record):
        best = self.history.best()
        # Wall time per child trained by this process: with parallel
        # children that is the batch's time shared by its children.
        per_child = ((time.time() - self._training_began) /
                     max(self._trained, 1))
        left = self.config.num_children - index - 1
        baseline = ""
        if self.config.strategy == "nasrl":
            baseline = (f" | baseline "
                        f"{float(self.strategy.learner.baseline.value):.4f}")
        metric = record["metrics"].get(self._metric)
        shown = f" | {self._metric} {metric:.4f}" if metric is not None else ""
        self.log(f"[child {index + 1}/{self.config.num_children}] reward "
                 f"{record['reward']:.4f}{shown}{baseline} | best "
                 f"{best['reward']:.4f} | {per_child:.1f} s/child | ETA "
                 f"{progress.duration(per_child * left)} | {record['tokens']}")

    def _child_summaries(self, index, record):
        with self.writer.as_default(step=index + 1):
            tf.summary.scalar("controller/reward", record["reward"])
            metric = record["metrics"].get(self._metric)
            if metric is not None:
                tf.summary.scalar(f"child/{self._metric}", metric)
            tf.summary.text("architecture",
                            f"reward {record['reward']:.4f}: "
                            f"{record['tokens']}")
        self.writer.flush()

    def _batch_summaries(self, space, step, tokens, stats):
        with self.writer.as_default(step=step):
            for key in ("baseline", "entropy", "loss"):
                if key in stats:
                    tf.summary.scalar(f"controller/{key}", stats[key])
            values = np.asarray(tokens)
            column = 0
            for d in space.decisions:
                width = d.num_tokens
                chunk = values[:, column:column + width]
                tf.summary.histogram(f"decisions/{d.name}",
                                     chunk.sum(1) if width > 1 else chunk)
                column += width
        self.writer.flush()

    def _finish(self) -> SearchResult:
        # A resumed run with nothing left to train still gets its table.
        self.review.write_table(len(self.history))
        best = self.history.best()
        space = self.space_of(best["step"])
        write_best(self.logdir, best["tokens"], space)
        self.log(f"search finished: {len(self.history)} children; best "
                 f"reward {best['reward']:.4f} (child {best['step'] + 1}): "
                 f"{best['tokens']}")
        rewards = [r["reward"] for r in self.history.records]
        quarter = len(rewards) // 4
        if quarter:
            self.log(f"mean reward of the first {quarter} children "
                     f"{np.mean(rewards[:quarter]):.4f}, of the last "
                     f"{quarter} {np.mean(rewards[-quarter:]):.4f}")
        return SearchResult(best["tokens"], best["reward"],
                            list(self.history.records), space.name,
                            dict(space.params))


def json_record(record: dict) -> dict:
    """``record`` as it reads back from history.jsonl (tuples as lists)."""
    return json.loads(json.dumps(record, default=list))


def write_best(logdir: str, tokens: str, space) -> None:
    """best_arch.txt and best_arch.cfg, the flags of its space."""
    fileio.write_file_atomically(os.path.join(logdir, BEST_FILE),
                                 tokens + "\n")
    fileio.write_file_atomically(
        os.path.join(logdir, BEST_SPACE_FILE),
        "".join(line + "\n" for line in space.as_flags()))


def run_class(config):
    """The run class of ``config.strategy``: ENAS and DARTS have their own
    loops."""
    if config.strategy == "darts":
        if config.kind == "text":
            from nas_tf.search import darts_lm_run
            return darts_lm_run.DartsLmRun
        from nas_tf.search import darts_run
        return darts_run.DartsRun
    if config.strategy == "enas":
        if config.kind == "text":
            from nas_tf.search import enas_lm_run
            return enas_lm_run.EnasLmRun
        from nas_tf.search import enas_run
        return enas_run.EnasRun
    return SearchRun


def run_search(config, logdir, data=None, log=print,
               execution=None) -> SearchResult:
    """Runs (or resumes) the search ``config`` in ``logdir``; ``execution``
    (``child_dispatch.Execution``) spreads NAS-RL's, random search's and
    evolution's children over device groups or a cluster."""
    cls = run_class(config)
    if cls is SearchRun:
        return SearchRun(config, logdir, data, log,
                         execution=execution).run()
    if execution is not None:
        child_dispatch.check_execution(execution, config)
    return cls(config, logdir, data, log).run()
