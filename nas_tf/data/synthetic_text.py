"""A small synthetic language whose next word depends on distant words.

Tests and the quickstart need a corpus that is generated offline in a
fraction of a second, yet rewards a recurrent cell for remembering: on PTB
one cannot tell in minutes whether a cell learns anything beyond bigrams.
Each sentence of this language is drawn from a small probabilistic grammar:

* it opens with one of `num_topics` topic words (`T0`, `T1`, ...), and every
  later content word depends on that topic: with probability
  `p_shared_word` it is one of the shared words `f00, f01, ...` (Zipf
  distributed, the same for every topic), otherwise a topical word
  `w000, w001, ...` drawn from a Zipf law over a topic-specific ranking.
  After a shared word the previous word says nothing about the topic, so
  only a model that remembers the sentence start predicts the next topical
  word well;
* bracket pairs `( )`, `[ ]`, `{ }`, `< >` open and close in nested order up
  to `max_depth`, so which closer comes next is known only from a stack of
  the open brackets;
* the body has at most `max_len` tokens, all brackets closed, and ends
  (with `<eos>`) only at depth zero after at least `min_len` tokens.

The grammar's own per-token probabilities are exact (the topic and bracket
stack are read off the history), so `generator_perplexity` is the best
perplexity any model can reach; `ngram_baselines.bigram_perplexity` shows
how far a model without memory stays above it.
"""

import bisect
import dataclasses
import itertools
import numbers
from typing import Iterator, Optional, Sequence

import numpy as np

from nas_tf.data import lm_corpus

_OPENERS = ("(", "[", "{", "<")
_CLOSERS = (")", "]", "}", ">")
# Action indices, in the order of the cumulative probability tables.
_END, _OPEN, _CLOSE, _CONTENT = range(4)


@dataclasses.dataclass(frozen=True)
class SyntheticTextConfig:
    """The grammar's shape; `grammar_seed` fixes the topics' word rankings,
    so corpora drawn with different seeds share one language."""

    num_topics: int = 8
    num_shared_words: int = 40
    num_topical_words: int = 200
    num_bracket_types: int = 4
    max_depth: int = 3
    min_len: int = 4
    max_len: int = 24
    zipf_exponent: float = 1.1
    p_shared_word: float = 0.5
    p_open: float = 0.12
    p_close: float = 0.3
    p_end: float = 0.15
    grammar_seed: int = 1234

    def __post_init__(self):
        positive = ("num_topics", "num_shared_words", "num_topical_words",
                    "num_bracket_types", "max_depth", "min_len", "max_len")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or (
                    value < 1):
                raise ValueError(f"{name} must be an integer >= 1; got "
                                 f"{value!r}")
        if self.num_bracket_types > len(_OPENERS):
            raise ValueError(
                f"num_bracket_types is {self.num_bracket_types}; at most "
                f"{len(_OPENERS)} bracket types exist")
        if self.num_topical_words > 1000 or self.num_shared_words > 100:
            raise ValueError(
                "num_topical_words must be <= 1000 and num_shared_words <= "
                f"100; got {self.num_topical_words} and "
                f"{self.num_shared_words}")
        if self.min_len >= self.max_len:
            raise ValueError(f"min_len ({self.min_len}) must be below "
                             f"max_len ({self.max_len})")
        if self.zipf_exponent < 0:
            raise ValueError(f"zipf_exponent must be >= 0; got "
                             f"{self.zipf_exponent}")
        if not 0 <= self.p_shared_word <= 1:
            raise ValueError(f"p_shared_word must be in [0, 1]; got "
                             f"{self.p_shared_word}")
        for name in ("p_open", "p_close", "p_end"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1); got "
                                 f"{getattr(self, name)}")
        total = self.p_open + self.p_close + self.p_end
        if total >= 1:
            raise ValueError(
                "p_open + p_close + p_end must be below 1 to leave room for "
                f"content words; got {total}")


def _uniforms(rng: np.random.Generator) -> Iterator[float]:
    """Uniform [0, 1) draws, generated in blocks for speed."""
    while True:
        yield from rng.random(4096).tolist()


def _zipf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


class SyntheticGrammar:
    """Samples sentences and scores token streams exactly."""

    def __init__(self, config: Optional[SyntheticTextConfig] = None):
        self.config = config = config or SyntheticTextConfig()
        self.topic_words = tuple(f"T{k}" for k in range(config.num_topics))
        self.content_words = (
            tuple(f"f{i:02d}" for i in range(config.num_shared_words))
            + tuple(f"w{i:03d}" for i in range(config.num_topical_words)))
        self.openers = _OPENERS[:config.num_bracket_types]
        self.closers = _CLOSERS[:config.num_bracket_types]
        self.words = (self.topic_words + self.content_words + self.openers
                      + self.closers + (lm_corpus.EOS,))
        # content_probs[k, i]: probability of content word i under topic k.
        rng = np.random.default_rng(config.grammar_seed)
        shared = config.p_shared_word * _zipf(config.num_shared_words,
                                              config.zipf_exponent)
        topical = (1 - config.p_shared_word) * _zipf(
            config.num_topical_words, config.zipf_exponent)
        self._content_probs = np.stack([
            np.concatenate([shared, topical[rng.permutation(topical.size)]])
            for _ in range(config.num_topics)])
        self._content_cdf_list = np.cumsum(self._content_probs,
                                           axis=1).tolist()
        # Keyed by (open brackets, body tokens so far).
        self._action_table = {
            (depth, length): self._action_probs(depth, length)
            for depth in range(config.max_depth + 1)
            for length in range(config.max_len + 1 - depth)}
        self._action_cdf = {key: np.cumsum(probs).tolist()
                            for key, probs in self._action_table.items()}
        self._kind = {w: ("topic", k) for k, w in enumerate(self.topic_words)}
        self._kind.update(
            {w: ("content", i) for i, w in enumerate(self.content_words)})
        self._kind.update({w: ("open", b) for b, w in enumerate(self.openers)})
        self._kind.update(
            {w: ("close", b) for b, w in enumerate(self.closers)})
        self._kind[lm_corpus.EOS] = ("end", 0)

    def _action_probs(self, depth: int, length: int) -> np.ndarray:
        """P(end, open, close, content) with `depth` brackets open after
        `length` body tokens; forced moves keep the body within max_len."""
        c = self.config
        budget = c.max_len - length
        probs = np.zeros(4)
        if budget == depth:
            probs[_CLOSE if depth else _END] = 1.0
            return probs
        if depth == 0 and length >= c.min_len:
            probs[_END] = c.p_end
        if depth < c.max_depth and budget >= depth + 2:
            probs[_OPEN] = c.p_open
        if depth > 0:
            probs[_CLOSE] = c.p_close
        probs[_CONTENT] = 1.0 - probs.sum()
        return probs

    def sample_line(self, rng: np.random.Generator) -> list[str]:
        """One sentence, without its `<eos>`."""
        return self._sample_line(_uniforms(rng))

    def _sample_line(self, uniforms: Iterator[float]) -> list[str]:
        # Python floats and bisect: numpy calls per token would take most of
        # the generation time.
        topic = int(next(uniforms) * self.config.num_topics)
        content_cdf = self._content_cdf_list[topic]
        line = [self.topic_words[topic]]
        stack = []
        while True:
            cdf = self._action_cdf[len(stack), len(line) - 1]
            action = min(bisect.bisect_right(cdf, next(uniforms)), _CONTENT)
            if action == _END:
                return line
            if action == _OPEN:
                bracket = int(next(uniforms) * self.config.num_bracket_types)
                stack.append(bracket)
                line.append(self.openers[bracket])
            elif action == _CLOSE:
                line.append(self.closers[stack.pop()])
            else:
                i = bisect.bisect_right(content_cdf,
                                        next(uniforms) * content_cdf[-1])
                line.append(self.content_words[min(i, len(content_cdf) - 1)])

    def token_log_probs(self, tokens: Sequence[str]) -> np.ndarray:
        """Natural-log probability of each token of a stream of whole
        sentences (each ending in `<eos>`) given all tokens before it."""
        num_topics = self.config.num_topics
        out = np.empty(len(tokens))
        topic, stack, length = None, [], 0
        for t, word in enumerate(tokens):
            kind, index = self._kind.get(word, (None, None))
            if topic is None:
                if kind != "topic":
                    raise ValueError(
                        f"token {t} is {word!r} but a sentence must start "
                        f"with a topic word ({', '.join(self.topic_words)})")
                topic, prob = index, 1.0 / num_topics
            else:
                action_probs = self._action_table[len(stack), length]
                if kind == "content":
                    prob = (action_probs[_CONTENT]
                            * self._content_probs[topic, index])
                elif kind == "open":
                    prob = action_probs[_OPEN] / self.config.num_bracket_types
                    stack.append(index)
                elif kind == "close":
                    matches = bool(stack) and stack.pop() == index
                    prob = action_probs[_CLOSE] if matches else 0.0
                elif kind == "end":
                    prob = action_probs[_END]
                    topic, stack, length = None, [], -1
                else:
                    prob = 0.0
                length += 1
            if prob <= 0:
                raise ValueError(
                    f"token {t} ({word!r}) cannot occur there in the "
                    "synthetic grammar; was the stream made with another "
                    "config?")
            out[t] = np.log(prob)
        return out


def synthetic_corpus(seed: int = 0, num_train_words: int = 60_000,
                     num_valid_words: int = 6_000,
                     num_test_words: int = 6_000,
                     config: Optional[SyntheticTextConfig] = None
                     ) -> lm_corpus.LmCorpus:
    """Draws a corpus named "synthetic" from the grammar.

    Each split holds whole sentences and at least the requested number of
    tokens (counting `<eos>`). The vocabulary lists the training words in
    order of first appearance, then any grammar word the training split
    happens to lack, so its size depends only on `config`.
    """
    sizes = {"train": num_train_words, "valid": num_valid_words,
             "test": num_test_words}
    for split, size in sizes.items():
        if (isinstance(size, bool) or not isinstance(size, numbers.Integral)
                or size < 1):
            raise ValueError(f"num_{split}_words must be an integer >= 1; "
                             f"got {size!r}")
    grammar = SyntheticGrammar(config)
    seeds = np.random.SeedSequence(seed).spawn(len(sizes))
    tokens = {}
    for (split, size), split_seed in zip(sizes.items(), seeds):
        uniforms = _uniforms(np.random.default_rng(split_seed))
        stream = []
        while len(stream) < size:
            stream.extend(grammar._sample_line(uniforms))
            stream.append(lm_corpus.EOS)
        tokens[split] = stream
    vocab = lm_corpus.Vocabulary.from_tokens(
        itertools.chain(tokens["train"], grammar.words))
    return lm_corpus.LmCorpus(
        name="synthetic", vocab=vocab,
        **{split: vocab.encode(stream, split)
           for split, stream in tokens.items()})


def generator_perplexity(corpus: lm_corpus.LmCorpus, split: str = "valid",
                         config: Optional[SyntheticTextConfig] = None
                         ) -> float:
    """The grammar's own perplexity on a split: the floor no model beats.

    Like a language model's evaluation it scores every token but the
    first (the targets of `lm_batches`), so the figures are comparable.
    `config` must be the one the corpus was drawn with.
    """
    ids = corpus.split(split)
    if ids.size < 2:
        raise ValueError(f"split {split!r} of corpus {corpus.name!r} has "
                         f"{ids.size} tokens; at least 2 are needed")
    log_probs = SyntheticGrammar(config).token_log_probs(
        corpus.vocab.decode(ids))
    return float(np.exp(-log_probs[1:].mean()))
