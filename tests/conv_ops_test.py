"""Where strided ops centre their windows: TF's SAME (NASNet, ENAS) or
PyTorch's symmetric padding (DARTS). An impulse at an input pixel shows
which output pixels see it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf.ops import conv_ops


def _impulse_response(op, at=2):
    x = keras.Input((8, 8, 1))
    model = keras.Model(x, op(x))
    for w in model.weights:
        if "kernel" in w.path:
            w.assign(tf.ones_like(w))
    image = np.zeros((1, 8, 8, 1), np.float32)
    image[0, at, at, 0] = 1.0
    out = model(image).numpy()[0, ..., 0]
    rows = sorted({int(i) for i in np.nonzero(out)[0]})
    return rows, out.shape


def _conv(symmetric, **kwargs):
    s = conv_ops.OpSettings(symmetric_padding=symmetric)
    return lambda x: conv_ops.conv(x, 1, 3, s, stride=2, **kwargs)


# An impulse at row 2. PyTorch, kernel 3, stride 2, padding p = d: output i
# reads rows 2i - d, 2i, 2i + d. TF SAME on an even size: 2i + 1 - d,
# 2i + 1, 2i + 1 + d.
@pytest.mark.parametrize("op, expected_rows", [
    (_conv(True), [1]),                      # rows 1..3
    (_conv(True, separable=True), [1]),
    (_conv(True, dilation=2), [0, 1, 2]),    # taps 2i-2, 2i, 2i+2
    (_conv(False), [0, 1]),                  # rows 0..2 and 2..4
    (_conv(False, separable=True), [0, 1]),
    (_conv(False, dilation=2), []),          # taps 2i-1, 2i+1, 2i+3
    (lambda x: conv_ops.pool(x, "max", 3, 2, symmetric_padding=True), [1]),
    (lambda x: conv_ops.pool(x, "avg", 3, 2, symmetric_padding=True), [1]),
    (lambda x: conv_ops.pool(x, "max", 3, 2), [0, 1]),
], ids=["conv_sym", "sep_sym", "dil_sym", "conv_same", "sep_same",
        "dil_same", "max_sym", "avg_sym", "max_same"])
def test_strided_op_alignment(op, expected_rows):
    rows, shape = _impulse_response(op)
    assert shape == (4, 4)
    assert rows == expected_rows


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("kernel", [3, 5])
def test_strided_dilated_conv_equals_tf_same_with_a_spread_kernel(size,
                                                                  kernel):
    # TF cannot stride a dilated conv, but a dilation-2 kernel spread out
    # with zeros is an ordinary kernel it can stride: the reference.
    x = keras.Input((size, size, 2))
    model = keras.Model(x, conv_ops.conv(x, 3, kernel, conv_ops.OpSettings(),
                                         stride=2, dilation=2))
    weights = model.weights[0].numpy()
    spread = np.zeros((2 * kernel - 1, 2 * kernel - 1, 2, 3), np.float32)
    spread[::2, ::2] = weights
    images = np.random.default_rng(0).normal(size=(1, size, size, 2))
    images = images.astype(np.float32)
    expected = tf.nn.conv2d(images, spread, strides=2, padding="SAME")
    np.testing.assert_allclose(model(images), expected, rtol=1e-5, atol=1e-5)


def test_symmetric_avg_pool_excludes_padding_like_count_include_pad_false():
    x = tf.ones((1, 4, 4, 1))
    out = conv_ops.pool(x, "avg", 3, 2, symmetric_padding=True)
    np.testing.assert_allclose(out.numpy(), np.ones((1, 2, 2, 1)))


@pytest.mark.parametrize("size", [7, 8])
def test_factorized_reduction_convolves_even_and_shifted_pixels(size):
    # slim factorized_reduction, DARTS FactorizedReduce, ENAS
    # _factorized_reduction: 1x1 stride-2 convs of x and of x shifted by one
    # pixel (zero border), concatenated, then BN.
    x = keras.Input((size, size, 3))
    model = keras.Model(x, conv_ops.factorized_reduce(
        x, 5, conv_ops.OpSettings(), relu_first=False))
    k1, k2 = [w.numpy()[0, 0] for w in model.weights if "kernel" in w.path]
    assert (k1.shape, k2.shape) == ((3, 2), (3, 3))
    images = np.random.default_rng(1).normal(size=(2, size, size, 3))
    images = images.astype(np.float32)
    shifted = np.pad(images, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:]
    expected = np.concatenate([images[:, ::2, ::2] @ k1,
                               shifted[:, ::2, ::2] @ k2], axis=-1)
    # Fresh BN at inference: x / sqrt(1 + eps).
    np.testing.assert_allclose(model(images, training=False),
                               expected / np.sqrt(1 + 1e-5), rtol=1e-5,
                               atol=1e-5)
