"""Which tf.distribute strategy trains the children.

``auto``: MirroredStrategy over the visible GPUs when there are two or
more, else one device (the GPU or the CPU). ``mirrored``: MirroredStrategy
over all GPUs, or over all logical CPU devices when there is no GPU (how
tests exercise it). ``one_device``: the first GPU, else the CPU.
``make_strategy`` returns the same object for the same devices.
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
        devices = tuple(gpus or [
            d.name for d in tf.config.list_logical_devices("CPU")])
        key = ("mirrored", devices)
        if key not in _STRATEGIES:
            _STRATEGIES[key] = tf.distribute.MirroredStrategy(list(devices))
    else:
        key = ("one_device", gpus[0] if gpus else "/cpu:0")
        if key not in _STRATEGIES:
            _STRATEGIES[key] = tf.distribute.OneDeviceStrategy(key[1])
    return _STRATEGIES[key]


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
