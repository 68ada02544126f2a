"""The ops of the DARTS convolutional search network (quark0/darts
``cnn/operations.py`` and ``cnn/model_search.py`` ``MixedOp``).

Search mode differs from the derived network (``builders/cell_network``) in
two ways the original insists on: every BatchNorm in the cells has no scale
or offset (``affine=False``), and a pooling op is followed by such a
BatchNorm. Strided ops pad like PyTorch (the same on every side), so pixel
``i`` of a strided output is centred on input pixel ``2i`` as in the
original; TF's SAME would centre it on ``2i + 1``.

An op here is a plain object whose weights belong to the Keras layer that
made it (the edge's ``MixedOp`` or the cell): the network has 112 edges of
7 ops, and one Keras layer per edge instead of one per conv and BN makes
building and tracing it several times faster. All ops work in any float
dtype (float64 for the gradient tests), and under Keras's mixed policies
(``training/precision.py``): kernels are float32 variables read in the
16-bit compute dtype, while BatchNorm keeps its statistics, scale and
offset in float32, as Keras's own BatchNormalization does.
"""

import math

import keras
import tensorflow as tf

from nas_tf.ops import layers as nas_layers

# cnn/genotypes.py PRIMITIVES; column k of a cell's mixing weights is op k.
PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
              "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")

# Compute dtypes of the mixed policies; FusedBatchNormV3 takes them (and
# float32) with float32 statistics.
_HALF_DTYPES = (tf.float16, tf.bfloat16)


class BnSettings:
    """PyTorch's BatchNorm2d defaults (momentum 0.1, i.e. a 0.9 moving
    average; eps 1e-5), and ``synchronized``: under a strategy with several
    replicas, the statistics of the whole global batch (so data-parallel
    search normalises as one device would)."""

    def __init__(self, momentum=0.9, epsilon=1e-5, synchronized=False):
        self.momentum, self.epsilon = momentum, epsilon
        self.synchronized = synchronized


def torch_uniform(fan_in):
    """PyTorch 0.3's default init of conv and linear weights, which
    quark0/darts (pinned to torch 0.3.1) never overrides: U(-1/sqrt(n),
    1/sqrt(n)) with n the layer's input channels times its kernel area,
    for a depthwise conv too (its n is C k^2, not k^2)."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def kernel(owner, shape, name):
    """A conv kernel of ``owner`` (HWIO; depthwise: H, W, C, 1) with the
    original's default init."""
    return owner.add_weight(shape, torch_uniform(shape[0] * shape[1] *
                                                 shape[2]), name=name)


def moments(x):
    """Batch mean and (biased) variance over N, H, W. ``tf.nn.moments``
    stops the gradient of the mean inside the variance, harmless for first
    derivatives but it drops terms of second ones (the exact unrolled
    gradient came out 5% off the finite difference in float64 with it)."""
    mean = tf.reduce_mean(x, [0, 1, 2])
    return mean, tf.reduce_mean(tf.square(x - mean), [0, 1, 2])


class SearchBn:
    """``BatchNorm2d``, by default with ``affine=False`` as in the search
    cells: batch statistics in training (and the moving averages updated
    with the unbiased variance, as PyTorch does), the moving ones
    otherwise."""

    def __init__(self, owner, width, settings: BnSettings, name,
                 affine=False):
        self.settings = settings
        self.scale = self.offset = None
        if affine:
            # PyTorch 0.3's BatchNorm starts its scale U(0, 1).
            self.scale = owner.add_weight(
                (width,), keras.initializers.RandomUniform(0.0, 1.0),
                name=f"{name}_gamma", autocast=False)
            self.offset = owner.add_weight((width,), "zeros",
                                           name=f"{name}_beta",
                                           autocast=False)
        # Not autocast: under a mixed policy they stay float32 when read.
        self.mean = owner.add_weight((width,), "zeros", trainable=False,
                                     name=f"{name}_moving_mean",
                                     autocast=False)
        self.variance = owner.add_weight((width,), "ones", trainable=False,
                                         name=f"{name}_moving_variance",
                                         autocast=False)

    def __call__(self, x, training, weight=None):
        """``weight``: a scalar multiplying the output (an edge's mixing
        weight of this op, folded into the kernel's scale: one op instead
        of a BatchNorm and a product, and the weight's gradient comes with
        the BatchNorm's).

        16-bit ``x`` (mixed precision) is normalised with float32
        statistics: by the fused kernel, which takes 16-bit activations
        with float32 parameters, or else in float32 and cast back."""
        s = self.settings
        half = x.dtype in _HALF_DTYPES
        scale = self.scale
        if weight is not None:
            scale = tf.fill([x.shape[-1]],
                            tf.cast(weight, tf.float32 if half else x.dtype))
        replicas = tf.distribute.get_replica_context()
        synchronized = (s.synchronized and replicas is not None
                        and replicas.num_replicas_in_sync > 1)
        if training and not synchronized and (half or x.dtype == tf.float32):
            width = x.shape[-1]
            # One kernel normalises and moves the averages (with the
            # unbiased batch variance, as PyTorch): a few ops per BatchNorm
            # instead of a dozen, over the network's 930, is a smaller
            # graph to hold and compile.
            y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=tf.ones([width]) if scale is None else scale,
                offset=tf.zeros([width]) if self.offset is None
                else self.offset.value,
                mean=self.mean.value, variance=self.variance.value,
                epsilon=s.epsilon, exponential_avg_factor=1 - s.momentum,
                data_format="NHWC", is_training=True)
            self.mean.assign(mean)
            self.variance.assign(variance)
            return y
        if half:
            return tf.cast(self(tf.cast(x, tf.float32), training, weight),
                           x.dtype)
        if not training:
            return tf.nn.batch_normalization(
                x, self.mean.value, self.variance.value, self.offset,
                scale, s.epsilon)
        count = tf.cast(tf.size(x) // x.shape[-1], x.dtype)
        if synchronized:
            total, squares, count = replicas.all_reduce(
                "SUM", [tf.reduce_sum(x, [0, 1, 2]),
                        tf.reduce_sum(tf.square(x), [0, 1, 2]), count])
            mean = total / count
            variance = tf.maximum(squares / count - tf.square(mean), 0.0)
        else:
            mean, variance = moments(x)
        self._move(mean, variance * count / tf.maximum(count - 1, 1))
        return tf.nn.batch_normalization(x, mean, variance, self.offset,
                                         scale, s.epsilon)

    def _move(self, mean, unbiased):
        m = self.settings.momentum
        self.mean.assign(self.mean * m + tf.stop_gradient(mean) * (1 - m))
        self.variance.assign(self.variance * m +
                             tf.stop_gradient(unbiased) * (1 - m))


def _symmetric_pad(x, pad: int):
    if not pad:
        return x
    return tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])


class ReluConvBn:
    """``ReLUConvBN(affine=False)`` with a 1x1 conv (a cell's
    ``preprocess``)."""

    def __init__(self, owner, c_in, c_out, bn, name):
        self.kernel = kernel(owner, (1, 1, c_in, c_out), f"{name}_conv")
        self.bn = SearchBn(owner, c_out, bn, f"{name}_bn")

    def __call__(self, x, training):
        y = tf.nn.conv2d(tf.nn.relu(x), self.kernel, 1, "VALID")
        return self.bn(y, training)


class FactorizedReduce:
    """``FactorizedReduce(affine=False)``: ReLU -> [1x1 stride-2 conv on x ||
    the same on x shifted by one pixel] -> BN."""

    def __init__(self, owner, c_in, c_out, bn, name):
        half = c_out // 2
        self.kernels = (kernel(owner, (1, 1, c_in, half), f"{name}_conv1"),
                        kernel(owner, (1, 1, c_in, c_out - half),
                               f"{name}_conv2"))
        self.bn = SearchBn(owner, c_out, bn, f"{name}_bn")
        self.pixels = nas_layers.EvenOddPixels()

    def __call__(self, x, training, weight=None, relu_x=None):
        parts = self.pixels.call(tf.nn.relu(x) if relu_x is None
                                 else relu_x)
        y = tf.concat([tf.nn.conv2d(p, k, 1, "VALID")
                       for p, k in zip(parts, self.kernels)], axis=-1)
        return self.bn(y, training, weight)


class SepConv:
    """``SepConv``: two stacks of ReLU -> depthwise kxk -> pointwise 1x1 ->
    BN, the stride in the first; or, with ``dilation=2``, ``DilConv``: one
    such stack with a dilated depthwise conv."""

    def __init__(self, owner, width, size, stride, bn, name, dilation=1):
        self.stride, self.dilation = stride, dilation
        self.pad = dilation * (size - 1) // 2  # operations.py padding
        self.stacks = []
        for i in range(2 if dilation == 1 else 1):
            prefix = f"{name}_{i}"
            self.stacks.append((
                kernel(owner, (size, size, width, 1), f"{prefix}_depthwise"),
                kernel(owner, (1, 1, width, width), f"{prefix}_pointwise"),
                SearchBn(owner, width, bn, f"{prefix}_bn")))

    def __call__(self, x, training, weight=None, relu_x=None):
        last = len(self.stacks) - 1
        for i, (depthwise, pointwise, bn) in enumerate(self.stacks):
            stride = self.stride if i == 0 else 1
            x = relu_x if i == 0 and relu_x is not None else tf.nn.relu(x)
            if stride == 1:
                # At stride 1 TF's SAME pads an odd kernel as PyTorch does.
                x = tf.nn.depthwise_conv2d(x, depthwise, [1, 1, 1, 1],
                                           "SAME",
                                           dilations=[self.dilation] * 2)
            elif self.dilation == 1:
                x = tf.nn.depthwise_conv2d(
                    _symmetric_pad(x, self.pad), depthwise,
                    [1, stride, stride, 1], "VALID")
            else:
                # TF cannot stride a dilated depthwise conv: DilConv runs
                # at stride 1 and keeps every other pixel, from pixel 0.
                x = tf.nn.depthwise_conv2d(x, depthwise, [1, 1, 1, 1],
                                           "SAME",
                                           dilations=[self.dilation] * 2)
                x = x[:, ::stride, ::stride, :]
            x = bn(tf.nn.conv2d(x, pointwise, 1, "VALID"), training,
                   weight if i == last else None)
        return x


class PoolBn:
    """3x3 max or average pool (padding 1; the average excludes the padding,
    ``count_include_pad=False``), then BN, as ``MixedOp`` wraps pools. A
    strided pool pools at stride 1 and keeps every other pixel, so it
    centres like PyTorch's."""

    def __init__(self, owner, width, kind, stride, bn, name):
        self.kind, self.stride = kind, stride
        self.bn = SearchBn(owner, width, bn, f"{name}_bn")

    def __call__(self, x, training, weight=None, relu_x=None):
        pool = tf.nn.max_pool2d if self.kind == "max" else tf.nn.avg_pool2d
        y = pool(x, 3, 1, "SAME")
        if self.stride > 1:
            y = y[:, ::self.stride, ::self.stride, :]
        return self.bn(y, training, weight)


def _identity(x, training, weight=None, relu_x=None):
    return x if weight is None else tf.cast(weight, x.dtype) * x


def build_op(owner, name, width, stride, bn: BnSettings):
    """The search op ``name`` (a non-``none`` primitive) on ``width``
    channels, its weights ``owner``'s."""
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return PoolBn(owner, width, name[:3], stride, bn, name)
    if name == "skip_connect":
        if stride == 1:
            return _identity
        return FactorizedReduce(owner, width, width, bn, name)
    kind, _, size = name.split("_")
    return SepConv(owner, width, int(size[0]), stride, bn, name,
                   dilation=2 if kind == "dil" else 1)


def channel_shuffle(x, groups: int):
    """PC-DARTS ``channel_shuffle`` in NHWC: channel ``g * n + i`` (group g
    of ``groups``, ``n`` channels each) moves to ``i * groups + g``."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    y = tf.reshape(x, [-1, h, w, groups, c // groups])
    y = tf.transpose(y, [0, 1, 2, 4, 3])
    return tf.reshape(y, [-1, h, w, c])


class MixedOp(keras.layers.Layer):
    """One edge: ``sum_k w[k] * op_k(x)`` over the primitives (``none`` adds
    nothing, so it is not computed; its weight still takes its share of the
    softmax).

    Options of the follow-ups (both off in DARTS):

    * ``partial_channels`` K (PC-DARTS ``model_search.py`` ``MixedOp``):
      only the first C/K channels go through the ops; the others bypass
      them (max-pooled 2x2 on a strided edge) and are concatenated after
      them, then the channels are shuffled in K groups.
    * ``auxiliary_skip`` (DARTS- ``src/search/model_search.py``): ``beta *
      skip(x)`` is added outside the weighted sum, with skip the identity
      or, on a strided edge, a factorized reduction with weights of its
      own.
    """

    def __init__(self, filters, stride, bn: BnSettings, partial_channels=1,
                 auxiliary_skip=False, **kwargs):
        super().__init__(**kwargs)
        if filters % partial_channels:
            raise ValueError(
                f"partial_channels={partial_channels} must divide the "
                f"edge's {filters} channels")
        self.stride, self.k = stride, partial_channels
        self.width = filters // partial_channels
        self.ops = [build_op(self, name, self.width, stride, bn)
                    for name in PRIMITIVES[1:]]
        self.auxiliary = None
        if auxiliary_skip:
            self.auxiliary = (_identity if stride == 1 else FactorizedReduce(
                self, filters, filters, bn, "auxiliary_skip"))
        self.built = True

    def call(self, x, weights, auxiliary_weight=None, training=None):
        """``weights``: [len(PRIMITIVES)]; ``auxiliary_weight``: DARTS-'s
        beta (a scalar), when the edge has the auxiliary skip."""
        part = x[..., :self.width] if self.k > 1 else x
        # The convolutions all start with ReLU(x): computed once.
        relu_x = tf.nn.relu(part)
        weights = tf.unstack(weights)
        y = tf.add_n([op(part, training, weights[k + 1], relu_x)
                      for k, op in enumerate(self.ops)])
        if self.k > 1:
            rest = x[..., self.width:]
            if self.stride > 1:
                # MaxPool2d(2, 2); SAME keeps odd sizes' last row and
                # column, so the bypass matches the ops' ceil(n / 2).
                rest = tf.nn.max_pool2d(rest, 2, 2, "SAME")
            y = channel_shuffle(tf.concat([y, rest], axis=-1), self.k)
        if self.auxiliary is not None:
            y += auxiliary_weight * self.auxiliary(x, training)
        return y
