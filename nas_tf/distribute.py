"""Which tf.distribute strategy trains the children.

``auto``: MirroredStrategy over the visible GPUs when there are two or
more, else one device (the GPU or the CPU). ``mirrored``: MirroredStrategy
over all GPUs, or over all logical CPU devices when there is no GPU (how
tests exercise it). ``one_device``: the first GPU, else the CPU.
``multi_worker``: MultiWorkerMirroredStrategy over the cluster that
``TF_CONFIG`` names (final training; ``resolve_kind`` picks it for ``auto``
when there is one). ``make_strategy`` returns the same object for the same
devices.

A search with parallel children gives each child a device group of its
own (``device_groups``, ``group_strategy``).
"""

import json
import os
from typing import Optional

import tensorflow as tf

from nas_tf import cluster as cluster_lib

MULTI_WORKER = "multi_worker"
KINDS = ("auto", "mirrored", "one_device", MULTI_WORKER)
# The tasks of a multi-worker cluster: all of them train; the chief (worker
# 0 when there is no chief) writes the run.
CLUSTER_ROLES = ("chief", "worker")


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into ``num_devices`` logical devices. Must run before
    TensorFlow initialises its devices (before any op runs)."""
    if num_devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as err:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != num_devices:
            raise ValueError(
                f"cannot split the CPU into {num_devices} devices: TensorFlow "
                f"is already initialised with {existing}; split it first"
            ) from err


# One strategy per kind and device list for the whole process: every
# MirroredStrategy numbers its collective all-reduces from the same keys, so
# two of them over the same devices would collide in the runtime (a shape
# mismatch error) once both have run.
_STRATEGIES = {}


def make_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    if kind not in KINDS:
        raise ValueError(f"distribute={kind!r}; allowed: {', '.join(KINDS)}")
    if kind == MULTI_WORKER:
        resolve_kind(kind)  # a clear error for a TF_CONFIG it cannot use
        key = (kind, ())
        if key not in _STRATEGIES:
            # Reads TF_CONFIG and sets up the collectives, which must happen
            # before TensorFlow initialises its devices (listing them does).
            _STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
        return _STRATEGIES[key]
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if kind == "mirrored" or (kind == "auto" and len(gpus) > 1):
        return _cached("mirrored", tuple(gpus or [
            d.name for d in tf.config.list_logical_devices("CPU")]))
    return _cached("one_device", (gpus[0] if gpus else "/cpu:0",))


def _cached(kind: str, devices: tuple) -> tf.distribute.Strategy:
    key = (kind, devices)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = (_mirrored(devices) if kind == "mirrored"
                            else tf.distribute.OneDeviceStrategy(devices[0]))
    return _STRATEGIES[key]


# Group keys each MirroredStrategy may use for its collectives.
_KEYS_PER_STRATEGY = 100_000


def _mirrored(devices: tuple) -> tf.distribute.MirroredStrategy:
    """A MirroredStrategy whose collectives' group keys start after those of
    every MirroredStrategy made before it. Each numbers its groups from the
    class's ``_collective_key_base``; two over different devices that run at
    once (parallel children) would otherwise join the same group and fail
    ("joining a group that is already full")."""
    made = sum(1 for kind, _ in _STRATEGIES if kind == "mirrored")
    cls = tf.distribute.MirroredStrategy
    saved = cls._collective_key_base
    cls._collective_key_base = saved + made * _KEYS_PER_STRATEGY
    try:
        return cls(list(devices))
    finally:
        cls._collective_key_base = saved


def multi_worker_task(
        tf_config: Optional[str] = None) -> Optional[cluster_lib.Task]:
    """This process's task of the cluster ``TF_CONFIG`` (or ``tf_config``)
    names; None when it names no cluster with worker tasks. Raises
    ValueError, naming what is wrong, for a TF_CONFIG multi-worker training
    cannot run under."""
    text = os.environ.get("TF_CONFIG", "") if tf_config is None \
        else tf_config
    task = cluster_lib.parse_tf_config(text)
    if task is None or not task.cluster.get("worker"):
        return None
    cluster = task.cluster
    others = sorted(set(cluster) - set(CLUSTER_ROLES))
    if others:
        raise ValueError(f"TF_CONFIG's cluster has {', '.join(others)} "
                         f"tasks; multi-worker training runs only "
                         f"{' and '.join(CLUSTER_ROLES)} tasks")
    if len(cluster.get("chief", [])) > 1:
        raise ValueError(f"TF_CONFIG's cluster has {len(cluster['chief'])} "
                         f"chief tasks; it may have one")
    return task


def resolve_kind(kind: str) -> str:
    """The strategy kind a final training runs with: ``auto`` becomes
    ``multi_worker`` when TF_CONFIG names a cluster with worker tasks;
    ``multi_worker`` requires one. Other kinds ignore TF_CONFIG."""
    if kind not in KINDS:
        raise ValueError(f"distribute={kind!r}; allowed: {', '.join(KINDS)}")
    if kind not in ("auto", MULTI_WORKER):
        return kind
    task = multi_worker_task()
    if task is not None:
        return MULTI_WORKER
    if kind == MULTI_WORKER:
        raise ValueError(f"distribute={MULTI_WORKER!r} needs TF_CONFIG "
                         f"naming a cluster with worker tasks and this "
                         f"process's task, e.g. {cluster_lib.TF_CONFIG_EXAMPLE}")
    return kind


def split_batch(strategy: tf.distribute.Strategy, batch):
    """Spreads a global ``batch`` (a nest of tensors) over the replicas of
    ``strategy``, inside a ``tf.function``, for ``strategy.run``.

    Children use this instead of ``experimental_distribute_dataset``: each
    distributed dataset builds a multi-device iterator whose functions stay
    registered with the runtime after the dataset is gone, a few MB per
    child. Replica ``i`` gets the ``i``-th run of ``ceil(rows / replicas)``
    rows, as the distributed datasets split a batch. Replica ids count
    over the whole cluster under MultiWorkerMirroredStrategy, so every
    worker builds the same global batch and keeps its replicas' rows.
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return batch

    def rows(tensor, replica):
        per_replica = -(-tf.shape(tensor)[0] // replicas)
        return tensor[replica * per_replica:(replica + 1) * per_replica]

    return strategy.experimental_distribute_values_from_function(
        lambda context: tf.nest.map_structure(
            lambda t: rows(t, context.replica_id_in_sync_group), batch))


def device_groups(groups: int, devices_per_group: int) -> list:
    """``groups`` disjoint tuples of ``devices_per_group`` device names:
    the GPUs in order, or the logical CPU devices when there is no GPU
    (``split_cpu``). Raises ValueError when there are too few."""
    if groups < 1 or devices_per_group < 1:
        raise ValueError(f"parallel_children={groups}, devices_per_child="
                         f"{devices_per_group}; both must be at least 1")
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    needed = groups * devices_per_group
    if needed > len(devices):
        kind = "GPUs" if gpus else ("logical CPU devices (split the CPU "
                                    "with --cpu_devices)")
        raise ValueError(
            f"parallel_children={groups} x devices_per_child="
            f"{devices_per_group} needs {needed} devices; this machine has "
            f"{len(devices)} {kind}")
    return [tuple(devices[g * devices_per_group:(g + 1) * devices_per_group])
            for g in range(groups)]


def group_strategy(devices: tuple) -> tf.distribute.Strategy:
    """The strategy of one device group: MirroredStrategy over two or more
    devices, else OneDeviceStrategy; the same object for the same devices
    (see ``_STRATEGIES``)."""
    return _cached("mirrored" if len(devices) > 1 else "one_device",
                   tuple(devices))
