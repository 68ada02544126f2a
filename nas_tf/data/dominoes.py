"""Dominoes: generated images on which a CNN's filter shapes matter.

Searches need a dataset that is made offline in a fraction of a second,
trains a child in seconds, and still tells architectures apart; a few
epochs of CIFAR-10 say little. Each image here (14 x 14, one channel, pixel
noise) holds three or four dominoes of one orientation and one to three
single distractor dots, at random positions. A domino is two bright dots
`distance` (5) pixels apart; the class is the orientation: horizontal,
vertical or diagonal (either diagonal, so the horizontal flip of the CIFAR
augmentation never changes a label). No two other dots lie on one row,
column or diagonal within `distance + 1` pixels, so dominoes are the only
such pairs close by.

The number and brightness of dots do not depend on the class, so 1x1
convolutions, which see only per-pixel statistics after global pooling,
are at chance. Seeing a pair takes a receptive field that spans `distance`
pixels both ways: a 7x7 filter, or 3x3 filters three deep; a 1xk filter
sees only horizontal pairs.

Validation accuracy of nasrl_cnn children, 36 filters a layer, each layer
reading the one before unless noted, after 3 epochs of Adam (lr 3e-3,
batch 32, with the CIFAR augmentation); mean of seeds 0-4 (data and
weights), with BatchNorm's moving averages ("inference") and with the
validation batch's own statistics ("batch"):

    layers                        inference  batch
    1x1 x3                          0.33     0.33
    3x3 x2                          0.41     0.49
    3x3 x3                          0.66     0.93
    3x3 x4                          0.76     1.00
    3x3 x3, no layer linked         0.34     0.35
    3x3 x3, all earlier linked      0.66     0.93
    5x5 x1                          0.36     0.39
    5x5 x2                          0.70     0.99
    7x7 x1                          0.97     0.99
    5x5, 7x7, 5x5                   0.85     1.00
    7x7 x3                          0.79     1.00
    1x7 x3                          0.71     0.73
    1x7 | 7x1 | 7x7, unlinked       0.83     0.95

After so little training the moving averages lag the weights: single
inference readings of deep children range down to chance (0.34), while
re-estimating the BatchNorm statistics on one un-augmented training epoch
before evaluating brought them to 0.89-1.00.

``dominoes_near`` is the same images with the dots 2 pixels apart, which a
single 3x3 filter spans: one separable-conv op of the ENAS micro cell
(two stacked 3x3 filters) sees a pair, pools and identities do not. The
shared weights of a supernet learn it while the architecture changes every
minibatch (with dots 5 apart, 230 such steps left them at chance), so the
ENAS quickstart searches on it.
"""

import numpy as np

from nas_tf.data import images as images_lib

NAME = "dominoes"
CLASSES = ("horizontal", "vertical", "diagonal")
IMAGE_SIZE = 14
CHANNELS = 1
DISTANCE = 5
NUM_TRAIN, NUM_VALID, NUM_TEST = 1500, 500, 500
# Registered names -> the generator arguments they change.
VARIANTS = {NAME: {}, "dominoes_near": {"distance": 2}}
# Unit steps of each class's dominoes.
_STEPS = (((0, 1),), ((1, 0),), ((1, 1), (1, -1)))
# Placement attempts per dot, then per image, before giving up: with the
# defaults about 98% of first attempts succeed.
_DOT_TRIES, _IMAGE_TRIES = 50, 100


def spec(image_size: int = IMAGE_SIZE,
         channels: int = CHANNELS) -> tuple[int, int, int]:
    """(image_size, image_channels, num_classes) of generated data."""
    return image_size, channels, len(CLASSES)


def _aligned(p, q, reach: int) -> bool:
    """Whether dots p and q share a row, column or diagonal within
    `reach` pixels."""
    dy, dx = abs(p[0] - q[0]), abs(p[1] - q[1])
    return (dy == 0 or dx == 0 or dy == dx) and max(dy, dx) <= reach


def _place_dots(rng, label: int, num_dominoes: int, num_distractors: int,
                size: int, distance: int):
    """The dots of one image, or None when they do not fit."""
    reach = distance + 1
    steps = _STEPS[label]
    dots = []
    for k in range(num_dominoes + num_distractors):
        for _ in range(_DOT_TRIES):
            new = [(int(rng.integers(size)), int(rng.integers(size)))]
            if k < num_dominoes:
                dy, dx = steps[rng.integers(len(steps))]
                new.append((new[0][0] + distance * dy,
                            new[0][1] + distance * dx))
                if not all(0 <= v < size for v in new[1]):
                    continue
            if not any(_aligned(p, q, reach) for p in new for q in dots):
                dots += new
                break
        else:
            return None
    return dots


def _draw_split(seed: int, split_index: int, n: int, kwargs: dict):
    # Each split has its own stream, so changing one split's size leaves
    # the others' images unchanged.
    rng = np.random.default_rng([seed, split_index])
    size, channels = kwargs["image_size"], kwargs["channels"]
    labels = rng.permutation(np.arange(n) % len(CLASSES)).astype(np.int64)
    images = np.zeros((n, size, size, channels), np.uint8)
    for i, label in enumerate(labels):
        for _ in range(_IMAGE_TRIES):
            dots = _place_dots(
                rng, int(label),
                int(rng.integers(kwargs["min_dominoes"],
                                 kwargs["max_dominoes"] + 1)),
                int(rng.integers(kwargs["min_distractors"],
                                 kwargs["max_distractors"] + 1)),
                size, kwargs["distance"])
            if dots is not None:
                break
        else:
            raise ValueError(
                f"dominoes: cannot place {kwargs['max_dominoes']} dominoes "
                f"and {kwargs['max_distractors']} distractors in a "
                f"{size}x{size} image with distance {kwargs['distance']}; "
                "use a larger image_size or fewer dots")
        image = rng.normal(0.0, kwargs["noise"], (size, size, channels))
        for y, x in dots:
            image[y, x, :] += rng.uniform(kwargs["min_brightness"], 1.0)
        images[i] = np.clip(np.round(image * 255.0), 0, 255)
    return images, labels


def _check(kwargs: dict) -> None:
    checks = [
        (kwargs["num_train"] >= 1, "num_train", "at least 1"),
        (kwargs["num_valid"] >= 0, "num_valid", "not negative"),
        (kwargs["num_test"] >= 0, "num_test", "not negative"),
        (kwargs["channels"] >= 1, "channels", "at least 1"),
        (kwargs["distance"] >= 1, "distance", "at least 1"),
        (kwargs["image_size"] > kwargs["distance"], "image_size",
         f"larger than distance={kwargs['distance']}"),
        (1 <= kwargs["min_dominoes"] <= kwargs["max_dominoes"],
         "min_dominoes", f"in 1..max_dominoes={kwargs['max_dominoes']}"),
        (0 <= kwargs["min_distractors"] <= kwargs["max_distractors"],
         "min_distractors",
         f"in 0..max_distractors={kwargs['max_distractors']}"),
        (kwargs["noise"] >= 0, "noise", "not negative"),
        (0 < kwargs["min_brightness"] <= 1, "min_brightness", "in (0, 1]"),
    ]
    for ok, name, allowed in checks:
        if not ok:
            raise ValueError(f"dominoes: {name}={kwargs[name]!r}; it must "
                             f"be {allowed}")


def generate_dominoes(seed: int = 0, name: str = NAME,
                      num_train: int = NUM_TRAIN,
                      num_valid: int = NUM_VALID, num_test: int = NUM_TEST,
                      image_size: int = IMAGE_SIZE, channels: int = CHANNELS,
                      distance: int = DISTANCE, min_dominoes: int = 3,
                      max_dominoes: int = 4, min_distractors: int = 1,
                      max_distractors: int = 3, noise: float = 0.05,
                      min_brightness: float = 0.6) -> images_lib.ImageData:
    """The dominoes dataset drawn with `seed`; the same arguments always
    give the same arrays.

    Args:
      seed: Seed of everything random.
      name: The returned data's name (a key of ``VARIANTS``, whose
        arguments the caller passes).
      num_train, num_valid, num_test: Images per split; the classes are
        balanced within one image in each split.
      image_size: Height and width.
      channels: Image channels (all show the same dots, with their own
        noise).
      distance: Pixels between a domino's two dots along its orientation.
      min_dominoes, max_dominoes: Dominoes per image (uniform).
      min_distractors, max_distractors: Single dots per image (uniform).
      noise: Standard deviation of the Gaussian pixel noise (1 = white).
      min_brightness: A dot adds U(min_brightness, 1) to its pixel.
    """
    kwargs = dict(locals())
    del kwargs["seed"], kwargs["name"]
    _check(kwargs)
    splits = [_draw_split(seed, i, kwargs[f"num_{split}"], kwargs)
              for i, split in enumerate(("train", "valid", "test"))]
    return images_lib.ImageData.from_splits(name, len(CLASSES), *splits,
                                            class_names=CLASSES)
