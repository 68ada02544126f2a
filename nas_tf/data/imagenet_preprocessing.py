"""ImageNet preprocessing of the originals, one image at a time, seeded.

Two recipes, by name:

- ``darts``: DARTS's ``cnn/train_imagenet.py`` (torchvision 0.2.0, the
  version its README pins). Training: RandomResizedCrop, horizontal flip,
  ColorJitter(0.4, 0.4, 0.4, hue 0.2), then the ImageNet mean and std.
  The script applies no PCA lighting noise (no commit of it has any).
  Evaluation: the shorter side resized to 256, a centred 224 crop.
- ``inception``: slim's ``preprocessing/inception_preprocessing.py``, which
  slim's ``preprocessing_factory`` gives ``nasnet_mobile`` and
  ``nasnet_large``, with ``train_image_classifier.py``'s arguments (no
  bounding boxes, ``fast_mode``). Training: a distorted bounding-box crop,
  bilinear resize, flip, brightness and saturation in a random order, then
  [-1, 1]. Evaluation: the central 87.5 % then a bilinear resize.

``train_image(image, seed, kind, size)`` and ``eval_image(image, kind,
size)`` take a uint8 [H, W, 3] image of any size and return float32 [size,
size, 3] network inputs; ``eval_pixels`` is the evaluation crop before
normalisation, as pixels 0..255. Every random draw of ``train_image`` comes from
``seed`` (an int64 pair) through stateless ops, so the same seed gives the
same image. ``normalization(kind)`` is the per-channel ``(mean, std)`` the
inputs are normalised with after scaling pixels to [0, 1]: an export that
does the same to raw pixels serves what the network was trained on.

Where TensorFlow stands in for PIL: brightness, contrast and saturation
give PIL's uint8 values exactly; TensorFlow's antialiased bilinear resize
is within one level of PIL's; the hue turns continuously where PIL rounds
hue to 256 steps (about one level apart on average).
"""

import tensorflow as tf

KINDS = ("darts", "inception")

# train_imagenet.py main(): transforms.Normalize(mean=..., std=...).
DARTS_MEAN = (0.485, 0.456, 0.406)
DARTS_STD = (0.229, 0.224, 0.225)
# inception_preprocessing.py preprocess_for_train/_for_eval: (x - 0.5) * 2.
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)

# torchvision 0.2.0 RandomResizedCrop defaults (train_imagenet.py passes
# only the size): area fraction, aspect ratio, and 10 tries.
DARTS_CROP_SCALE = (0.08, 1.0)
DARTS_CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
DARTS_CROP_ATTEMPTS = 10
# train_imagenet.py main(): ColorJitter(brightness=0.4, contrast=0.4,
# saturation=0.4, hue=0.2).
DARTS_JITTER = 0.4
DARTS_HUE = 0.2
# train_imagenet.py main(): Resize(256) then CenterCrop(224): the crop
# keeps 224/256 = 0.875 of the resized shorter side.
DARTS_EVAL_FRACTION = 224 / 256

# inception_preprocessing.py distorted_bounding_box_crop defaults.
INCEPTION_MIN_OBJECT_COVERED = 0.1
INCEPTION_ASPECT_RATIO_RANGE = (0.75, 1.33)
INCEPTION_AREA_RANGE = (0.05, 1.0)
INCEPTION_MAX_ATTEMPTS = 100
# inception_preprocessing.py distort_color(fast_mode=True).
INCEPTION_BRIGHTNESS_DELTA = 32.0 / 255.0
INCEPTION_SATURATION_RANGE = (0.5, 1.5)
# inception_preprocessing.py preprocess_for_eval(central_fraction=0.875).
INCEPTION_EVAL_FRACTION = 0.875


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"ImageNet preprocessing {kind!r}; allowed: "
                         f"{', '.join(KINDS)}")


def normalization(kind: str) -> tuple[tuple, tuple]:
    """(mean, std) per channel of pixels scaled to [0, 1]."""
    check_kind(kind)
    if kind == "darts":
        return DARTS_MEAN, DARTS_STD
    return INCEPTION_MEAN, INCEPTION_STD


def _normalize(unit_pixels, kind):
    mean, std = normalization(kind)
    return (unit_pixels - tf.constant(mean)) / tf.constant(std)


def train_image(image, seed, kind: str, size: int):
    """A training input [size, size, 3] float32 of uint8 ``image`` [H, W,
    3], its random draws all from ``seed`` (two integers)."""
    check_kind(kind)
    seed = tf.cast(seed, tf.int64)
    if kind == "darts":
        pixels = _darts_train_pixels(image, seed, size)
    else:
        pixels = _inception_train_pixels(image, seed, size)
    return _normalize(pixels, kind)


def eval_pixels(image, kind: str, size: int):
    """The evaluation crop of uint8 ``image`` as float32 pixels 0..255
    [size, size, 3]: what an exported model takes."""
    check_kind(kind)
    if kind == "darts":
        return darts_eval_crop(image, size)
    return inception_eval_crop(image, size) * 255.0


def eval_image(image, kind: str, size: int):
    """An evaluation input [size, size, 3] float32 of uint8 ``image``."""
    return _normalize(eval_pixels(image, kind, size) / 255.0, kind)


# -- DARTS (torchvision 0.2.0 on PIL images) ---------------------------------

def _pil_resize(image, height, width):
    """PIL's bilinear resize (it widens its filter when shrinking, as
    ``antialias`` does), rounded to uint8 values as PIL stores them; float32
    out."""
    resized = tf.image.resize(tf.cast(image, tf.float32), [height, width],
                              method="bilinear", antialias=True)
    return tf.clip_by_value(tf.round(resized), 0.0, 255.0)


def random_resized_crop_window(height, width, seed):
    """(top, left, crop height, crop width) as torchvision 0.2.0
    ``RandomResizedCrop.get_params`` draws them: up to 10 tries of an area
    fraction uniform in [0.08, 1] and an aspect ratio uniform in [3/4, 4/3]
    (width and height swapped with probability 1/2); the first that fits
    wins, its corner uniform; otherwise the centred square of the shorter
    side."""
    seeds = tf.random.experimental.stateless_split(seed, 5)
    n = DARTS_CROP_ATTEMPTS
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    area = h * w * tf.random.stateless_uniform([n], seeds[0],
                                               *DARTS_CROP_SCALE)
    ratio = tf.random.stateless_uniform([n], seeds[1], *DARTS_CROP_RATIO)
    crop_w = tf.round(tf.sqrt(area * ratio))
    crop_h = tf.round(tf.sqrt(area / ratio))
    swap = tf.random.stateless_uniform([n], seeds[2]) < 0.5
    crop_w, crop_h = (tf.where(swap, crop_h, crop_w),
                      tf.where(swap, crop_w, crop_h))
    fits = (crop_w <= w) & (crop_h <= h) & (crop_w >= 1) & (crop_h >= 1)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    ch, cw = crop_h[first], crop_w[first]
    # random.randint(0, H - h): inclusive of both ends.
    top = tf.floor(tf.random.stateless_uniform([n], seeds[3])[first]
                   * (h - ch + 1))
    left = tf.floor(tf.random.stateless_uniform([n], seeds[4])[first]
                    * (w - cw + 1))
    side = tf.minimum(h, w)
    found = tf.reduce_any(fits)
    window = tf.where(found, tf.stack([top, left, ch, cw]),
                      tf.stack([tf.floor((h - side) / 2),
                                tf.floor((w - side) / 2), side, side]))
    return tf.unstack(tf.cast(window, tf.int32))


def _gray(pixels):
    """PIL's ``convert("L")``: ITU-R 601-2 luma, rounded."""
    weights = tf.constant([0.299, 0.587, 0.114])
    return tf.round(tf.reduce_sum(pixels * weights, axis=-1, keepdims=True))


def _blend(degenerate, pixels, factor):
    """PIL ``ImageEnhance`` (``Image.blend``): degenerate + factor (image -
    degenerate), clipped and truncated to uint8 values as PIL stores
    them."""
    out = degenerate + factor * (pixels - degenerate)
    return tf.floor(tf.clip_by_value(out, 0.0, 255.0))


def color_jitter(pixels, brightness, contrast, saturation, hue, order):
    """torchvision 0.2.0's ColorJitter transforms on uint8-valued float32
    pixels, as PIL computes them: brightness, contrast (against the mean
    luma) and saturation (against the luma) blend with factors, hue turns
    the colour circle by ``hue`` of a turn; applied in ``order`` (a
    permutation of 0..3 naming them in that order), each rounded to uint8
    values."""

    def adjust_brightness(x):
        return _blend(tf.zeros_like(x), x, brightness)

    def adjust_contrast(x):
        mean = tf.floor(tf.reduce_mean(_gray(x)) + 0.5)
        return _blend(tf.fill(tf.shape(x), mean), x, contrast)

    def adjust_saturation(x):
        return _blend(_gray(x), x, saturation)

    def adjust_hue(x):
        shifted = tf.image.adjust_hue(x / 255.0, hue) * 255.0
        return tf.clip_by_value(tf.round(shifted), 0.0, 255.0)

    branches = [adjust_brightness, adjust_contrast, adjust_saturation,
                adjust_hue]
    for position in range(4):
        pixels = tf.switch_case(order[position],
                                [lambda f=f: f(pixels) for f in branches])
    return pixels


def _random_color_jitter(pixels, seed):
    """ColorJitter(0.4, 0.4, 0.4, 0.2): brightness, contrast and saturation
    factors uniform in [0.6, 1.4], a hue turn uniform in [-0.2, 0.2], in a
    uniformly random order (torchvision shuffles its transforms)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    low, high = max(0.0, 1.0 - DARTS_JITTER), 1.0 + DARTS_JITTER
    draws = tf.random.stateless_uniform([4], seeds[0])
    factors = low + (high - low) * draws[:3]
    hue = -DARTS_HUE + 2 * DARTS_HUE * draws[3]
    order = tf.argsort(tf.random.stateless_uniform([4], seeds[1]))
    return color_jitter(pixels, factors[0], factors[1], factors[2], hue,
                        order)


def _darts_train_pixels(image, seed, size):
    seeds = tf.random.experimental.stateless_split(seed, 3)
    shape = tf.shape(image)
    top, left, height, width = random_resized_crop_window(
        shape[0], shape[1], seeds[0])
    crop = image[top:top + height, left:left + width]
    pixels = _pil_resize(crop, size, size)
    flip = tf.random.stateless_uniform([], seeds[1]) < 0.5
    pixels = tf.cond(flip, lambda: pixels[:, ::-1], lambda: pixels)
    pixels = _random_color_jitter(pixels, seeds[2])
    pixels.set_shape([size, size, 3])
    return pixels / 255.0  # ToTensor


def darts_eval_geometry(height, width, size: int):
    """(resized height, resized width, top, left) of DARTS's evaluation:
    torchvision 0.2.0 Resize(round(size / 0.875)) (the shorter side to 256
    for 224, the longer one truncated) then CenterCrop(size) (offsets
    rounded half to even, as Python 3's round)."""
    side = tf.constant(round(size / DARTS_EVAL_FRACTION), tf.float64)
    h = tf.cast(height, tf.float64)
    w = tf.cast(width, tf.float64)
    resized_h = tf.where(w < h, tf.floor(side * h / w), side)
    resized_w = tf.where(w < h, side, tf.floor(side * w / h))
    top = tf.round((resized_h - size) / 2)
    left = tf.round((resized_w - size) / 2)
    return tuple(tf.cast(v, tf.int32)
                 for v in (resized_h, resized_w, top, left))


def darts_eval_crop(image, size: int):
    """DARTS's evaluation pixels: uint8-valued float32 [size, size, 3]."""
    shape = tf.shape(image)
    resized_h, resized_w, top, left = darts_eval_geometry(
        shape[0], shape[1], size)
    pixels = _pil_resize(image, resized_h, resized_w)
    pixels = pixels[top:top + size, left:left + size]
    pixels.set_shape([size, size, 3])
    return pixels


# -- NASNet (slim inception_preprocessing) -----------------------------------

def _slim_resize(unit_pixels, size):
    """TF1's ``resize_bilinear(align_corners=False)``, which slim calls:
    no half-pixel centres."""
    resized = tf.raw_ops.ResizeBilinear(
        images=unit_pixels[None], size=[size, size], align_corners=False,
        half_pixel_centers=False)
    return resized[0]


def _inception_train_pixels(image, seed, size):
    seeds = tf.random.experimental.stateless_split(seed, 6)
    unit = tf.image.convert_image_dtype(image, tf.float32)
    # The whole image as the only bounding box (train_image_classifier.py
    # passes none).
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seeds[0],
        min_object_covered=INCEPTION_MIN_OBJECT_COVERED,
        aspect_ratio_range=INCEPTION_ASPECT_RATIO_RANGE,
        area_range=INCEPTION_AREA_RANGE,
        max_attempts=INCEPTION_MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True)
    crop = tf.slice(unit, begin, extent)
    pixels = _slim_resize(crop, size)
    flip = tf.random.stateless_uniform([], seeds[1]) < 0.5
    pixels = tf.cond(flip, lambda: pixels[:, ::-1], lambda: pixels)
    # distort_color(fast_mode=True) with an ordering drawn from 0..3:
    # ordering 0 is brightness then saturation, the others the reverse.
    ordering = tf.random.stateless_uniform([], seeds[2], 0, 4, tf.int32)

    def brightness(x):
        return tf.image.stateless_random_brightness(
            x, INCEPTION_BRIGHTNESS_DELTA, seeds[3])

    def saturation(x):
        return tf.image.stateless_random_saturation(
            x, *INCEPTION_SATURATION_RANGE, seeds[4])

    pixels = tf.cond(tf.equal(ordering, 0),
                     lambda: saturation(brightness(pixels)),
                     lambda: brightness(saturation(pixels)))
    pixels = tf.clip_by_value(pixels, 0.0, 1.0)
    pixels.set_shape([size, size, 3])
    return pixels


def inception_eval_crop(image, size: int):
    """slim's evaluation pixels in [0, 1]: ``tf.image.central_crop`` of
    0.875, then the bilinear resize to [size, size]."""
    unit = tf.image.convert_image_dtype(image, tf.float32)
    crop = tf.image.central_crop(unit, INCEPTION_EVAL_FRACTION)
    pixels = _slim_resize(crop, size)
    pixels.set_shape([size, size, 3])
    return pixels


def central_crop_window(height: int, width: int,
                        fraction: float = INCEPTION_EVAL_FRACTION):
    """(top, left, crop height, crop width) that ``tf.image.central_crop``
    keeps: the offsets truncated, the same margin on both sides."""
    top = int((height - height * fraction) / 2)
    left = int((width - width * fraction) / 2)
    return top, left, height - 2 * top, width - 2 * left

