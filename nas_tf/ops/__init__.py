"""Op registries: op name -> Keras builder, one registry per family.

The same name means slightly different things in different originals (an
identity at stride 2 is a 1x1 conv in NASNet's slim code but a factorized
reduction in DARTS and ENAS), so each family has its own table. Every builder
has the signature ``op(x, filters, stride, settings) -> tensor``.
"""

from nas_tf.utils import registry
from nas_tf.ops import conv_ops
from nas_tf.ops.conv_ops import OpSettings


def _sep(k):
    return lambda x, f, stride, s: conv_ops.stacked_sep_conv(x, f, k, s, stride)


def _pool(kind, k):
    # A pool keeps the channels; slim/ENAS add a 1x1 when they must change.
    return lambda x, f, stride, s: conv_ops.project(
        conv_ops.pool(x, kind, k, stride, s.symmetric_padding), f, s)


def _conv(*kernels, dilation=1):
    def build(x, f, stride, s):
        for i, k in enumerate(kernels):
            x = conv_ops.relu_conv_bn(x, f, k, s, stride if i == 0 else 1,
                                      dilation)
        return x
    return build


def _identity_or(reduce):
    def build(x, f, stride, s):
        if stride == 1 and conv_ops.channels(x) == f:
            return x
        return reduce(x, f, stride, s)
    return build


def _factorized(x, f, stride, s):
    return conv_ops.factorized_reduce(x, f, s, stride)


def _enas_identity(x, f, stride, s):
    # micro_child.py _fixed_layer op 4: at stride 2 a factorized reduction
    # with no ReLU first (DARTS' starts with one); ReLU-1x1-BN if the width
    # still differs.
    if stride > 1:
        x = conv_ops.factorized_reduce(x, f, s, stride, relu_first=False)
    return conv_ops.project(x, f, s)


def _projection(x, f, stride, s):
    return conv_ops.project(x, f, s, stride)


def _dil_sep(k):
    # DARTS DilConv: ReLU -> depthwise kxk dilation 2 -> pointwise -> BN.
    return lambda x, f, stride, s: conv_ops.relu_conv_bn(
        x, f, k, s, stride, dilation=2, separable=True)


NASNET_OPS = registry.Registry("NASNet op")
ENAS_OPS = registry.Registry("ENAS micro op")
DARTS_OPS = registry.Registry("DARTS op")

for _name, _fn in {
        # NASNet paper sec. 3 list; wiring from slim nasnet_utils.py and the
        # paper's A.4 (ReLU -> conv -> BN; separable convs applied twice).
        "identity": _identity_or(_projection),
        "conv_1x3_3x1": _conv((1, 3), (3, 1)),
        "conv_1x7_7x1": _conv((1, 7), (7, 1)),
        "dil_conv_3x3": _conv(3, dilation=2),
        "avg_pool_3x3": _pool("avg", 3),
        "max_pool_3x3": _pool("max", 3),
        "max_pool_5x5": _pool("max", 5),
        "max_pool_7x7": _pool("max", 7),
        "conv_1x1": _conv(1),
        "conv_3x3": _conv(3),
        "sep_conv_3x3": _sep(3),
        "sep_conv_5x5": _sep(5),
        "sep_conv_7x7": _sep(7),
}.items():
    NASNET_OPS.register(_name)(_fn)

for _name, _fn in {
        # micro_child.py _fixed_layer: ops 0-4.
        "sep_conv_3x3": _sep(3),
        "sep_conv_5x5": _sep(5),
        "avg_pool_3x3": _pool("avg", 3),
        "max_pool_3x3": _pool("max", 3),
        "identity": _enas_identity,
}.items():
    ENAS_OPS.register(_name)(_fn)

for _name, _fn in {
        # cnn/operations.py OPS (all but 'none', which a derived cell lacks).
        "max_pool_3x3": _pool("max", 3),
        "avg_pool_3x3": _pool("avg", 3),
        "skip_connect": _identity_or(_factorized),
        "sep_conv_3x3": _sep(3),
        "sep_conv_5x5": _sep(5),
        "dil_conv_3x3": _dil_sep(3),
        "dil_conv_5x5": _dil_sep(5),
}.items():
    DARTS_OPS.register(_name)(_fn)

FAMILY_OPS = {"nasnet": NASNET_OPS, "enas": ENAS_OPS, "darts": DARTS_OPS}

__all__ = ["FAMILY_OPS", "OpSettings", "conv_ops"]
