"""Keras layers the ops need beyond Keras' own."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="nas_tf")
class Subsample(keras.layers.Layer):
    """Keeps every ``stride``-th row and column, from row/column ``offset``.

    After a stride-1 op this gives the strided op: TF's conv ops cannot
    stride a dilated conv, and pools subsampled from 0 centre like
    PyTorch's (see ``conv_ops``).
    """

    def __init__(self, stride: int, offset=(0, 0), **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)
        self.offset = tuple(int(o) for o in offset)

    def call(self, x):
        (oh, ow), s = self.offset, self.stride
        return x[:, oh::s, ow::s, :]

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        def size(d, o):
            return None if d is None else -(-(d - o) // self.stride)
        return (n, size(h, self.offset[0]), size(w, self.offset[1]), c)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride,
                "offset": self.offset}


class DropPathProgress:
    """How far training is, in [0, 1], shared by the DropPath layers of one
    model. Kept outside Keras' weight tracking so that parameter counts match
    the papers'; the trainer sets it every step."""

    def __init__(self):
        self.variable = tf.Variable(0.0, trainable=False, dtype=tf.float32,
                                    name="drop_path_progress")

    def assign(self, progress: float):
        self.variable.assign(min(max(float(progress), 0.0), 1.0))


@keras.saving.register_keras_serializable(package="nas_tf")
class DropPath(keras.layers.Layer):
    """Scheduled drop path: drops a whole op output per example.

    The drop probability is ``rate * progress``, so it grows linearly over
    training (NASNet slim ``_apply_drop_path``, DARTS ``drop_prob *
    epoch / epochs``, ENAS micro ``_apply_drop_path``); kept outputs are
    scaled by 1/keep. Active only in training.
    """

    def __init__(self, rate: float, progress: DropPathProgress = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.progress = progress or DropPathProgress()

    def call(self, x, training=None):
        if not training or self.rate <= 0:
            return x
        keep = 1.0 - self.rate * self.progress.variable
        shape = tf.stack([tf.shape(x)[0], 1, 1, 1])
        mask = tf.floor(keep + tf.random.uniform(shape, dtype=x.dtype))
        return x * mask / keep

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}
