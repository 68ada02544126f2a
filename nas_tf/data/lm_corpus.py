"""A word-level language-model corpus: a vocabulary and three id streams.

The streams are built as the AWD-LSTM / DARTS `data.py` builds them: every
line is split on whitespace and `<eos>` is appended, and the whole split
becomes one long stream of word ids. The vocabulary lists words in order of
first appearance in the training stream, so ids match the originals' ids for
corpora (such as Penn Treebank) whose valid and test splits use no word
outside the training split.
"""

import dataclasses
from typing import Iterable, Sequence

import numpy as np

EOS = "<eos>"
UNK = "<unk>"


def line_tokens(lines: Iterable[str]) -> list[str]:
    """Splits each line on whitespace and appends `<eos>`, as the originals
    do (an empty line therefore contributes a lone `<eos>`)."""
    tokens = []
    for line in lines:
        tokens.extend(line.split())
        tokens.append(EOS)
    return tokens


class Vocabulary:
    """Words <-> ids, ids in order of the words' first appearance."""

    def __init__(self, words: Sequence[str]):
        words = tuple(words)
        if not words:
            raise ValueError("a vocabulary needs at least one word; got none")
        index = {}
        for i, word in enumerate(words):
            if not isinstance(word, str) or not word or word.split() != [word]:
                raise ValueError(
                    f"vocabulary entry {i} is {word!r}; words must be "
                    "non-empty strings without whitespace")
            if word in index:
                raise ValueError(
                    f"word {word!r} appears twice in the vocabulary (entries "
                    f"{index[word]} and {i}); words must be unique")
            index[word] = i
        self._words = words
        self._index = index

    @classmethod
    def from_tokens(cls, tokens: Iterable[str]) -> "Vocabulary":
        """Builds the vocabulary of a token stream in order of first
        appearance, like the originals' `Dictionary.add_word`."""
        return cls(dict.fromkeys(tokens))

    @property
    def words(self) -> tuple[str, ...]:
        return self._words

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word) -> bool:
        return word in self._index

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words)"

    def encode(self, words: Iterable[str], split: str = "input") -> np.ndarray:
        """Maps words to int32 ids; `split` only names the data in errors.

        Unknown words become `<unk>` when the vocabulary has it, as in
        corpora that were preprocessed with a closed vocabulary.
        """
        index = self._index
        unk = index.get(UNK)
        words = list(words)
        ids = [index.get(word, unk) for word in words]
        if unk is None and None in ids:
            i = ids.index(None)
            raise ValueError(
                f"word {words[i]!r} (token {i} of split {split!r}) is not in "
                f"the vocabulary of {len(self)} words, which has no {UNK!r} "
                "to map it to; the vocabulary comes from the training split")
        return np.array(ids, dtype=np.int32).reshape(-1)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Maps ids back to words."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be integers; got dtype {ids.dtype}")
        bad = ids[(ids < 0) | (ids >= len(self))]
        if bad.size:
            raise ValueError(
                f"id {int(bad[0])} is outside the vocabulary; ids must be in "
                f"[0, {len(self) - 1}]")
        return [self._words[i] for i in ids.tolist()]


@dataclasses.dataclass(frozen=True, eq=False)
class LmCorpus:
    """A named corpus: its vocabulary and the train/valid/test id streams."""

    name: str
    vocab: Vocabulary
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def __post_init__(self):
        for split in ("train", "valid", "test"):
            ids = getattr(self, split)
            if (not isinstance(ids, np.ndarray) or ids.ndim != 1
                    or ids.dtype != np.int32):
                raise ValueError(
                    f"corpus {self.name!r} split {split!r} must be a 1-D "
                    f"int32 numpy array; got {type(ids).__name__} "
                    f"{getattr(ids, 'dtype', '')} "
                    f"{getattr(ids, 'shape', '')}".rstrip())
            if ids.size and (ids.min() < 0 or ids.max() >= len(self.vocab)):
                raise ValueError(
                    f"corpus {self.name!r} split {split!r} has ids outside "
                    f"[0, {len(self.vocab) - 1}]")

    def split(self, name: str) -> np.ndarray:
        """Returns a split by name; accepts "validation" for "valid"."""
        key = {"validation": "valid"}.get(name, name)
        if key not in ("train", "valid", "test"):
            raise ValueError(
                f"unknown split {name!r}; allowed: 'train', 'valid' "
                "(or 'validation'), 'test'")
        return getattr(self, key)


def corpus_from_lines(name: str, train_lines: Iterable[str],
                      valid_lines: Iterable[str],
                      test_lines: Iterable[str]) -> LmCorpus:
    """Builds a corpus from the lines of its three splits."""
    train_tokens = line_tokens(train_lines)
    vocab = Vocabulary.from_tokens(train_tokens)
    return LmCorpus(
        name=name,
        vocab=vocab,
        train=vocab.encode(train_tokens, "train"),
        valid=vocab.encode(line_tokens(valid_lines), "valid"),
        test=vocab.encode(line_tokens(test_lines), "test"),
    )


def check_vocab_size(corpus: LmCorpus, vocab_size: int) -> None:
    """Fails early when a model's output layer does not fit the corpus."""
    if vocab_size != len(corpus.vocab):
        raise ValueError(
            f"the model's vocabulary has {vocab_size} words but corpus "
            f"{corpus.name!r} has {len(corpus.vocab)}; set vocab_size to "
            f"{len(corpus.vocab)}")
