"""Where the children of a batch train: one after another, several at once
on device groups of this machine, or on the workers of a TensorFlow
cluster.

A dispatcher's ``run(jobs, done)`` trains the children ``jobs`` (those of
one batch that the history lacks) and calls ``done(index, outcome,
seconds)`` in the calling thread as each finishes, in whatever order they
finish; the run commits them to the history in child order. Each child is
built from its own seed and trained on its own data order, so where and
beside what it trains does not change its outcome as long as it has the
same number of replicas: with the same seed a parallel or cluster search
writes the history a sequential one writes (timings aside).
"""

import concurrent.futures
import contextlib
import dataclasses
import queue
import threading
import time
from typing import Optional

import keras
import tensorflow as tf

from nas_tf import cluster as cluster_lib
from nas_tf import distribute
from nas_tf.training import child_program


@dataclasses.dataclass(frozen=True)
class Job:
    """Child ``index`` (0-based) with architecture ``arch`` of ``space``."""

    index: int
    space: object
    arch: object


class Sequential:
    """One child at a time under the evaluator's strategy
    (``--distribute``)."""

    name = "sequential"

    def __init__(self, evaluator):
        self.evaluator = evaluator

    def run(self, jobs, done):
        for job in jobs:
            began = time.time()
            outcome = self.evaluator.evaluate(job.space, job.arch, job.index)
            done(job.index, outcome, time.time() - began)


def _drain(futures: dict, done):
    """Calls ``done`` for each future as it completes. When a child fails,
    the others still finish and are handed to ``done`` (a finished child is
    never lost), then the first error is raised; a cancellation (what
    ClusterCoordinator gives the siblings of a failed closure) is raised
    only when there is nothing else. An interrupt cancels what has not
    started and is raised at once; children already training finish."""
    errors = []
    try:
        for future in concurrent.futures.as_completed(futures):
            try:
                index, outcome, seconds = future.result()
            except Exception as err:  # noqa: BLE001 - re-raised below
                errors.append(err)
                continue
            done(index, outcome, seconds)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    if errors:
        real = [e for e in errors
                if not isinstance(e, tf.errors.CancelledError)]
        raise (real or errors)[0]


class DeviceGroups:
    """One child per device group at once, each group trained by a thread
    of its own on the group's strategy (MirroredStrategy over two or more
    devices). Child ``i`` of a batch trains on group ``i % K``, after the
    group's earlier children. Every child of the batch is built first, in
    the calling thread: a build seeds TensorFlow, which clears the
    process's kernel caches, so none may happen while others train. The
    batch's models are dropped with Keras's state afterwards, so memory
    stays flat from batch to batch."""

    name = "device groups"

    def __init__(self, evaluator, groups: list):
        self.evaluator = evaluator
        self.groups = groups
        self.strategies = [distribute.group_strategy(g) for g in groups]

    def _place(self, strategy):
        # Language models have no replicas: the group's first device.
        if self.evaluator.config.kind == "text":
            return tf.device(strategy.extended.worker_devices[0])
        return contextlib.nullcontext()

    def _train_group(self, strategy, built_children, stop):
        """Trains one group's children in turn, yielding each result as it
        comes; stops early when ``stop`` is set."""
        for built, began in built_children:
            if stop.is_set():
                return
            with self._place(strategy):
                outcome = self.evaluator.train(built)
            built.model = None
            yield built.index, outcome, time.time() - began

    def run(self, jobs, done):
        k = len(self.strategies)
        per_group = [[] for _ in range(k)]
        for i, job in enumerate(jobs):
            strategy = self.strategies[i % k]
            began = time.time()
            with self._place(strategy):
                built = self.evaluator.build(job.space, job.arch, job.index,
                                             strategy)
            per_group[i % k].append((built, began))
        results, stop = queue.Queue(), threading.Event()

        def train(group):
            try:
                for result in self._train_group(
                        self.strategies[group], per_group[group], stop):
                    results.put(result)
            finally:
                results.put(None)

        pool = concurrent.futures.ThreadPoolExecutor(
            k, thread_name_prefix="child")
        try:
            futures = [pool.submit(train, g) for g in range(k)
                       if per_group[g]]
            running = len(futures)
            while running:
                result = results.get()
                if result is None:
                    running -= 1
                else:
                    done(*result)
            for future in futures:
                future.result()  # a group's error, once the others are done
        except BaseException:
            # Interrupted: the children in training finish, no more start.
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True)
            per_group.clear()
        keras.backend.clear_session(free_memory=True)


class ClusterFailure(RuntimeError):
    """The cluster lost a task it cannot do without (a parameter server),
    or the coordinator its connection to it."""


_LOST = (tf.errors.UnavailableError, tf.errors.AbortedError)


def _lost_task(err) -> ClusterFailure:
    return ClusterFailure(
        f"the cluster failed ({type(err).__name__}: "
        f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}). A "
        "parameter server or the coordinator's connection to the cluster was "
        "lost; relaunch the coordinator with the same command: it resumes "
        "from its last checkpoint and keeps every child already finished")


class Cluster:
    """Each child is one closure scheduled with ``ClusterCoordinator``: its
    whole training as one compiled program (``child_program``) that any
    worker runs, starting from the child's initial weights, so a closure
    re-run after its worker was lost gives the same outcome. The
    coordinator builds the children and keeps every decision; a lost
    worker's closures go to the others.

    Limits: the re-run is safe when the lost worker is dead; a worker cut
    off from the coordinator but still running would keep writing the
    child's weights on the parameter servers. The workers' data travels
    inside the per-worker dataset's graph, so a training split over 2 GB
    (a protocol buffer's limit) cannot be sent.
    """

    name = "cluster"

    def __init__(self, evaluator, strategy, coordinator, data):
        self.evaluator = evaluator
        self.strategy, self.coordinator = strategy, coordinator
        element = child_program.data_element(data)
        try:
            # Every worker holds the data once; a program reads it whole.
            self.iterator = iter(coordinator.create_per_worker_dataset(
                lambda: tf.data.Dataset.from_tensors(element).repeat()))
        except _LOST as err:
            raise _lost_task(err) from None

    def run(self, jobs, done):
        try:
            self._run(jobs, done)
        except _LOST as err:
            raise _lost_task(err) from None

    def _run(self, jobs, done):
        futures = {}
        with concurrent.futures.ThreadPoolExecutor(
                max(len(jobs), 1), thread_name_prefix="fetch") as pool:
            for job in jobs:
                built = self.evaluator.build(job.space, job.arch, job.index,
                                             self.strategy)
                if built.model is None:
                    done(job.index, built.outcome, 0.0)
                    continue
                program = child_program.ChildProgram(
                    built.model, self.evaluator.data,
                    self.evaluator.config.child_train, self.strategy,
                    built.seed, self.evaluator.config.precision)
                value = self.coordinator.schedule(
                    program.run, args=program.schedule_args(self.iterator))
                futures[pool.submit(self._fetch, built, program, value,
                                    time.time())] = job
            _drain(futures, done)
        futures.clear()  # the batch's models and programs, before clearing
        keras.backend.clear_session(free_memory=True)

    def _fetch(self, built, program, value, began):
        """The child's outcome; ``seconds`` from scheduling to the result
        (time waiting for a free worker included)."""
        result = program.result(*value.fetch())
        return (built.index, self.evaluator.finish_image(built, result),
                time.time() - began)


@dataclasses.dataclass(frozen=True)
class Execution:
    """How a search spreads its children. ``parallel_children`` and the
    cluster do not change a child's numbers, so a run may resume under
    others; ``devices_per_child`` does (it is the replica count).

    Attributes:
      parallel_children: Children of a batch that train at once, each on
        its own device group (1: one at a time, on ``--distribute``'s
        devices).
      devices_per_child: Devices of each group (MirroredStrategy over
        them when more than 1: the split of each batch, and so the
        numbers, are those of a sequential run with that many replicas).
      cluster: The chief's task in a TensorFlow cluster (``TF_CONFIG``):
        children are closures on its workers; the two settings above are
        then unused.
    """

    parallel_children: int = 1
    devices_per_child: int = 1
    cluster: Optional[cluster_lib.Task] = None

    @property
    def in_groups(self) -> bool:
        return self.parallel_children > 1 or self.devices_per_child > 1


def check_execution(execution: Execution, config) -> None:
    """Raises ValueError for settings ``config``'s search cannot use."""
    if execution.parallel_children < 1 or execution.devices_per_child < 1:
        raise ValueError(
            f"parallel_children={execution.parallel_children}, "
            f"devices_per_child={execution.devices_per_child}; both must be "
            "at least 1")
    spread = execution.in_groups or execution.cluster is not None
    if spread and config.strategy in ("enas", "darts"):
        raise ValueError(
            f"strategy={config.strategy!r} trains one supernet, with data "
            "parallelism over every device (--distribute); parallel children "
            "and cluster mode are for nasrl, random and evolution")
    if execution.cluster is not None and config.kind == "text":
        raise ValueError("cluster mode trains image children; language-model "
                         "children train on this machine (--parallel_children "
                         "works for them)")
    if execution.cluster is not None and execution.in_groups:
        raise ValueError(
            "parallel_children and devices_per_child are for one machine; on "
            "a cluster (TF_CONFIG) every worker trains one child at a time on "
            "its own devices")
    if config.kind == "text" and execution.devices_per_child > 1:
        raise ValueError(
            f"devices_per_child={execution.devices_per_child}: language-model "
            "children train on one device; use 1")


def connect(execution: Execution):
    """The chief's ``(ParameterServerStrategy, ClusterCoordinator)`` in
    cluster mode, else None. Call it before any variable or function
    exists: joining the cluster renames this process's devices (from
    ``/job:localhost`` to ``/job:chief``)."""
    if execution.cluster is None:
        return None
    return cluster_lib.coordinator(execution.cluster)


def make_dispatcher(execution: Execution, evaluator, data, connection=None):
    """The dispatcher ``execution`` asks for; ``connection`` is
    ``connect``'s."""
    if execution.cluster is not None:
        return Cluster(evaluator, *connection, data)
    if execution.in_groups:
        return DeviceGroups(evaluator, distribute.device_groups(
            execution.parallel_children, execution.devices_per_child))
    return Sequential(evaluator)
