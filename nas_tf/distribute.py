"""Which tf.distribute strategy trains the children.

``auto``: MirroredStrategy over the visible GPUs when there are two or
more, else one device (the GPU or the CPU). ``mirrored``: MirroredStrategy
over all GPUs, or over all logical CPU devices when there is no GPU (how
tests exercise it). ``one_device``: the first GPU, else the CPU.
``make_strategy`` returns the same object for the same devices.

A search with parallel children gives each child a device group of its
own (``device_groups``, ``group_strategy``).
"""

import tensorflow as tf

KINDS = ("auto", "mirrored", "one_device")


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


def split_batch(strategy: tf.distribute.Strategy, batch):
    """Spreads a global ``batch`` (a nest of tensors) over the replicas of
    ``strategy``, inside a ``tf.function``, for ``strategy.run``.

    Children use this instead of ``experimental_distribute_dataset``: each
    distributed dataset builds a multi-device iterator whose functions stay
    registered with the runtime after the dataset is gone, a few MB per
    child. Replica ``i`` gets the ``i``-th run of ``ceil(rows / replicas)``
    rows, as the distributed datasets split a batch.
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
