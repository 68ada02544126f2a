"""Any dataset by name: generated or tfds images, PTB, the generated corpus.

Shared by searches (which validate on a held-out part of the training
images) and final training (which trains on all of them).
"""

from typing import Optional

TEXT_DATASETS = ("ptb", "synthetic_text")


def dataset_kind(name: str) -> str:
    """``text`` for the language-model corpora, ``image`` otherwise."""
    return "text" if name in TEXT_DATASETS else "image"


def load_dataset(name: str, data_dir: Optional[str] = None, seed: int = 0,
                 validation_size: Optional[int] = None, final: bool = False):
    """``ImageData`` or an ``LmCorpus``. ``seed`` draws generated data;
    ``validation_size`` and ``final`` (train on the validation images too)
    apply to images."""
    if name == "ptb":
        from nas_tf.data import ptb
        return ptb.load_ptb(data_dir)
    if name == "synthetic_text":
        from nas_tf.data import synthetic_text
        return synthetic_text.synthetic_corpus(seed)
    from nas_tf.data import images
    return images.load_image_data(name, data_dir, validation_size,
                                  final=final, seed=seed)
