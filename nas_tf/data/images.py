"""Image-classification data for child training: arrays, pipelines, loaders.

`ImageData` holds uint8 images and int64 labels of three splits in memory,
with the per-channel mean and standard deviation of the training images
(after scaling to [0, 1]) that both pipelines normalise with, as ENAS does.

`train_dataset` gives one epoch: shuffled, augmented as the originals
augment CIFAR-10 (zero-pad 4, random crop back, random horizontal flip) and
batched without the last partial batch. The order and each image's crop and
flip are drawn from `(seed, epoch)`, so a trainer asks for epoch 0, 1, 2,
... in turn and a rerun with the same seed sees identical batches.

`load_tfds_images` reads any TFDS dataset with `image` and `label`
features. Without network access TFDS retries a download for minutes, so it
first checks in a few seconds that the dataset's download hosts answer and
otherwise says at once how to provide the data. `tfds_image_spec` gives a
dataset's image size, channels and classes without loading it. Datasets
by name, generated ones included, are `nas_tf.data.datasets`.
"""

import dataclasses
from typing import Optional

from etils import epath
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from nas_tf.data import netcheck

# Padding before the random crop (ENAS, DARTS, NASNet: 4). Zeros on the raw
# pixels, as DARTS pads; ENAS pads after normalising, so its border is the
# mean colour.
PAD = 4
SPLITS = ("valid", "test")
DEFAULT_VALIDATION_SIZE = 5000  # ENAS holds out the last 5,000 images.
# TFDS's mirror of prepared datasets: the host to check when a builder
# registers no download URLs.
TFDS_GCS_HOST = "storage.googleapis.com"
_READ_BATCH = 4096


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
    """Three splits of an image-classification dataset, in memory.

    Attributes:
      name: The dataset's name.
      train_images, valid_images, test_images: uint8 [N, H, W, C]; the
        validation and test splits may be empty (N = 0).
      train_labels, valid_labels, test_labels: int64 [N] in
        [0, num_classes).
      num_classes: Classes of the labels.
      mean, std: float32 [C]: per-channel statistics of the training images
        scaled to [0, 1].
      class_names: The name of each label, where the dataset has them.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    valid_images: np.ndarray
    valid_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    mean: np.ndarray
    std: np.ndarray
    class_names: tuple = ()

    def __post_init__(self):
        images = self.train_images
        if images.ndim != 4 or images.shape[1] != images.shape[2]:
            raise ValueError(
                f"{self.name}: train images have shape {images.shape}; "
                "they must be [N, H, W, C] with H == W")
        if len(images) == 0:
            raise ValueError(f"{self.name}: the train split is empty")
        if self.num_classes < 1:
            raise ValueError(f"{self.name}: num_classes={self.num_classes}; "
                             "it must be at least 1")
        for split in ("train",) + SPLITS:
            x, y = self.split(split)
            if x.dtype != np.uint8 or x.shape[1:] != images.shape[1:]:
                raise ValueError(
                    f"{self.name}: {split} images are {x.dtype} "
                    f"{x.shape}; expected uint8 [N, "
                    f"{', '.join(map(str, images.shape[1:]))}]")
            if y.dtype != np.int64 or y.shape != (len(x),):
                raise ValueError(
                    f"{self.name}: {split} labels are {y.dtype} {y.shape}; "
                    f"expected int64 [{len(x)}]")
            if len(y) and not (0 <= y.min() and y.max() < self.num_classes):
                raise ValueError(
                    f"{self.name}: {split} labels span {y.min()}..{y.max()}; "
                    f"allowed: 0..{self.num_classes - 1}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{self.name}: {len(self.class_names)} class names for "
                f"{self.num_classes} classes")
        for field in ("mean", "std"):
            value = getattr(self, field)
            if value.dtype != np.float32 or value.shape != (images.shape[3],):
                raise ValueError(
                    f"{self.name}: {field} is {value.dtype} {value.shape}; "
                    f"expected float32 [{images.shape[3]}]")

    @classmethod
    def from_splits(cls, name: str, num_classes: int, train, valid,
                    test, class_names=()) -> "ImageData":
        """Builds the data from (images, labels) pairs, computing mean and
        std on the training images; `valid` or `test` may be None."""
        images = np.asarray(train[0])

        def pair(split):
            if split is None:
                return (np.zeros((0,) + images.shape[1:], images.dtype),
                        np.zeros(0, np.int64))
            return np.asarray(split[0]), np.asarray(split[1]).astype(np.int64)

        mean, std = _channel_statistics(images)
        (tx, ty), (vx, vy), (sx, sy) = pair(train), pair(valid), pair(test)
        return cls(name, tx, ty, vx, vy, sx, sy, int(num_classes), mean, std,
                   tuple(class_names))

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_channels(self) -> int:
        return int(self.train_images.shape[3])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of "train", "valid" or "test"."""
        if name not in ("train",) + SPLITS:
            raise ValueError(f"unknown split {name!r}; allowed: train, "
                             f"{', '.join(SPLITS)}")
        return getattr(self, f"{name}_images"), getattr(self, f"{name}_labels")


def _channel_statistics(images: np.ndarray):
    """Per-channel mean and std of `images` / 255 as float32 [C]; a chunk
    at a time, so CIFAR-size data needs no float copy of every pixel."""
    channels = images.shape[-1] if images.ndim == 4 else 1
    total = np.zeros(channels)
    squares = np.zeros(channels)
    for start in range(0, len(images), _READ_BATCH):
        chunk = images[start:start + _READ_BATCH].reshape(-1, channels)
        chunk = chunk.astype(np.float64) / 255.0
        total += chunk.sum(axis=0)
        squares += np.square(chunk).sum(axis=0)
    count = max(1, images.size // channels)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
    # A constant channel carries no information; dividing it by 1 keeps it
    # finite instead of dividing by zero.
    std = np.where(std > 1e-6, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(data: ImageData, images):
    images = tf.cast(images, tf.float32) / 255.0
    return (images - data.mean) / data.std


def crop_and_flip(images, offsets, flips):
    """Zero-pads a batch by PAD, crops each image back to its size at its
    (row, column) offset in [0, 2 * PAD] and mirrors it left-right where
    `flips` is set; one gather per axis does it for the whole batch."""
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    rows = offsets[:, :1] + tf.range(height)[None, :]
    steps = tf.where(flips[:, None], tf.range(width - 1, -1, -1)[None, :],
                     tf.range(width)[None, :])
    cols = offsets[:, 1:] + steps
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


CUTOUT_ANCHORS = ("centre", "corner")


def cutout_mask(points, size: int, length: int, anchor: str = "centre"):
    """[batch, size, size, 1] masks: 0 inside a `length`-sided square, 1
    elsewhere. `anchor` "centre": the square is centred on each (row,
    column) point (DARTS's Cutout); "corner": it starts there (ENAS's
    ``_pre_process``). Either way it is clipped at the border."""
    if anchor not in CUTOUT_ANCHORS:
        raise ValueError(f"cutout anchor={anchor!r}; allowed: "
                         f"{CUTOUT_ANCHORS}")
    positions = tf.range(size)[None, :]
    shift = length // 2 if anchor == "centre" else 0

    def inside(point):
        start = point[:, None] - shift
        return (positions >= start) & (positions < start + length)

    rows, cols = inside(points[:, 0]), inside(points[:, 1])
    square = rows[:, :, None] & cols[:, None, :]
    return 1.0 - tf.cast(square, tf.float32)[..., None]


def epoch_draws(data: ImageData, seed: int, epoch: int):
    """The random draws of one training epoch, from ``(seed, epoch)``: the
    order of the images and, indexed by image, each one's crop offset
    (row, column), flip and cutout point. ``train_dataset`` batches by them;
    a child trained in one compiled program (``child_program``) gathers its
    batches by them, so both see the same batches."""
    n = len(data.train_labels)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    offsets = rng.integers(0, 2 * PAD + 1, size=(n, 2), dtype=np.int32)
    flips = rng.random(n) < 0.5
    # Drawn after the others so that cutout leaves them unchanged.
    points = rng.integers(0, data.image_size, size=(n, 2), dtype=np.int32)
    return order, offsets, flips, points


def train_dataset(data: ImageData, batch_size: int, seed: int,
                  epoch: int = 0, augment: bool = True, cutout: int = 0,
                  cutout_anchor: str = "centre") -> tf.data.Dataset:
    """One epoch of (float32 normalised images, int32 labels) batches.

    The order and every image's crop offset and flip are drawn from
    `(seed, epoch)` (the draws are indexed by the image, not its batch), so
    the same arguments always give the same batches and successive epochs
    differ. A trainer asks for epoch 0, 1, 2, ... in turn. The last partial
    batch is dropped: `len(train) // batch_size` batches. `cutout` > 0
    zeroes a `cutout`-sided square of every normalised image, placed at a
    uniform point by `cutout_anchor` (see `cutout_mask`).
    """
    n = len(data.train_labels)
    if batch_size < 1 or batch_size > n:
        raise ValueError(f"batch_size={batch_size}; allowed: 1..{n} (the "
                         f"train split of {data.name} has {n} images)")
    if epoch < 0:
        raise ValueError(f"epoch={epoch}; it must not be negative")
    order, offsets, flips, points = epoch_draws(data, seed, epoch)
    dataset = tf.data.Dataset.from_tensor_slices(
        (data.train_images[order], data.train_labels[order].astype(np.int32),
         offsets[order], flips[order], points[order]))

    def prepare(images, labels, offsets, flips, points):
        if augment:
            images = crop_and_flip(images, offsets, flips)
        images = normalize(data, images)
        if cutout:
            images = images * cutout_mask(points, data.image_size, cutout,
                                          cutout_anchor)
        return images, labels

    # Augmenting whole batches is several times faster than image by image.
    return (dataset.batch(batch_size, drop_remainder=True)
            .map(prepare, num_parallel_calls=tf.data.AUTOTUNE,
                 deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def eval_dataset(data: ImageData, split: str,
                 batch_size: int) -> tf.data.Dataset:
    """Every image of `split` ("valid" or "test") once, in order,
    normalised, not augmented; the last batch may be smaller."""
    if split not in SPLITS:
        raise ValueError(f"unknown evaluation split {split!r}; allowed: "
                         f"{', '.join(SPLITS)}")
    images, labels = data.split(split)
    if not len(labels):
        raise ValueError(f"the {split!r} split of {data.name} is empty"
                         + (" (final=True trains on all training images and "
                            "keeps none for validation)" if split == "valid"
                            else ""))
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; it must be at least 1")
    dataset = tf.data.Dataset.from_tensor_slices(
        (images, labels.astype(np.int32)))
    return (dataset.batch(batch_size)
            .map(lambda x, y: (normalize(data, x), y))
            .prefetch(tf.data.AUTOTUNE))


# -- TFDS --------------------------------------------------------------------

class UnknownDataset(ValueError):
    """tensorflow_datasets has no dataset of that name."""


def _builder(name: str, data_dir: Optional[str]):
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        hint = next((line.strip() for line in str(e).splitlines()
                     if line.startswith("Did you mean")), "")
        raise UnknownDataset(
            f"unknown image dataset {name!r}"
            + (f" ({hint})" if hint else "") + "; use the name of a "
            "tensorflow_datasets image classification dataset such as "
            "'cifar10' or 'mnist'") from None


def _image_features(builder, fixed_size: bool = True) -> tuple:
    """(image feature, label feature), or ValueError naming the features;
    with ``fixed_size`` also when the images are not square of one size."""
    features = builder.info.features
    names = sorted(features.keys()) if hasattr(features, "keys") else []
    image, label = (features[k] if k in names else None
                    for k in ("image", "label"))
    if (not isinstance(image, tfds.features.Image)
            or not isinstance(label, tfds.features.ClassLabel)):
        raise ValueError(
            f"dataset {builder.name!r} is not an image-classification "
            f"dataset: it needs an 'image' Image feature and a 'label' "
            f"ClassLabel feature; its features are {', '.join(names)}")
    height, width, channels = image.shape
    if fixed_size and (height is None or height != width):
        raise ValueError(
            f"dataset {builder.name!r} has images of shape {image.shape}; "
            "only datasets of square images of one fixed size are read "
            "into memory (searches, classify.py), and this one is "
            "streamed, which only train.py does")
    return image, label


def tfds_image_spec(name: str) -> tuple[int, int, int]:
    """(image_size, image_channels, num_classes) of a TFDS dataset, read
    from its description: nothing is downloaded."""
    image, label = _image_features(_builder(name, None))
    return int(image.shape[0]), int(image.shape[2]), int(label.num_classes)


def _download_urls(builder) -> dict:
    """URL -> file name of what preparing the builder downloads."""
    try:
        infos = type(builder).url_infos or {}
    except Exception:  # A builder without a readable checksums file.
        infos = {}
    return {url: (info.filename or "") for url, info in infos.items()}


def _check_downloadable(builder, manual_dir: epath.Path) -> None:
    """Raises ConnectionError within seconds when preparing would need a
    host that cannot be reached."""
    urls = _download_urls(builder)
    missing = {url: f for url, f in urls.items()
               if not (f and (manual_dir / f).exists())}
    if urls and not missing:
        return  # Everything is in the manual directory.
    if urls:
        endpoints = {url: netcheck.url_endpoint(url) for url in missing}
    else:
        endpoints = {TFDS_GCS_HOST: netcheck.download_endpoint(TFDS_GCS_HOST)}
    down = netcheck.unreachable(endpoints.values(),
                                netcheck.DEFAULT_TIMEOUT_SECONDS)
    if not down:
        return
    root = builder.data_dir_root
    hosts = ", ".join(f"{h}:{p}" for h, p in down)
    files = ", ".join(f for f in missing.values() if f)
    manual = (f" or put {files} (from {', '.join(missing)}) into "
              f"{manual_dir} and call again" if files else "")
    raise ConnectionError(
        f"dataset {builder.name!r} is not prepared in {root} and {hosts} "
        f"cannot be reached within {netcheck.DEFAULT_TIMEOUT_SECONDS:g} s "
        "to download it. Prepare it on a machine with network access "
        f"(tfds.builder({builder.name!r}, data_dir=D)"
        ".download_and_prepare()), copy D here and pass it as data_dir,"
        + manual + ".")


def _read_split(builder, split: str) -> dict:
    """The split's image, label (and id) arrays, in the stored order."""
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    keys = [k for k in ("image", "label", "id")
            if k in builder.info.features.keys()]
    parts = {k: [] for k in keys}
    for batch in tfds.as_numpy(dataset.batch(_READ_BATCH)):
        for k in keys:
            parts[k].append(batch[k])
    return {k: np.concatenate(v) if v else None for k, v in parts.items()}


def _in_id_order(arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels sorted by the `id` feature when there is one.

    TFDS stores examples in an order shuffled by key; CIFAR-10's ids
    (`train_00000`, ...) restore the order of the original files, so the
    last images are the originals' validation images.
    """
    images, labels = arrays["image"], arrays["label"].astype(np.int64)
    ids = arrays.get("id")
    if ids is not None and len(ids) == len(labels):
        order = np.argsort(ids, kind="stable")
        images, labels = images[order], labels[order]
    return images, labels


def load_tfds_images(name: str, data_dir: Optional[str] = None,
                     validation_size: int = DEFAULT_VALIDATION_SIZE,
                     final: bool = False) -> ImageData:
    """A TFDS image-classification dataset as `ImageData`, preparing it
    first if needed.

    Args:
      name: TFDS name, e.g. "cifar10" (optionally with config/version).
      data_dir: TFDS data directory; defaults to TFDS's own
        (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
      validation_size: The last this many training images (in id order)
        form the validation split, the rest the train split (ENAS).
      final: Train on all training images and keep no validation split.
    """
    builder = _builder(name, data_dir)
    image_feature, label_feature = _image_features(builder)
    # Checking the directory first keeps TFDS from warning about a variant
    # folder that was simply never created.
    if not (builder.data_path.exists() and builder.is_prepared()):
        manual_dir = epath.Path(builder.data_dir_root) / "downloads" / "manual"
        _check_downloadable(builder, manual_dir)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=str(manual_dir)))
    known = set(builder.info.splits.keys())
    if known and "train" not in known:
        raise ValueError(f"dataset {name!r} has no 'train' split; its "
                         f"splits are {', '.join(sorted(known))}")
    train_x, train_y = _in_id_order(_read_split(builder, "train"))
    if final:
        valid = None
    else:
        if not 0 < validation_size < len(train_y):
            raise ValueError(
                f"validation_size={validation_size}; allowed: 1.."
                f"{len(train_y) - 1} (the 'train' split of {name!r} has "
                f"{len(train_y)} images)")
        cut = len(train_y) - validation_size
        valid = (train_x[cut:], train_y[cut:])
        train_x, train_y = train_x[:cut], train_y[:cut]
    test = None
    # A builder whose info lists no splits (as under tfds.testing.mock_data)
    # is asked for "test" directly.
    if "test" in known or not known:
        test = _in_id_order(_read_split(builder, "test"))
    return ImageData.from_splits(name, label_feature.num_classes,
                                 (train_x, train_y), valid, test,
                                 class_names=label_feature.names)


def without_validation(data: ImageData) -> ImageData:
    """`data` with its validation images moved into the train split (and
    mean and std computed again), for training a final network."""
    train = (np.concatenate([data.train_images, data.valid_images]),
             np.concatenate([data.train_labels, data.valid_labels]))
    return ImageData.from_splits(data.name, data.num_classes, train, None,
                                 (data.test_images, data.test_labels),
                                 data.class_names)
