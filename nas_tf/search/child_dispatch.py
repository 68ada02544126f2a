"""Where the children of a batch train: one after another, several at once
on device groups of this machine, or on the workers of a TensorFlow
cluster.

A dispatcher's ``run(jobs, done)`` trains the children ``jobs`` (those of
one batch that the history lacks) and calls ``done(index, outcome,
seconds)`` in the calling thread as each finishes, in whatever order they
finish; the run commits them to the history in child order. Each child is
built from its own seed and trained on its own data order, so where and
beside what it trains does not change its outcome: with the same seed a
parallel or cluster search writes the history a sequential one writes.
"""

import concurrent.futures
import contextlib
import dataclasses
import queue
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
    """One child at a time under the evaluator's strategy (``--distribute``)."""

    name = "sequential"

    def __init__(self, evaluator):
        self.evaluator = evaluator

    def run(self, jobs, done):
        for job in jobs:
            began = time.time()
            outcome = self.evaluator.evaluate(job.space, job.arch, job.index)
            done(job.index, outcome, time.time() - began)


def _drain(futures: dict, done):
    """Calls ``done`` for each future as it completes; on an error or an
    interrupt, cancels what has not started and re-raises."""
    try:
        for future in concurrent.futures.as_completed(futures):
            index, outcome, seconds = future.result()
            done(index, outcome, seconds)
    except BaseException:
        for future in futures:
            future.cancel()
        raise


class DeviceGroups:
    """Up to one child per device group at once, each in a thread of its
    own, on the group's strategy (MirroredStrategy over two or more
    devices). Models are built one at a time (``ChildEvaluator.build``) and
    dropped with Keras's state after the batch, so memory stays flat."""

    name = "device groups"

    def __init__(self, evaluator, groups: list):
        self.evaluator = evaluator
        self.groups = groups
        self.strategies = [distribute.group_strategy(g) for g in groups]

    def _train(self, free: queue.Queue, job: Job):
        strategy = free.get()
        began = time.time()
        # Language models have no replicas: the group's first device.
        place = (tf.device(strategy.extended.worker_devices[0])
                 if self.evaluator.config.kind == "text"
                 else contextlib.nullcontext())
        try:
            with place:
                built = self.evaluator.build(job.space, job.arch, job.index,
                                             strategy)
                outcome = self.evaluator.train(built)
            built.model = None
            return job.index, outcome, time.time() - began
        finally:
            free.put(strategy)

    def run(self, jobs, done):
        free = queue.Queue()
        for strategy in self.strategies:
            free.put(strategy)
        with concurrent.futures.ThreadPoolExecutor(
                len(self.strategies), thread_name_prefix="child") as pool:
            _drain({pool.submit(self._train, free, job): job
                    for job in jobs}, done)
        keras.backend.clear_session(free_memory=True)


class ClusterFailure(RuntimeError):
    """The cluster lost a task it cannot do without (a parameter server),
    or the coordinator's connection to it."""


class Cluster:
    """Each child is one closure scheduled with ``ClusterCoordinator``: its
    whole training as one compiled program (``child_program``) that any
    worker runs, starting from the child's initial weights, so a closure
    re-run after its worker was lost gives the same outcome. The
    coordinator builds the children and keeps every decision; a lost
    worker's closures go to the others."""

    name = "cluster"

    def __init__(self, evaluator, strategy, coordinator, data):
        self.evaluator = evaluator
        self.strategy, self.coordinator = strategy, coordinator
        element = child_program.data_element(data)
        # Every worker holds the data once; a program reads it whole.
        self.iterator = iter(coordinator.create_per_worker_dataset(
            lambda: tf.data.Dataset.from_tensors(element).repeat()))

    def run(self, jobs, done):
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
                    built.seed)
                value = self.coordinator.schedule(
                    program.run, args=program.schedule_args(self.iterator))
                futures[pool.submit(self._fetch, built, program, value,
                                    time.time())] = job
            _drain(futures, done)
        futures.clear()  # the batch's models and programs, before clearing
        keras.backend.clear_session(free_memory=True)

    def _fetch(self, built, program, value, began):
        try:
            losses, correct = value.fetch()
        except (tf.errors.UnavailableError, tf.errors.AbortedError,
                tf.errors.CancelledError) as err:
            raise ClusterFailure(
                f"child {built.index + 1}: the cluster failed "
                f"({type(err).__name__}: {str(err).splitlines()[0]}). A "
                "parameter server or the coordinator's connection was lost; "
                "relaunch the coordinator with the same command: it resumes "
                "from its last checkpoint and keeps every child already "
                "finished") from None
        seconds = time.time() - began
        result = program.result(losses, correct, seconds)
        return built.index, self.evaluator.finish_image(built, result), seconds


@dataclasses.dataclass(frozen=True)
class Execution:
    """How a search spreads its children; not part of what the search is,
    so a run resumes under other settings.

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
