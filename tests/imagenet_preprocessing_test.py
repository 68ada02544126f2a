"""The originals' ImageNet preprocessing on synthetic images of many sizes
and shapes: output shapes and ranges, determinism per seed, the crops'
geometry, and PIL's colour arithmetic (torchvision 0.2.0 runs on PIL)."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image  # Pillow comes with matplotlib.
from PIL import ImageEnhance

from nas_tf.data import imagenet_preprocessing as ip

# Non-square, variable sizes, down to fewer pixels than the output.
SHAPES = [(37, 23), (5, 90), (120, 64), (300, 500)]
SIZE = 24


def _image(height, width, seed=0):
    rng = np.random.default_rng([seed, height, width])
    return tf.constant(rng.integers(0, 256, (height, width, 3)), tf.uint8)


def _ramp(height, width):
    """uint8 pixels: channel 0 grows evenly down the rows from 0 to 255,
    channel 1 along the columns."""
    rows = np.repeat(np.linspace(0, 255, height)[:, None], width, 1)
    cols = np.repeat(np.linspace(0, 255, width)[None, :], height, 0)
    return np.round(np.stack([rows, cols, np.zeros_like(rows)], -1)
                    ).astype(np.uint8)


@pytest.mark.parametrize("kind", ip.KINDS)
def test_any_image_becomes_a_normalised_input_of_the_network_size(kind):
    mean, std = (np.array(v) for v in ip.normalization(kind))
    low, high = (0 - mean) / std, (1 - mean) / std
    for shape in SHAPES:
        image = _image(*shape)
        for x in (ip.train_image(image, [3, 4], kind, SIZE),
                  ip.eval_image(image, kind, SIZE)):
            x = x.numpy()
            assert x.shape == (SIZE, SIZE, 3) and x.dtype == np.float32
            assert (x >= low - 1e-5).all() and (x <= high + 1e-5).all()
    if kind == "inception":  # slim: [-1, 1]
        assert (low == -1).all() and (high == 1).all()


@pytest.mark.parametrize("kind", ip.KINDS)
def test_training_draws_come_from_the_seed_alone(kind):
    image = _image(37, 23)
    first = ip.train_image(image, [7, 1], kind, SIZE).numpy()
    again = ip.train_image(image, [7, 1], kind, SIZE).numpy()
    np.testing.assert_array_equal(first, again)
    others = [ip.train_image(image, [7, i], kind, SIZE).numpy()
              for i in range(2, 6)]
    assert all(not np.array_equal(first, other) for other in others)
    # Evaluation is not random.
    np.testing.assert_array_equal(ip.eval_image(image, kind, SIZE),
                                  ip.eval_image(image, kind, SIZE))


def test_bad_kind_is_named():
    with pytest.raises(ValueError, match="'vgg'.*darts, inception"):
        ip.eval_image(_image(8, 8), "vgg", SIZE)


def test_darts_eval_resizes_the_shorter_side_and_crops_the_centre():
    def geometry(h, w, size=224):
        return tuple(int(v) for v in ip.darts_eval_geometry(h, w, size))

    # Resize(256): shorter side 256, the other truncated; CenterCrop(224):
    # offsets rounded half to even (Python 3's round): 58.5 -> 58.
    assert geometry(300, 500) == (256, 426, 16, 101)
    assert geometry(500, 300) == (426, 256, 101, 16)
    assert geometry(375, 500) == (256, 341, 16, 58)
    assert geometry(256, 256) == (256, 256, 16, 16)
    # Another network size keeps the 224/256 fraction.
    assert geometry(60, 90, size=28) == (32, 48, 2, 10)
    # The pixels are those of that window: a ramp image's cropped corners
    # hold the ramp's values there (up to PIL's rounding).
    height, width = 60, 90
    ramp = _ramp(height, width)
    crop = ip.darts_eval_crop(tf.constant(ramp, tf.uint8), 28).numpy()
    resized = ip._pil_resize(tf.constant(ramp, tf.uint8), 32, 48).numpy()
    np.testing.assert_array_equal(crop, resized[2:30, 10:38])
    assert crop.shape == (28, 28, 3)


def test_inception_eval_keeps_the_central_fraction_then_resizes():
    # tf.image.central_crop(0.875): the margins truncated, equal each side.
    assert ip.central_crop_window(300, 500) == (18, 31, 264, 438)
    assert ip.central_crop_window(37, 23) == (2, 1, 33, 21)
    height, width = 300, 500
    ramp = _ramp(height, width)
    out = ip.inception_eval_crop(tf.constant(ramp, tf.uint8), SIZE).numpy()
    # TF1 resize_bilinear without half-pixel centres: output pixel (i, j)
    # reads the crop at (i * 264 / size, j * 438 / size); on the ramp the
    # value there is that position's fraction of the image.
    steps = np.arange(SIZE)
    np.testing.assert_allclose(
        out[:, 0, 0], (18 + steps * 264 / SIZE) / (height - 1), atol=2e-3)
    np.testing.assert_allclose(
        out[0, :, 1], (31 + steps * 438 / SIZE) / (width - 1), atol=2e-3)


def _torchvision_0_2_0_window(height, width, rng):
    """RandomResizedCrop.get_params of torchvision 0.2.0, restated."""
    for _ in range(10):
        area = rng.uniform(0.08, 1.0) * height * width
        ratio = rng.uniform(3 / 4, 4 / 3)
        w, h = round(np.sqrt(area * ratio)), round(np.sqrt(area / ratio))
        if rng.random() < 0.5:
            w, h = h, w
        if w <= width and h <= height:
            return (rng.integers(0, height - h + 1),
                    rng.integers(0, width - w + 1), h, w)
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def test_random_resized_crop_draws_as_torchvision_0_2_0():
    height, width, n = 60, 300, 400
    window = tf.function(lambda seed: ip.random_resized_crop_window(
        height, width, seed))
    ours = np.array([[int(v) for v in window(tf.constant([i, 5], tf.int64))]
                     for i in range(n)])
    rng = np.random.default_rng(0)
    reference = np.array([_torchvision_0_2_0_window(height, width, rng)
                          for _ in range(n)])
    for windows in (ours, reference):
        top, left, h, w = windows.T
        assert (top >= 0).all() and (top + h <= height).all()
        assert (left >= 0).all() and (left + w <= width).all()
    # The same distribution: crop area, shape and the fallback's share.
    def stats(windows):
        top, left, h, w = windows.T.astype(float)
        fallback = (h == w) & (h == height) & (left == (width - height) // 2)
        return [np.mean(h * w) / (height * width), np.mean(w / h),
                np.mean(fallback)]

    # (About 0.16 of the image, w/h 1.05, and 22 % fallbacks here.)
    difference = np.abs(np.subtract(stats(ours), stats(reference)))
    assert (difference < [0.02, 0.05, 0.06]).all(), difference
    # No attempt fits a 4 x 400 strip: the centred square of its height.
    strip = [int(v) for v in ip.random_resized_crop_window(
        4, 400, tf.constant([1, 2], tf.int64))]
    assert strip == [0, 198, 4, 4]


@pytest.mark.parametrize("order,enhancers", [
    ([0, 1, 2, 3], ["brightness", "contrast", "saturation"]),
    ([2, 1, 3, 0], ["saturation", "contrast", "brightness"])])
def test_colour_jitter_computes_what_pil_computes(order, enhancers):
    factors = {"brightness": 1.3, "contrast": 0.7, "saturation": 1.25}
    classes = {"brightness": ImageEnhance.Brightness,
               "contrast": ImageEnhance.Contrast,
               "saturation": ImageEnhance.Color}
    pixels = _image(13, 17).numpy()
    expected = Image.fromarray(pixels)
    for name in enhancers:
        expected = classes[name](expected).enhance(factors[name])
    ours = ip.color_jitter(tf.constant(pixels, tf.float32),
                           factors["brightness"], factors["contrast"],
                           factors["saturation"], 0.0, tf.constant(order))
    np.testing.assert_array_equal(ours.numpy(), np.asarray(expected))
