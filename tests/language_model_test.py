"""The language model: parameter counts of the originals, tying, dropouts,
saving, and configuration errors."""

import dataclasses
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf import config
from nas_tf import spaces
from nas_tf.builders import build_model
from nas_tf.builders import language_model


def _model(name, seed=0, **lm):
    entry = spaces.PUBLISHED[name]
    space = spaces.get_space(entry.space, **entry.params)
    arch = spaces.resolve_architecture(space, name)
    return build_model(space, arch, config.LmConfig(**lm), seed=seed)


def _count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name,lm,expected", [
    # DARTS eval (ORIGINALS 4.4): 10000*850 embedding + 10000 decoder bias
    # + 1700*1700 (W0) + 8 * 850*1700 = 22,960,000 ("23M").
    ("DARTS_V2_RNN", {}, 10000 * 850 + 10000 + 1700 ** 2 + 8 * 850 * 1700),
    # ENAS ptb_final.sh: hidden 748, 12 nodes, no decoder bias.
    ("ENAS_PTB_SCRIPT", {"hidden_size": 748, "decoder_bias": False},
     7_480_000 + 2_238_016 + 12_309_088),
    # enas_lm fixed: hidden 800, 8 nodes after node 0.
    ("ENAS_LM", {"hidden_size": 800, "decoder_bias": False}, 20_800_000),
    # NASCell: 8 * units * (in + units), no biases (TF Addons default).
    ("NASCell", {"hidden_size": 976}, 10000 * 976 + 10000 + 8 * 976 * 1952),
])
def test_parameter_counts_of_the_originals(name, lm, expected):
    assert _count(_model(name, **lm)) == expected


def test_decoder_is_tied_to_the_embedding_and_adds_its_bias():
    model = _model("DARTS_V1_RNN", vocab_size=50, hidden_size=8)
    model.decoder_bias.assign(np.arange(50, dtype="float32"))
    tokens = np.array([[1, 2, 3]])
    out = model.forward(tokens)
    table = model.embedding.embeddings.numpy()
    expected = out.raw_outputs.numpy() @ table.T + np.arange(50)
    np.testing.assert_allclose(out.logits, expected, rtol=1e-5, atol=1e-5)
    assert len(model.trainable_weights) == 1 + 1 + 9  # table, bias, W0..W8


def test_untied_decoder_has_its_own_kernel_and_no_bias():
    model = _model("DARTS_V1_RNN", vocab_size=50, hidden_size=8,
                   tie_weights=False, decoder_bias=False)
    assert _count(model) == 50 * 8 * 2 + 16 * 16 + 8 * 8 * 16


def test_word_dropout_drops_whole_words_and_locked_dropout_whole_rows():
    model = _model("DARTS_V2_RNN", vocab_size=30, hidden_size=16,
                   embedding_dropout=0.5)
    tokens = tf.constant([[3, 7, 3, 7, 3]] * 40)
    embedded = model._embed(tokens, training=True).numpy()
    zero = np.all(embedded == 0, axis=-1)
    # One mask per word of the vocabulary: every occurrence agrees.
    assert np.all(zero[:, 0] == zero[:, 2]) and np.all(zero[:, 2] ==
                                                       zero[:, 4])
    x = tf.ones([8, 6, 10])
    dropped = language_model._locked_dropout(
        x, 0.5, keras.random.SeedGenerator(0)).numpy()
    assert np.all(dropped == dropped[:, :1, :])
    assert set(np.unique(dropped)) == {0.0, 2.0}


def test_evaluation_is_deterministic_and_training_is_not():
    model = _model("ENAS_LM", vocab_size=40, hidden_size=12)
    tokens = np.random.default_rng(0).integers(0, 40, (4, 9))
    a, b = model(tokens), model(tokens)
    np.testing.assert_array_equal(a, b)
    c = model(tokens, training=True)
    assert not np.allclose(a, c)


def test_state_carries_across_windows():
    model = _model("NASCell", vocab_size=20, hidden_size=6)
    tokens = np.random.default_rng(1).integers(0, 20, (2, 8))
    whole = model.forward(tokens).logits.numpy()
    first = model.forward(tokens[:, :5])
    second = model.forward(tokens[:, 5:], first.state).logits.numpy()
    np.testing.assert_allclose(whole[:, 5:], second, rtol=1e-5, atol=1e-5)


def test_keras_save_and_load_give_the_same_logits(tmp_path):
    model = _model("ENAS_PTB", vocab_size=25, hidden_size=7)
    tokens = np.arange(12).reshape(2, 6) % 25
    path = str(tmp_path / "lm.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(model(tokens), loaded(tokens), rtol=1e-6)
    assert loaded.space.format(loaded.architecture) == model.space.format(
        model.architecture)


def test_config_of_the_wrong_kind_is_refused():
    space = spaces.get_space("darts_rnn")
    with pytest.raises(ValueError, match="builds a language model and takes "
                       "a LmConfig, got ChildConfig"):
        build_model(space, space.sample(0), config.ChildConfig())
    cnn = spaces.get_space("darts_cnn")
    with pytest.raises(ValueError, match="takes a ChildConfig"):
        build_model(cnn, cnn.sample(0), config.LmConfig())


@pytest.mark.parametrize("field,value,message", [
    ("hidden_dropout", 1.0, "hidden_dropout=1.0; allowed: [0, 1)"),
    ("vocab_size", 1, "vocab_size=1; it must be at least 2"),
    ("highway_split", "middle", "highway_split='middle'; allowed: ''"),
])
def test_bad_lm_config(field, value, message):
    with pytest.raises(ValueError) as error:
        config.LmConfig(**{field: value})
    assert message in str(error.value)


def test_seeded_model_draws_independent_input_and_hidden_masks():
    model = _model("DARTS_V2_RNN", vocab_size=20, hidden_size=64,
                   input_dropout=0.5, hidden_dropout=0.5)
    embedding = model.embedding.embeddings.numpy()
    node0 = model.cell.node_kernels[0].numpy()
    assert not np.allclose(embedding[:5, :5], node0[:5, :5])
    locked = language_model._locked_dropout(
        tf.ones([4, 1, 64]), 0.5, model._dropout_seed).numpy()[:, 0]
    hidden = model.cell.get_recurrent_dropout_mask(tf.ones([4, 64])).numpy()
    assert not np.array_equal(locked == 0, hidden == 0)


@pytest.mark.parametrize("preset", ["darts_ptb_final", "enas_ptb_final",
                                    "enas_lm_ptb_final", "nasrl_ptb_final"])
def test_ptb_presets_are_valid_recipes(preset):
    path = pathlib.Path(__file__).parents[1] / "configs" / f"{preset}.cfg"
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("--"):
            name, _, value = line[2:].partition("=")
            if not value:  # --flag / --noflag
                name, value = (name[2:], False) if name.startswith("no") and \
                    name[2:] in _BOOLS else (name, True)
            values[name] = value
    for cls in (config.LmConfig, config.LmTrainConfig):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        typed = {k: type(getattr(cls(), k))(v) if not isinstance(v, bool)
                 else v for k, v in values.items() if k in fields}
        missing = set(fields) - set(typed)
        assert not missing - {"max_steps", "log_every", "lr_decay",
                              "lr_decay_start", "lr_min",
                              "max_seq_len_delta", "highway_split",
                              "activation_reg_on"}, missing
        cls(**typed)


_BOOLS = {"tie_weights", "decoder_bias", "variable_bptt", "extended"}
