"""NAS-RL layer-wise CNNs (Zoph & Le 2016, sec. 3.3).

The paper's rules against compilation failures, one for one:
1. a layer with several inputs concatenates them in depth;
2. a layer with no input reads the image;
3. all layer outputs that feed no other layer are concatenated and sent to
   the classifier;
4. inputs of different sizes are zero-padded to the largest size.
The paper gives every layer "ReLU and batch norm" (sec. 4.1) and leaves the
rest open; our choices: conv -> BN -> ReLU in that order, zero padding at
the bottom/right, 3x3 stride-2 max pools for pooling layers, and global
average pooling + dense as the classifier.
"""

import keras

from nas_tf.ops import conv_ops


def concat_padded(tensors):
    """Rules 1 and 4: zero-pad to the largest size, concatenate in depth."""
    if len(tensors) == 1:
        return tensors[0]
    height = max(t.shape[1] for t in tensors)
    width = max(t.shape[2] for t in tensors)
    padded = [conv_ops.zero_pad_to(t, height, width) for t in tensors]
    return keras.layers.Concatenate()(padded)


def build(inputs, layers, config):
    """``layers`` is ``NasrlCnnSpace.decode(arch)``; returns logits."""
    s = conv_ops.OpSettings(config.bn_momentum, config.bn_epsilon)
    outputs = []
    for layer in layers:
        sources = [outputs[i] for i in layer["inputs"]] or [inputs]
        x = concat_padded(sources)
        if layer["kind"] == "conv":
            x = conv_ops.conv(x, layer["filters"], layer["kernel"], s,
                              stride=layer["strides"])
            x = conv_ops.relu(conv_ops.bn(x, s))
        else:
            x = conv_ops.pool(x, "max", 3, stride=2)
        outputs.append(x)
    read = {i for layer in layers for i in layer["inputs"]}
    x = concat_padded([o for i, o in enumerate(outputs) if i not in read])
    x = keras.layers.GlobalAveragePooling2D()(x)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout)(x)
    return keras.layers.Dense(config.num_classes, name="logits")(x)
