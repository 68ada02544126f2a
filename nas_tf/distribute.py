"""Which tf.distribute strategy trains the children.

``auto``: MirroredStrategy over the visible GPUs when there are two or
more, else one device (the GPU or the CPU). ``mirrored``: MirroredStrategy
over all GPUs, or over all logical CPU devices when there is no GPU (how
tests exercise it). ``one_device``: the first GPU, else the CPU.
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
            raise RuntimeError(
                f"cannot split the CPU into {num_devices} devices: TensorFlow "
                f"is already initialised with {existing}; split it first"
            ) from err


def make_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    if kind not in KINDS:
        raise ValueError(f"distribute={kind!r}; allowed: {', '.join(KINDS)}")
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "mirrored" or (kind == "auto" and len(gpus) > 1):
        devices = [d.name for d in gpus] or [
            d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus
                                           else "/cpu:0")
