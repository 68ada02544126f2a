"""DropPath and Subsample, the two layers the ops add to Keras."""

import numpy as np
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
