"""ENAS macro fixed-architecture children (melodyguan/enas general_child.py,
``_model`` and ``_fixed_layer`` with a fixed arc, whole channels).

* Stem: 3x3 conv to ``filters`` -> BN.
* Layer k: ReLU -> 1x1 conv -> BN -> ReLU -> kxk conv -> BN on the previous
  output. With the code's quirk (``macro_separable_as_conv``, the default)
  the "separable" ops 1 and 3 are plain convs; without it, separable convs.
  The code has no fixed-mode pools; here pools (ops 4, 5) are ReLU -> 1x1
  conv -> BN -> 3x3 stride-1 pool, the first stage of the conv ops.
* Skips (k > 0): concat [selected earlier outputs, op output] -> ReLU -> 1x1
  conv -> BN, even when no skip is selected.
* Pooling after layers ``L//3 - 1`` and ``2 L//3 - 1``: the filters double
  and every output so far (stem included) goes through its own factorized
  reduction.
* Top: global average pool -> dropout -> FC without bias.
"""

import keras

from nas_tf.ops import conv_ops

# Kernel size of each conv op (general_child.py: [3, 3, 5, 5][op]).
KERNELS = {"conv_3x3": 3, "sep_conv_3x3": 3, "conv_5x5": 5,
           "sep_conv_5x5": 5}


def pool_layers(num_layers):
    """general_child.py: pool_distance = L // 3; [pd - 1, 2 pd - 1]."""
    distance = num_layers // 3
    return (distance - 1, 2 * distance - 1)


def _op(x, op, filters, s, separable_as_conv):
    x = conv_ops.relu_conv_bn(x, filters, 1, s)
    if op in KERNELS:
        separable = op.startswith("sep_") and not separable_as_conv
        return conv_ops.relu_conv_bn(x, filters, KERNELS[op], s,
                                     separable=separable)
    return conv_ops.pool(x, op[:3], 3)


def build(inputs, layers, config):
    """``layers`` is ``EnasMacroSpace.decode(arch)``; returns logits."""
    s = conv_ops.OpSettings(config.bn_momentum, config.bn_epsilon)
    filters = config.filters
    x = conv_ops.conv(inputs, config.stem_filters or filters, 3, s)
    outputs = [conv_ops.bn(x, s)]
    pools = pool_layers(len(layers))
    for k, (op, bits) in enumerate(layers):
        x = _op(outputs[-1], op, filters, s, config.macro_separable_as_conv)
        if k > 0:
            selected = [outputs[i] for i, bit in enumerate(bits) if bit]
            x = keras.layers.Concatenate()(selected + [x]) if selected else x
            x = conv_ops.relu_conv_bn(x, filters, 1, s)
        outputs.append(x)
        if k in pools:
            filters *= 2
            outputs = [conv_ops.factorized_reduce(o, filters, s,
                                                  relu_first=False)
                       for o in outputs]
    x = keras.layers.GlobalAveragePooling2D()(outputs[-1])
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout)(x)
    return keras.layers.Dense(config.num_classes, use_bias=False,
                              name="logits")(x)
