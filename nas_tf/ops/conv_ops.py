"""Convolutional building blocks, applied to Keras tensors (functional API).

Conventions shared by the originals: convolutions have no bias (a BN
follows), "ReLU -> conv -> BN" order (NASNet paper A.4, DARTS operations.py,
ENAS micro_child.py), separable convs with depth multiplier 1, SAME padding.
"""

import dataclasses

import keras

from nas_tf.ops import layers as nas_layers


@dataclasses.dataclass(frozen=True)
class OpSettings:
    """Settings every op shares within one child network.

    ``symmetric_padding``: strided ops pad like PyTorch (the same amount on
    every side, so output pixel i is centred on input pixel 2i) instead of
    TF's SAME (the odd row and column go bottom/right, centring on 2i + 1).
    The DARTS family sets it so that pixels line up as in the original.

    ``fused_bn``: BatchNorm with TF's fused kernel (``layers.FusedBatchNorm``:
    the same weights and outputs, about twice as fast on CPU; the moving
    variance averages the unbiased batch variance, as TF1's code did).
    """

    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    kernel_initializer: str = "he_normal"
    symmetric_padding: bool = False
    fused_bn: bool = False


def channels(x) -> int:
    return int(x.shape[-1])


def spatial(x):
    return tuple(x.shape[1:3])


def relu(x):
    return keras.layers.ReLU()(x)


def bn(x, s: OpSettings, name=None):
    cls = (nas_layers.FusedBatchNorm if s.fused_bn
           else keras.layers.BatchNormalization)
    return cls(momentum=s.bn_momentum, epsilon=s.bn_epsilon, name=name)(x)


def conv(x, filters, kernel, s: OpSettings, stride=1, dilation=1,
         separable=False, padding="same", name=None):
    """A bias-free conv. TF has no strided dilated conv: one runs at stride 1
    and is then subsampled (``Subsample``) from the pixel where the strided
    conv would centre its first window."""
    kh, kw = _pair(kernel)
    extent = (dilation * (kh - 1) + 1, dilation * (kw - 1) + 1)
    strides = _pair(stride)
    offset = (0, 0)
    if max(strides) > 1 and padding == "same":
        if s.symmetric_padding:
            pad = ((extent[0] - 1) // 2, (extent[1] - 1) // 2)
            if any(pad):
                x = keras.layers.ZeroPadding2D(pad)(x)
            padding = "valid"
        else:
            offset = tuple(_same_offset(n, k, st) for n, k, st
                           in zip(spatial(x), extent, strides))
    sub = 1
    if dilation > 1 and max(strides) > 1:
        if strides[0] != strides[1]:
            raise ValueError(f"a strided dilated conv needs one stride for "
                             f"both axes, got {stride}")
        sub = strides[0]
    kwargs = dict(strides=strides if sub == 1 else 1, dilation_rate=dilation,
                  padding=padding, use_bias=False, name=name)
    if separable:
        layer = keras.layers.SeparableConv2D(
            filters, kernel, depthwise_initializer=s.kernel_initializer,
            pointwise_initializer=s.kernel_initializer, **kwargs)
    else:
        layer = keras.layers.Conv2D(
            filters, kernel, kernel_initializer=s.kernel_initializer, **kwargs)
    x = layer(x)
    if sub == 1:
        return x
    layer.output_stride = sub  # read by describe.count_mult_adds
    return nas_layers.Subsample(sub, offset)(x)


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _same_offset(size, extent, stride):
    """The input index on which TF's strided SAME op centres its first
    output: 1 on even sizes (the extra padding goes bottom/right), else 0."""
    out = -(-size // stride)
    before = max((out - 1) * stride + extent - size, 0) // 2
    return (extent - 1) // 2 - before


def relu_conv_bn(x, filters, kernel, s: OpSettings, stride=1, dilation=1,
                 separable=False):
    x = conv(relu(x), filters, kernel, s, stride, dilation, separable)
    return bn(x, s)


def stacked_sep_conv(x, filters, kernel, s: OpSettings, stride=1, repeats=2):
    """``repeats`` x (ReLU -> separable conv -> BN), stride on the first only:
    NASNet's "applied twice" (paper A.4), DARTS ``SepConv``, ENAS ``_fixed_conv``."""
    for i in range(repeats):
        x = relu_conv_bn(x, filters, kernel, s, stride if i == 0 else 1,
                         separable=True)
    return x


def factorized_reduce(x, filters, s: OpSettings, stride=2, relu_first=True):
    """Halves the spatial size with two 1x1 stride-2 convs, the second on the
    input shifted by one pixel, concatenated to ``filters`` and batch-normed
    (slim ``factorized_reduction``, DARTS ``FactorizedReduce``, ENAS
    ``_factorized_reduction``). Stride 1 is a 1x1 conv + BN (slim)."""
    if relu_first:
        x = relu(x)
    if stride == 1:
        return bn(conv(x, filters, 1, s), s)
    # A 1x1 stride-2 conv reads x[::2, ::2]; the originals' second path, on
    # x shifted by one pixel (x[1:, 1:] with a zero border), reads
    # x[1::2, 1::2].
    even, odd = nas_layers.EvenOddPixels()(x)
    path1 = conv(even, filters // 2, 1, s)
    path2 = conv(odd, filters - filters // 2, 1, s)
    return bn(keras.layers.Concatenate()([path1, path2]), s)


def pool(x, kind, size, stride=1, symmetric_padding=False):
    """SAME max or average pooling; average excludes padding (as PyTorch's
    ``count_include_pad=False`` in DARTS and TF's SAME pooling in slim).
    ``symmetric_padding`` centres strided pools like PyTorch's (see
    ``OpSettings``): pool at stride 1, then subsample."""
    cls = {"max": keras.layers.MaxPooling2D,
           "avg": keras.layers.AveragePooling2D}[kind]
    if symmetric_padding and stride > 1:
        x = cls(size, strides=1, padding="same")(x)
        return nas_layers.Subsample(stride)(x)
    return cls(size, strides=stride, padding="same")(x)


def project(x, filters, s: OpSettings, stride=1):
    """ReLU -> 1x1 conv -> BN when the shape must change, else ``x``."""
    if stride == 1 and channels(x) == filters:
        return x
    return relu_conv_bn(x, filters, 1, s, stride)


def zero_pad_to(x, height, width):
    """Zero-pads bottom/right up to ``height`` x ``width`` (NAS-RL rule 4)."""
    dh, dw = height - x.shape[1], width - x.shape[2]
    if dh == 0 and dw == 0:
        return x
    return keras.layers.ZeroPadding2D(((0, dh), (0, dw)))(x)


def auxiliary_head(x, num_classes, s: OpSettings, pool_stride=3,
                   final_bn=True, enas_style=False):
    """The 0.4-weighted auxiliary classifier of NASNet/DARTS/ENAS: ReLU ->
    avg-pool 5 VALID -> 1x1 conv 128 -> BN -> ReLU -> conv over the remaining
    map to 768 -> BN -> ReLU -> linear. ``enas_style`` follows micro_child.py:
    that conv is SAME and global-average-pooled, and the linear layer has no
    bias. Layers are named ``aux_*`` so that parameter counts can leave them
    out, as the papers do."""
    x = keras.layers.ReLU(name="aux_relu0")(x)
    # 5x5 in the originals; smaller maps (tiny test sizes) pool whole.
    size = min(5, *spatial(x))
    x = keras.layers.AveragePooling2D(size, strides=pool_stride,
                                      padding="valid", name="aux_pool")(x)
    x = bn(conv(x, 128, 1, s, name="aux_conv1"), s, name="aux_bn1")
    x = keras.layers.ReLU(name="aux_relu1")(x)
    x = conv(x, 768, spatial(x), s, name="aux_conv2",
             padding="same" if enas_style else "valid")
    if final_bn:
        x = bn(x, s, name="aux_bn2")
    x = keras.layers.ReLU(name="aux_relu2")(x)
    if enas_style:
        x = keras.layers.GlobalAveragePooling2D(name="aux_pool2")(x)
    else:
        x = keras.layers.Flatten(name="aux_flatten")(x)
    return keras.layers.Dense(num_classes, use_bias=not enas_style,
                              name="aux_logits")(x)
