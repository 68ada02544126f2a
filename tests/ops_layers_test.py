"""The layers the ops add to Keras: DropPath, Subsample, EvenOddPixels,
FusedBatchNorm and the max pool for switch_case branches."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf.ops import layers


def test_drop_path_rate_grows_with_progress_and_rescales_kept_paths():
    progress = layers.DropPathProgress()
    drop = layers.DropPath(0.6, progress)
    x = tf.ones((20000, 1, 1, 1))
    progress.assign(0.5)  # drop probability 0.6 * 0.5 = 0.3
    y = drop(x, training=True).numpy().ravel()
    kept = y > 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    # The expectation is unchanged.
    assert abs(y.mean() - 1.0) < 0.03


def test_drop_path_drops_whole_examples_and_is_off_at_inference():
    progress = layers.DropPathProgress()
    drop = layers.DropPath(0.5, progress)
    x = tf.ones((64, 4, 4, 3))
    progress.assign(0.0)
    np.testing.assert_array_equal(drop(x, training=True), x)
    progress.assign(1.0)
    y = drop(x, training=True).numpy()
    per_example = y.reshape(64, -1)
    assert np.all((per_example == 0).all(1) | (per_example == 2).all(1))
    assert 0 < (per_example[:, 0] == 0).sum() < 64
    np.testing.assert_array_equal(drop(x, training=False), x)


def test_drop_path_progress_is_clipped_and_untracked():
    progress = layers.DropPathProgress()
    progress.assign(3.0)
    assert float(progress.variable.numpy()) == 1.0
    progress.assign(-1.0)
    assert float(progress.variable.numpy()) == 0.0
    assert layers.DropPath(0.3, progress).weights == []


def test_subsample_keeps_every_stride_th_pixel_from_the_first():
    x = tf.reshape(tf.range(5 * 5, dtype=tf.float32), (1, 5, 5, 1))
    y = layers.Subsample(2)(x).numpy()[0, ..., 0]
    np.testing.assert_array_equal(y, [[0, 2, 4], [10, 12, 14], [20, 22, 24]])
    assert layers.Subsample(2).compute_output_shape((None, 5, 5, 1)) == (
        None, 3, 3, 1)


@pytest.mark.parametrize("size", [5, 6])
def test_even_odd_pixels_reads_even_and_shifted_odd_pixels(size):
    x = tf.reshape(tf.range(size * size, dtype=tf.float32) + 1,
                   (1, size, size, 1))
    even, odd = layers.EvenOddPixels()(x)
    padded = np.pad(x.numpy(), [[0, 0], [0, 1], [0, 1], [0, 0]])
    np.testing.assert_array_equal(even, x.numpy()[:, ::2, ::2])
    # The originals' x[1:, 1:] with a zero border, then every second pixel.
    np.testing.assert_array_equal(odd, padded[:, 1:, 1:][:, ::2, ::2])
    half = -(-size // 2)
    assert layers.EvenOddPixels().compute_output_shape(
        (None, size, size, 1)) == ((None, half, half, 1),) * 2


def _bn_pair(x):
    gamma = np.linspace(0.5, 2.0, x.shape[-1]).astype(np.float32)
    beta = np.linspace(-1.0, 1.0, x.shape[-1]).astype(np.float32)
    pair = []
    for cls in (keras.layers.BatchNormalization, layers.FusedBatchNorm):
        bn = cls(momentum=0.9, epsilon=1e-3)
        bn.build(x.shape)
        bn.gamma.assign(gamma)
        bn.beta.assign(beta)
        pair.append(bn)
    return pair


def test_fused_batch_norm_trains_like_keras_batch_norm():
    x = tf.random.stateless_normal((4, 5, 5, 3), (1, 2)) * 3.0 + 1.0
    keras_bn, fused = _bn_pair(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        outputs = [bn(x, training=True) for bn in (keras_bn, fused)]
        losses = [tf.reduce_sum(y ** 3) for y in outputs]
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)
    grads = [tape.gradient(loss, [x, bn.gamma, bn.beta])
             for bn, loss in zip((keras_bn, fused), losses)]
    for g_keras, g_fused in zip(*grads):
        np.testing.assert_allclose(g_fused, g_keras, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(fused.moving_mean, keras_bn.moving_mean,
                               atol=1e-6)
    # The moving variance averages the unbiased batch variance (TF1's
    # fused_batch_norm), Keras's the biased one: n / (n - 1) apart.
    n = 4 * 5 * 5
    np.testing.assert_allclose(
        (fused.moving_variance.numpy() - 0.9) / 0.1,
        (keras_bn.moving_variance.numpy() - 0.9) / 0.1 * n / (n - 1),
        rtol=1e-5)


def test_fused_batch_norm_infers_with_the_moving_statistics():
    x = tf.random.stateless_normal((2, 3, 3, 3), (3, 4))
    keras_bn, fused = _bn_pair(x)
    for bn in (keras_bn, fused):
        bn.moving_mean.assign([0.5, -1.0, 2.0])
        bn.moving_variance.assign([4.0, 0.25, 1.0])
    np.testing.assert_allclose(fused(x, training=False),
                               keras_bn(x, training=False), atol=1e-5)
    before = fused.moving_mean.numpy()
    fused(x, training=False)
    np.testing.assert_array_equal(fused.moving_mean, before)


def test_max_pool_in_branch_has_the_max_pools_value_and_gradient():
    x = tf.random.stateless_normal((2, 6, 6, 3), seed=(1, 2))
    upstream = tf.random.stateless_normal((2, 6, 6, 3), seed=(3, 4))

    def value_and_grad(pool):
        @tf.function
        def run(which):
            with tf.GradientTape() as tape:
                tape.watch(x)
                # In a switch_case branch, where the recomputed gradient
                # matters.
                y = tf.switch_case(which, [lambda: pool(x), lambda: x])
                loss = tf.reduce_sum(y * upstream)
            return y, tape.gradient(loss, x)
        return run(tf.constant(0))

    expected = value_and_grad(lambda t: tf.nn.max_pool2d(t, 3, 1, "SAME"))
    got = value_and_grad(layers.max_pool_3x3_in_branch)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    assert not np.allclose(got[1].numpy(), upstream.numpy())  # pooled
    layer = layers.MaxPool3x3InBranch()
    np.testing.assert_array_equal(
        layer(x).numpy(), keras.layers.MaxPooling2D(3, 1, "same")(x).numpy())
