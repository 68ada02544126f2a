"""Vocabulary, corpus and BPTT batches: the originals' semantics on small
hand-checked streams."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from nas_tf.data import lm_batches
from nas_tf.data import lm_corpus

ROOT = pathlib.Path(__file__).resolve().parents[1]



def _stream(n):
    return np.arange(n, dtype=np.int32)


def test_vocabulary_orders_words_by_first_appearance():
    vocab = lm_corpus.Vocabulary.from_tokens("b a b c a".split())
    assert vocab.words == ("b", "a", "c")
    assert len(vocab) == 3
    ids = vocab.encode(["c", "b", "a"])
    assert ids.dtype == np.int32
    assert ids.tolist() == [2, 0, 1]
    assert vocab.decode(ids) == ["c", "b", "a"]


def test_vocabulary_unknown_word_without_unk_names_word_and_split():
    vocab = lm_corpus.Vocabulary.from_tokens(["a", "b"])
    with pytest.raises(ValueError, match=r"'zebra'.*'valid'.*training split"):
        vocab.encode(["a", "zebra"], "valid")


def test_vocabulary_maps_unknown_words_to_unk_when_it_has_one():
    vocab = lm_corpus.Vocabulary.from_tokens(["a", "<unk>", "b"])
    assert vocab.encode(["b", "zebra"]).tolist() == [2, 1]


def test_vocabulary_rejects_bad_entries_and_ids():
    with pytest.raises(ValueError, match="twice"):
        lm_corpus.Vocabulary(["a", "b", "a"])
    with pytest.raises(ValueError, match="whitespace"):
        lm_corpus.Vocabulary(["a b"])
    with pytest.raises(ValueError, match=r"id 5 .*\[0, 1\]"):
        lm_corpus.Vocabulary(["a", "b"]).decode([0, 5])


def test_corpus_from_lines_appends_eos_per_line():
    corpus = lm_corpus.corpus_from_lines(
        "toy", [" the cat \n", "", "the dog"], ["dog cat"], ["the"])
    assert corpus.vocab.words == ("the", "cat", "<eos>", "dog")
    assert corpus.vocab.decode(corpus.train) == [
        "the", "cat", "<eos>", "<eos>", "the", "dog", "<eos>"]
    assert corpus.valid.tolist() == [3, 1, 2]
    assert corpus.test.tolist() == [0, 2]
    assert corpus.split("validation") is corpus.valid
    with pytest.raises(ValueError, match="'dev'.*allowed"):
        corpus.split("dev")


def test_corpus_from_lines_rejects_words_unseen_in_training():
    with pytest.raises(ValueError, match="'fish'.*'test'"):
        lm_corpus.corpus_from_lines("toy", ["a b"], ["a"], ["fish"])


def test_check_vocab_size_message_says_what_to_set():
    corpus = lm_corpus.corpus_from_lines("ptb", ["a b c"], ["a"], ["b"])
    lm_corpus.check_vocab_size(corpus, 4)
    with pytest.raises(ValueError) as error:
        lm_corpus.check_vocab_size(corpus, 10000)
    assert str(error.value) == (
        "the model's vocabulary has 10000 words but corpus 'ptb' has 4; "
        "set vocab_size to 4")


def test_batchify_makes_contiguous_rows_and_drops_remainder():
    batched = lm_batches.batchify(_stream(11), 3)
    assert batched.dtype == np.int32
    np.testing.assert_array_equal(
        batched, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])


@pytest.mark.parametrize("n,batch_size", [(5, 3), (0, 1), (10, 0), (10, 2.0)])
def test_batchify_rejects_short_streams_and_bad_batch_sizes(n, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        lm_batches.batchify(_stream(n), batch_size)


def test_fixed_windows_shift_targets_and_shorten_the_last_window():
    batched = lm_batches.batchify(_stream(24), 2)  # rows 0..11 and 12..23
    windows = list(lm_batches.fixed_windows(batched, 5))
    assert [w.seq_len for w in windows] == [5, 5, 1]
    assert all(w.lr_scale == 1.0 for w in windows)
    np.testing.assert_array_equal(windows[1].inputs, [[5, 6, 7, 8, 9],
                                                      [17, 18, 19, 20, 21]])
    np.testing.assert_array_equal(windows[1].targets, [[6, 7, 8, 9, 10],
                                                       [18, 19, 20, 21, 22]])
    np.testing.assert_array_equal(windows[2].inputs, [[10], [22]])
    np.testing.assert_array_equal(windows[2].targets, [[11], [23]])
    assert lm_batches.num_windows(batched.shape[1], 5) == len(windows)


def _variable(num_steps, bptt, seed):
    batched = lm_batches.batchify(_stream(2 * num_steps), 2)
    rng = np.random.default_rng(seed)
    return list(lm_batches.variable_windows(batched, bptt, rng))


def test_variable_windows_lengths_and_learning_rate_scale():
    bptt = 35
    windows = _variable(20_000, bptt, seed=0)
    lengths = [w.seq_len for w in windows]
    assert all(5 <= n <= bptt + 20 for n in lengths[:-1])
    assert 1 <= lengths[-1] <= bptt + 20
    for w in windows[:-1]:
        assert w.lr_scale == w.seq_len / bptt
        assert w.inputs.shape == w.targets.shape == (2, w.seq_len)
    # The last window may be cut by the data; its scale is the drawn length.
    assert windows[-1].lr_scale >= windows[-1].seq_len / bptt
    # About 5% of windows are centred on bptt / 2.
    short = np.mean([n < 25 for n in lengths])
    assert 0.02 < short < 0.09
    expected = lm_batches.num_windows(20_000, bptt, variable=True)
    assert abs(len(windows) - expected) < 0.05 * expected


def test_variable_windows_cover_the_stream_without_overlap():
    num_steps = 1000
    windows = _variable(num_steps, 35, seed=3)
    inputs = np.concatenate([w.inputs for w in windows], axis=1)
    targets = np.concatenate([w.targets for w in windows], axis=1)
    covered = inputs.shape[1]
    # As in the original loop, a final single step may be left unused.
    assert covered in (num_steps - 2, num_steps - 1)
    np.testing.assert_array_equal(inputs[0], np.arange(covered))
    np.testing.assert_array_equal(targets[0], np.arange(1, covered + 1))


def test_variable_windows_are_deterministic_for_a_seed():
    first = [w.seq_len for w in _variable(5000, 35, seed=7)]
    again = [w.seq_len for w in _variable(5000, 35, seed=7)]
    other = [w.seq_len for w in _variable(5000, 35, seed=8)]
    assert first == again
    assert first != other


def test_window_walks_reject_bad_arguments():
    batched = lm_batches.batchify(_stream(20), 2)
    with pytest.raises(ValueError, match="bptt"):
        next(lm_batches.fixed_windows(batched, 0))
    with pytest.raises(ValueError, match="Generator"):
        next(lm_batches.variable_windows(batched, 5, rng=42))
    with pytest.raises(ValueError, match="shape"):
        next(lm_batches.fixed_windows(_stream(20), 5))


@pytest.mark.slow
def test_importing_the_data_layer_does_not_import_tfds():
    # Only nas_tf.data.ptb needs tensorflow_datasets, which is slow to load.
    code = ("import sys, nas_tf.data, nas_tf.data.lm_corpus, "
            "nas_tf.data.lm_batches, nas_tf.data.synthetic_text, "
            "nas_tf.data.ngram_baselines; "
            "assert 'tensorflow_datasets' not in sys.modules; "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   timeout=120)


def test_numpy_integers_are_accepted_as_sizes():
    batched = lm_batches.batchify(_stream(20), np.int64(2))
    windows = list(lm_batches.fixed_windows(batched, np.int32(4)))
    assert [w.seq_len for w in windows] == [4, 4, 1]
    rng = np.random.default_rng(0)
    assert list(lm_batches.variable_windows(batched, np.int64(4), rng,
                                            np.int64(2)))
