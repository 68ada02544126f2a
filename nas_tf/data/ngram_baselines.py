"""Unigram and bigram perplexities: what a model without memory reaches.

Both are fitted on the training stream with add-one smoothing and, like a
language model's evaluation, score every token of the evaluated split but
its first. A recurrent model that does not beat the bigram figure has
learned nothing a lookup table could not.
"""

import numpy as np

from nas_tf.data import lm_corpus


def _eval_ids(corpus: lm_corpus.LmCorpus, split: str) -> np.ndarray:
    ids = corpus.split(split).astype(np.int64)
    if ids.size < 2:
        raise ValueError(f"split {split!r} of corpus {corpus.name!r} has "
                         f"{ids.size} tokens; at least 2 are needed")
    return ids


def unigram_perplexity(corpus: lm_corpus.LmCorpus,
                       split: str = "valid") -> float:
    """Perplexity of add-one smoothed word frequencies."""
    ids = _eval_ids(corpus, split)
    counts = np.bincount(corpus.train, minlength=len(corpus.vocab)) + 1.0
    log_probs = np.log(counts / counts.sum())
    return float(np.exp(-log_probs[ids[1:]].mean()))


def bigram_perplexity(corpus: lm_corpus.LmCorpus,
                      split: str = "valid") -> float:
    """Perplexity of add-one smoothed P(word | previous word)."""
    ids = _eval_ids(corpus, split)
    vocab_size = len(corpus.vocab)
    train = corpus.train.astype(np.int64)
    # Bigrams as single codes, counted sparsely: PTB's 10k words would need
    # a 10^8-entry dense table.
    codes, counts = np.unique(train[:-1] * vocab_size + train[1:],
                              return_counts=True)
    context_counts = np.bincount(train[:-1], minlength=vocab_size)
    queries = ids[:-1] * vocab_size + ids[1:]
    pos = np.minimum(np.searchsorted(codes, queries), max(codes.size - 1, 0))
    found = codes.size > 0 and codes[pos] == queries
    pair_counts = np.where(found, counts[pos] if codes.size else 0, 0)
    log_probs = np.log((pair_counts + 1.0)
                       / (context_counts[ids[:-1]] + vocab_size))
    return float(np.exp(-log_probs.mean()))
