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


@keras.saving.register_keras_serializable(package="nas_tf")
class EvenOddPixels(keras.layers.Layer):
    """The two inputs of a factorized reduction: ``x[:, ::2, ::2]`` and
    ``x[:, 1::2, 1::2]``, the image zero-padded bottom/right to an even size
    first (so the second reads a zero row/column past an odd edge, as the
    originals' shift-by-one-then-stride-2 does).

    Taken as two blocks of ``space_to_depth``: on CPU its gradient is a
    fraction of a strided slice's; the shifted path ran about 3x faster
    forward and backward than as a padded, cropped, strided-conv input.
    """

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        if h is None or w is None:
            x = tf.pad(x, [[0, 0], [0, tf.shape(x)[1] % 2],
                           [0, tf.shape(x)[2] % 2], [0, 0]])
            return x[:, ::2, ::2, :], x[:, 1::2, 1::2, :]
        if h % 2 or w % 2:
            x = tf.pad(x, [[0, 0], [0, h % 2], [0, w % 2], [0, 0]])
        # Depth blocks of space_to_depth(2), NHWC: (row, column) offsets
        # (0, 0), (0, 1), (1, 0), (1, 1).
        blocks = tf.split(tf.nn.space_to_depth(x, 2), 4, axis=-1)
        return blocks[0], blocks[3]

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        half = (None if h is None else -(-h // 2),
                None if w is None else -(-w // 2))
        return (n, *half, c), (n, *half, c)


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

    The masks come from a Keras ``SeedGenerator`` (stateless draws from a
    state variable, as ``keras.layers.Dropout``), so checkpointing that
    state with the weights (``replica_loop.model_variables``) makes a
    resumed run draw the masks the uninterrupted one would.
    """

    def __init__(self, rate: float, progress: DropPathProgress = None,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.progress = progress or DropPathProgress()
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.rate <= 0:
            return x
        keep = 1.0 - self.rate * self.progress.variable
        if keep.dtype != x.dtype:  # mixed precision: a 16-bit x
            keep = tf.cast(keep, x.dtype)
        shape = tf.stack([tf.shape(x)[0], 1, 1, 1])
        draw = keras.random.uniform(shape, dtype=x.dtype,
                                    seed=self.seed_generator)
        mask = tf.floor(keep + draw)
        return x * mask / keep

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@tf.custom_gradient
def max_pool_3x3_in_branch(x):
    """3x3 stride-1 SAME max pool whose gradient recomputes the pool.

    In a switch_case branch TF 2.21's oneDNN rewrite cannot pair the
    gradient with its forward pool (the forward output reaches the gradient
    branch wrapped in an Optional), and the fallback MaxPoolGrad kernel was
    about 10x slower on CPU (measured at 32x32x20, batch 32; in the ENAS
    macro supernet's training step at batch 32 with every layer a max pool,
    0.31 s against 0.15 s for average pools). Recomputing the pool next to
    its gradient restores the fast kernel, for one extra (cheap) forward
    pool.
    """
    window = dict(ksize=[1, 3, 3, 1], strides=[1, 1, 1, 1], padding="SAME")

    def grad(dy):
        return tf.raw_ops.MaxPoolGrad(
            orig_input=x, orig_output=tf.nn.max_pool2d(x, 3, 1, "SAME"),
            grad=dy, **window)

    return tf.nn.max_pool2d(x, 3, 1, "SAME"), grad


@keras.saving.register_keras_serializable(package="nas_tf")
class MaxPool3x3InBranch(keras.layers.Layer):
    """``max_pool_3x3_in_branch`` as a layer, for functional models that
    run inside a switch_case branch."""

    def call(self, x):
        return max_pool_3x3_in_branch(x)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="nas_tf")
class FusedBatchNorm(keras.layers.BatchNormalization):
    """``BatchNormalization`` of NHWC images with TF's fused kernel.

    The same weights (gamma, beta, moving mean and variance) and output as
    Keras's layer, in one op each way: Keras's takes the moments, normalises
    and rescales in separate ops, about twice as slow forward and backward
    on CPU. As in TF1's ``fused_batch_norm`` with ``assign_moving_average``
    (the ENAS code's ``batch_norm``), the moving variance averages the
    unbiased batch variance (Keras's averages the biased one). Other ranks
    and axes fall back to Keras's computation.
    """

    def call(self, inputs, training=None, mask=None):
        if (len(inputs.shape) != 4 or self.axis not in (-1, 3) or mask is not
                None or not (self.center and self.scale)):
            return super().call(inputs, training=training, mask=mask)
        training = bool(training) and self.trainable
        empty = tf.constant([], self.moving_mean.dtype)
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=self.gamma.value, offset=self.beta.value,
            mean=empty if training else self.moving_mean.value,
            variance=empty if training else self.moving_variance.value,
            epsilon=self.epsilon, exponential_avg_factor=1.0,
            data_format="NHWC", is_training=training)
        if training:
            decay = self.momentum
            self.moving_mean.assign(self.moving_mean * decay
                                    + mean * (1.0 - decay))
            self.moving_variance.assign(self.moving_variance * decay
                                        + variance * (1.0 - decay))
        return outputs
