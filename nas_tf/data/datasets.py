"""Every dataset by name: the one registry searches, final training,
classify.py and the scripts' early checks read.

Generated datasets are made offline from a seed (``dominoes`` and
``dominoes_near`` images, ``synthetic_text``); ``ptb`` is the Penn
Treebank builder of ``nas_tf.data.ptb``; any other name is a
tensorflow_datasets image classification dataset (``cifar10``, ``mnist``,
...): read into memory when its images are square of one size, else
streamed (``imagenet2012``; ``is_streamed``). The data modules do
not know each other: each reads what it needs from here.
"""

from typing import Optional

IMAGE, TEXT = "image", "text"
# name -> kind of the datasets nas_tf makes or builds itself.
_DOMINOES = ("dominoes", "dominoes_near")  # dominoes.VARIANTS
_OWN = {**dict.fromkeys(_DOMINOES, IMAGE), "ptb": TEXT,
        "synthetic_text": TEXT}
GENERATED = _DOMINOES + ("synthetic_text",)
TEXT_DATASETS = tuple(n for n, kind in _OWN.items() if kind == TEXT)


def dataset_kind(name: str) -> str:
    """``text`` for the language-model corpora, ``image`` otherwise."""
    return _OWN.get(name, IMAGE)


def _unknown(error: ValueError) -> ValueError:
    return ValueError(f"{error}; or a dataset generated offline: "
                      f"{', '.join(GENERATED)}")


def is_streamed(name: str) -> bool:
    """Whether image dataset ``name`` is streamed from TFDS
    (``streaming_images``) rather than read into memory: a TFDS dataset
    whose images are not square of one fixed size, such as
    ``imagenet2012``. Reads only its description."""
    if name in _OWN:
        return False
    from nas_tf.data import images
    from nas_tf.data import streaming_images
    try:
        return streaming_images.is_streamed(name)
    except images.UnknownDataset as e:
        raise _unknown(e) from None


def image_dataset_spec(name: str) -> tuple[Optional[int], int, int]:
    """(image_size, image_channels, num_classes) of an image dataset, read
    from its description: nothing is downloaded or generated. A streamed
    dataset's image_size is None: the network's input size decides it."""
    if name in _DOMINOES:
        from nas_tf.data import dominoes
        return dominoes.spec()
    from nas_tf.data import images
    if is_streamed(name):
        from nas_tf.data import streaming_images
        return streaming_images.stream_spec(name)
    try:
        return images.tfds_image_spec(name)
    except images.UnknownDataset as e:
        raise _unknown(e) from None


def load_image_data(name: str, data_dir: Optional[str] = None,
                    validation_size: Optional[int] = None,
                    final: bool = False, seed: int = 0):
    """``ImageData`` of the generated dataset ``name`` (drawn with
    ``seed``), else of the TFDS dataset ``name`` (``seed`` unused: the
    split is fixed).

    ``validation_size`` None means the dataset's own: 5,000 for TFDS data
    (ENAS), the generator's default for generated data. ``final`` trains on
    the validation images too and keeps none apart.
    """
    from nas_tf.data import images
    if name in _DOMINOES:
        from nas_tf.data import dominoes
        num_valid = (dominoes.NUM_VALID if validation_size is None
                     else validation_size)
        data = dominoes.generate_dominoes(
            seed=seed, name=name, num_valid=num_valid,
            **dominoes.VARIANTS[name])
        return images.without_validation(data) if final else data
    try:
        return images.load_tfds_images(
            name, data_dir=data_dir, final=final,
            validation_size=(images.DEFAULT_VALIDATION_SIZE
                             if validation_size is None else validation_size))
    except images.UnknownDataset as e:
        raise _unknown(e) from None


def load_dataset(name: str, data_dir: Optional[str] = None, seed: int = 0,
                 validation_size: Optional[int] = None, final: bool = False,
                 manual_dir: Optional[str] = None):
    """``ImageData`` or an ``LmCorpus``. ``seed`` draws generated data;
    ``validation_size`` and ``final`` (train on the validation images too)
    apply to images; ``manual_dir`` holds PTB's text files offline."""
    if name == "ptb":
        from nas_tf.data import ptb
        return ptb.load_ptb(data_dir, manual_dir=manual_dir)
    if name == "synthetic_text":
        from nas_tf.data import synthetic_text
        return synthetic_text.synthetic_corpus(seed)
    return load_image_data(name, data_dir, validation_size, final=final,
                           seed=seed)
