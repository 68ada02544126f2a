"""Image-classification data streamed from TFDS: datasets too large for
memory, such as ImageNet, whose images differ in size and shape.

`open_tfds_stream` checks that the dataset is prepared (preparing it from
its manual download directory if need be, failing at once with
instructions when it cannot) and returns a `StreamingImages`: the number of
classes, the network's input size, the example counts of the train and
evaluation splits from the dataset's description, and the pipelines.

`StreamingImages.train_dataset(batch_size, seed, epoch)` reads the
training split's files in an order drawn from `(seed, epoch)`, shuffles the
still encoded examples in a buffer seeded the same way, decodes each image
and preprocesses it as the chosen original does
(`nas_tf.data.imagenet_preprocessing`), its random draws seeded by
`(seed, epoch)` and its position in the epoch: the same arguments give the
same batches. `eval_dataset(batch_size)` gives the evaluation split
(ImageNet's ``validation``) once, in order, with the original's evaluation
crop. Nothing is held in memory beyond the shuffle buffer.
"""

import dataclasses
from typing import Optional

from etils import epath
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from nas_tf.data import imagenet_preprocessing
from nas_tf.data import images

TRAIN_SPLIT = "train"
# The split tested on: ImageNet's labelled one is "validation" (its "test"
# split has no labels).
EVAL_SPLITS = ("validation", "test")
# Encoded examples (ImageNet JPEGs: about 110 kB each, so about 1.1 GB).
DEFAULT_SHUFFLE_BUFFER = 10_000
# The preprocessing each space's original trained on ImageNet with.
_SPACE_PREPROCESSING = {"nasnet": "inception"}


def default_preprocessing(space_name: str) -> str:
    """``inception`` for NASNet spaces (slim), ``darts`` for the others."""
    return _SPACE_PREPROCESSING.get(space_name, "darts")


def is_streamed(name: str) -> bool:
    """Whether TFDS dataset ``name`` has images of no one fixed square size,
    so it is streamed instead of read into memory. Reads only its
    description."""
    image, _ = images._image_features(images._builder(name, None),
                                      fixed_size=False)
    height, width, _ = image.shape
    return height is None or width is None or height != width


def stream_spec(name: str) -> tuple[None, int, int]:
    """(None, image_channels, num_classes) of a streamed TFDS dataset: the
    image size is the network's, not the dataset's."""
    image, label = images._image_features(images._builder(name, None),
                                          fixed_size=False)
    return None, int(image.shape[2]), int(label.num_classes)


@dataclasses.dataclass(frozen=True, eq=False)
class StreamingImages:
    """A TFDS image-classification dataset read as a stream.

    Attributes:
      name: The dataset's name.
      builder: Its prepared TFDS builder.
      preprocessing: ``darts`` or ``inception`` (``imagenet_preprocessing``).
      image_size: Height and width of the network's inputs.
      num_classes, image_channels: From the dataset's features.
      num_train_examples, num_eval_examples: Sizes of the splits.
      eval_split: The split tested on.
      class_names: The name of each label.
      shuffle_buffer: Encoded examples shuffled at a time.
    """

    name: str
    builder: object
    preprocessing: str
    image_size: int
    num_classes: int
    image_channels: int
    num_train_examples: int
    num_eval_examples: int
    eval_split: str = EVAL_SPLITS[0]
    class_names: tuple = ()
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER

    def __post_init__(self):
        imagenet_preprocessing.check_kind(self.preprocessing)
        if self.image_size < 1:
            raise ValueError(f"{self.name}: image_size={self.image_size}; "
                             "it must be at least 1")
        if self.image_channels != 3:
            raise ValueError(f"{self.name}: images have {self.image_channels}"
                             " channels; the ImageNet preprocessing takes 3")
        if self.num_train_examples < 1:
            raise ValueError(f"{self.name}: the {TRAIN_SPLIT!r} split is "
                             "empty")
        if self.shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer={self.shuffle_buffer}; it "
                             "must be at least 1")

    @property
    def mean(self) -> np.ndarray:
        """Per-channel mean the inputs are normalised with (pixels in
        [0, 1])."""
        return np.asarray(
            imagenet_preprocessing.normalization(self.preprocessing)[0],
            np.float32)

    @property
    def std(self) -> np.ndarray:
        return np.asarray(
            imagenet_preprocessing.normalization(self.preprocessing)[1],
            np.float32)

    def _read(self, split, **kwargs):
        # Decoding after the shuffle keeps the buffer's images encoded.
        return self.builder.as_dataset(
            split=split, decoders={"image": tfds.decode.SkipDecoding()},
            **kwargs)

    def _decode(self, encoded):
        image = tf.io.decode_image(encoded, channels=3,
                                   expand_animations=False)
        image.set_shape([None, None, 3])
        return image

    def train_dataset(self, batch_size: int, seed: int, epoch: int = 0,
                      augment: bool = True) -> tf.data.Dataset:
        """One epoch of (float32 [batch, size, size, 3], int32 labels)
        batches, the last partial batch dropped; order and augmentation are
        drawn from ``(seed, epoch)``. ``augment`` False: the evaluation
        crop instead of the training augmentation."""
        n = self.num_train_examples
        if batch_size < 1 or batch_size > n:
            raise ValueError(f"batch_size={batch_size}; allowed: 1..{n} (the "
                             f"train split of {self.name} has {n} images)")
        if epoch < 0:
            raise ValueError(f"epoch={epoch}; it must not be negative")
        draws = np.random.default_rng([seed, epoch]).integers(
            0, 2**31 - 1, size=3)
        file_seed, shuffle_seed, key = (int(v) for v in draws)
        dataset = self._read(
            TRAIN_SPLIT, shuffle_files=True,
            read_config=tfds.ReadConfig(shuffle_seed=file_seed))
        dataset = dataset.shuffle(self.shuffle_buffer, seed=shuffle_seed)
        kind, size = self.preprocessing, self.image_size

        def prepare(index, example):
            image = self._decode(example["image"])
            if augment:
                image = imagenet_preprocessing.train_image(
                    image, tf.stack([tf.constant(key, tf.int64), index]),
                    kind, size)
            else:
                image = imagenet_preprocessing.eval_image(image, kind, size)
            return image, tf.cast(example["label"], tf.int32)

        return (dataset.enumerate()
                .map(prepare, num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
                .batch(batch_size, drop_remainder=True)
                .prefetch(tf.data.AUTOTUNE))

    def eval_dataset(self, batch_size: int) -> tf.data.Dataset:
        """Every image of the evaluation split once, in the stored order,
        with the evaluation crop; the last batch may be smaller."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; it must be at least 1")
        kind, size = self.preprocessing, self.image_size

        def prepare(example):
            image = imagenet_preprocessing.eval_image(
                self._decode(example["image"]), kind, size)
            return image, tf.cast(example["label"], tf.int32)

        return (self._read(self.eval_split, shuffle_files=False)
                .map(prepare, num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
                .batch(batch_size)
                .prefetch(tf.data.AUTOTUNE))


def _manual_files(builder) -> list[str]:
    """The archive names a manually downloaded dataset is prepared from:
    its registered URLs' file names (ImageNet: the train and validation
    tars)."""
    infos = images._download_urls(builder)
    return [name or url.rsplit("/", 1)[-1] for url, name in infos.items()]


def _ensure_prepared(builder, manual_dir: epath.Path) -> None:
    """Prepares ``builder`` unless it is; raises at once, without touching
    the network, when the files it needs are neither at hand nor
    downloadable."""
    if builder.data_path.exists() and builder.is_prepared():
        return
    instructions = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    if instructions:
        needed = _manual_files(builder)
        missing = [f for f in needed if not (manual_dir / f).exists()]
        if missing or not manual_dir.exists():
            what = ", ".join(missing) if missing else "its archives"
            raise FileNotFoundError(
                f"dataset {builder.name!r} is not prepared in "
                f"{builder.data_dir_root}, and TFDS cannot download it: it "
                f"is prepared from {what}, which {manual_dir} does not hold."
                f" {' '.join(instructions.split())} Put the archives into a "
                "directory and pass it as manual_dir (preparing reads them "
                "once and writes the dataset into data_dir), or pass as "
                "data_dir a directory where the dataset is prepared "
                f"(tfds.builder({builder.name!r}, data_dir=D)."
                "download_and_prepare(download_config=tfds.download."
                "DownloadConfig(manual_dir=M))).")
    else:
        images._check_downloadable(builder, manual_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual_dir)))


def _split_size(builder, split: str) -> int:
    """Examples of ``split`` from the description; a builder whose
    description lists no splits (under ``tfds.testing.mock_data``) is asked
    its dataset's cardinality."""
    splits = builder.info.splits
    if split in splits:
        return int(splits[split].num_examples)
    count = int(builder.as_dataset(
        split=split, decoders={"image": tfds.decode.SkipDecoding()}
    ).cardinality())
    if count < 0:
        raise ValueError(f"dataset {builder.name!r} does not say how many "
                         f"examples its {split!r} split has")
    return count


def open_tfds_stream(name: str, image_size: int, preprocessing: str,
                     data_dir: Optional[str] = None,
                     manual_dir: Optional[str] = None,
                     shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
                     ) -> StreamingImages:
    """``StreamingImages`` of TFDS dataset ``name``, prepared first if
    need be.

    Args:
      name: TFDS name, e.g. "imagenet2012".
      image_size: The network's input height and width.
      preprocessing: ``darts`` or ``inception``.
      data_dir: TFDS data directory; defaults to TFDS's own.
      manual_dir: Where the manually downloaded archives are (ImageNet:
        ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar); default
        ``<data_dir>/downloads/manual``.
      shuffle_buffer: Encoded training examples shuffled at a time.

    Raises:
      FileNotFoundError: The dataset is not prepared and the archives it is
        prepared from are missing.
      ConnectionError: It is not prepared and its download hosts cannot be
        reached.
    """
    imagenet_preprocessing.check_kind(preprocessing)
    builder = images._builder(name, data_dir)
    image, label = images._image_features(builder, fixed_size=False)
    manual = epath.Path(manual_dir if manual_dir else
                        epath.Path(builder.data_dir_root) / "downloads"
                        / "manual")
    _ensure_prepared(builder, manual)
    known = set(builder.info.splits.keys())
    if known and TRAIN_SPLIT not in known:
        raise ValueError(f"dataset {name!r} has no {TRAIN_SPLIT!r} split; "
                         f"its splits are {', '.join(sorted(known))}")
    eval_split = next((s for s in EVAL_SPLITS if not known or s in known),
                      None)
    if eval_split is None:
        raise ValueError(f"dataset {name!r} has none of the splits "
                         f"{', '.join(EVAL_SPLITS)} to test on; its splits "
                         f"are {', '.join(sorted(known))}")
    return StreamingImages(
        name=name, builder=builder, preprocessing=preprocessing,
        image_size=int(image_size), num_classes=int(label.num_classes),
        image_channels=int(image.shape[2]),
        num_train_examples=_split_size(builder, TRAIN_SPLIT),
        num_eval_examples=_split_size(builder, eval_split),
        eval_split=eval_split, class_names=tuple(label.names),
        shuffle_buffer=shuffle_buffer)
