"""The synthetic corpus: reproducible, small, and with structure that only a
model with memory can learn."""

import numpy as np
import pytest

from nas_tf.data import lm_corpus
from nas_tf.data import ngram_baselines
from nas_tf.data import synthetic_text



@pytest.fixture(scope="module")
def corpus():
    return synthetic_text.synthetic_corpus(seed=0)


def test_same_seed_same_corpus_other_seed_other_corpus(corpus):
    again = synthetic_text.synthetic_corpus(seed=0)
    other = synthetic_text.synthetic_corpus(seed=1)
    assert again.vocab.words == corpus.vocab.words
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(again, split),
                                      getattr(corpus, split))
    assert not np.array_equal(other.train[:1000], corpus.train[:1000])
    # Splits are drawn from independent streams.
    assert not np.array_equal(corpus.valid[:500], corpus.test[:500])


def test_sizes_and_bounded_vocabulary(corpus):
    assert corpus.name == "synthetic"
    assert 60_000 <= corpus.train.size < 60_000 + 30
    assert 6_000 <= corpus.valid.size < 6_000 + 30
    assert 6_000 <= corpus.test.size < 6_000 + 30
    grammar = synthetic_text.SyntheticGrammar()
    assert len(corpus.vocab) == len(grammar.words) <= 300
    assert set(corpus.vocab.words) == set(grammar.words)
    small = synthetic_text.synthetic_corpus(
        seed=2, num_train_words=50, num_valid_words=10, num_test_words=10)
    assert len(small.vocab) == len(grammar.words)
    lm_corpus.check_vocab_size(small, len(grammar.words))


def test_sentences_follow_the_grammar(corpus):
    config = synthetic_text.SyntheticTextConfig()
    words = corpus.vocab.decode(corpus.valid)
    lines, line = [], []
    for word in words:
        if word == "<eos>":
            lines.append(line)
            line = []
        else:
            line.append(word)
    closer_of = dict(zip("([{<", ")]}>"))
    for line in lines:
        assert line[0].startswith("T")
        assert config.min_len <= len(line) - 1 <= config.max_len
        stack = []
        for word in line[1:]:
            if word in closer_of:
                stack.append(closer_of[word])
                assert len(stack) <= config.max_depth
            elif word in closer_of.values():
                assert stack.pop() == word
        assert not stack


def test_generator_perplexity_is_well_below_the_bigram_baseline(corpus):
    floor = synthetic_text.generator_perplexity(corpus, "valid")
    bigram = ngram_baselines.bigram_perplexity(corpus, "valid")
    unigram = ngram_baselines.unigram_perplexity(corpus, "valid")
    assert floor < 0.8 * bigram
    assert bigram < unigram
    # Even a bigram table fitted to the very tokens it is scored on stays
    # far above the floor: the gap is long-range structure, not data size.
    assert synthetic_text.generator_perplexity(corpus, "train") < (
        0.8 * ngram_baselines.bigram_perplexity(corpus, "train"))


def test_grammar_scoring_rejects_ungrammatical_streams():
    grammar = synthetic_text.SyntheticGrammar()
    with pytest.raises(ValueError, match="start with a topic word"):
        grammar.token_log_probs(["w000", "<eos>"])
    with pytest.raises(ValueError, match=r"token 3 \('\]'\)"):
        grammar.token_log_probs(["T0", "(", "f00", "]"])


def test_ngram_baselines_on_a_hand_example():
    toy = lm_corpus.corpus_from_lines("toy", ["a b", "a b"], ["a b"], [""])
    # Vocabulary a, b, <eos>; train bigrams a>b twice, b><eos> twice,
    # <eos>>a once. Valid scores b|a and <eos>|b, each (2 + 1) / (2 + 3).
    assert ngram_baselines.bigram_perplexity(toy) == pytest.approx(5 / 3)
    # Unigram: counts 2, 2, 2 plus one each: every word 1/3.
    assert ngram_baselines.unigram_perplexity(toy) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="at least 2"):
        ngram_baselines.bigram_perplexity(toy, "test")


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="num_topics"):
        synthetic_text.SyntheticTextConfig(num_topics=0)
    with pytest.raises(ValueError, match="min_len"):
        synthetic_text.SyntheticTextConfig(min_len=30, max_len=24)
    with pytest.raises(ValueError, match="num_train_words"):
        synthetic_text.synthetic_corpus(num_train_words=0)
