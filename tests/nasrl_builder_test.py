"""The NAS-RL rules (Zoph & Le sec. 3.3) in the built Keras graph."""

import keras
import numpy as np
import tensorflow as tf

from nas_tf import config
from nas_tf import spaces
from nas_tf.builders import build_child
from nas_tf.ops import conv_ops

# Per layer: fh, fw, sh, sw, filters (choice indices), then input bits.
# Layer 0: 3x3 stride 2x2, 24 filters (reads the image).
# Layer 1: 1x1 stride 1, 36 filters, bit for layer 0 off -> reads the image.
# Layer 2: 3x3 stride 1, 48 filters, reads layer 0.
ARCH = "1 1 1 1 0   0 0 0 0 1 0   1 1 0 0 2 1 0"


def _model(arch=ARCH):
    space = spaces.get_space("nasrl_cnn", num_layers=3, predict_strides=True)
    return build_child(space, space.parse(arch), config.ChildConfig(
        image_size=32, num_classes=10))


def _kernels(model):
    # Conv kernel shapes by output width (the three layers differ).
    return {l.filters: tuple(l.kernel.shape) for l in model.layers
            if isinstance(l, keras.layers.Conv2D)}


def test_unconnected_layers_read_the_image():
    assert _kernels(_model()) == {24: (3, 3, 3, 24), 36: (1, 1, 3, 36),
                                  48: (3, 3, 24, 48)}


def test_dangling_outputs_are_zero_padded_and_concatenated():
    model = _model()
    # Layers 1 (32x32x36) and 2 (16x16x48) feed nothing: both reach the top,
    # layer 2 padded to 32x32.
    concat = [l for l in model.layers
              if isinstance(l, keras.layers.Concatenate)]
    assert [tuple(c.output.shape) for c in concat] == [(None, 32, 32, 84)]
    assert tuple(model.get_layer("logits").kernel.shape) == (84, 10)


def test_several_inputs_are_concatenated_in_depth():
    # Layer 2 reads layers 0 (16x16x24) and 1 (32x32x36): 60 channels.
    model = _model("1 1 1 1 0   0 0 0 0 1 0   1 1 0 0 2 1 1")
    assert _kernels(model)[48] == (3, 3, 60, 48)
    assert tuple(model.get_layer("logits").kernel.shape) == (48, 10)


def test_zero_padding_goes_to_bottom_and_right():
    x = keras.Input((2, 3, 1))
    y = conv_ops.zero_pad_to(x, 4, 4)
    out = keras.Model(x, y)(tf.ones((1, 2, 3, 1))).numpy()[0, ..., 0]
    expected = np.zeros((4, 4))
    expected[:2, :3] = 1
    np.testing.assert_array_equal(out, expected)
