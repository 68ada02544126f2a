"""The DARTS recurrent search network: the original's parameter count,
one-hot weights against the fixed language model, gradients to the mixing
weights, the state between windows, the search batch norm against the
original's cell written out in NumPy, and bad input."""

import numpy as np
import pytest
import tensorflow as tf

from nas_tf import config
from nas_tf import spaces
from nas_tf.builders import language_model
from nas_tf.supernets import darts_rnn

VOCAB, HIDDEN = 11, 4


def _config(**overrides):
    fields = dict(vocab_size=VOCAB, hidden_size=HIDDEN, init_range=0.5)
    fields.update(overrides)
    return config.LmConfig(**fields)


def _no_dropout(**overrides):
    return _config(output_dropout=0.0, hidden_dropout=0.0, x_dropout=0.0,
                   input_dropout=0.0, embedding_dropout=0.0, **overrides)


def _tokens(batch=3, steps=5, seed=0):
    return tf.constant(np.random.default_rng(seed).integers(
        0, VOCAB, (batch, steps)), tf.int32)


def _softmax_weights(num_edges, seed=0):
    alpha = np.random.default_rng(seed).normal(size=(num_edges, 5))
    return tf.nn.softmax(tf.constant(alpha, tf.float32), axis=-1)


def _one_hot_weights(space, arch):
    """Each node's one (predecessor, op) of ``arch`` set to 1."""
    weights = np.zeros((darts_rnn.num_edges(space.steps), 5), np.float32)
    for i, (pred, act) in enumerate(space.decode(arch).nodes, start=1):
        weights[darts_rnn.edge_offset(i) + pred,
                darts_rnn.PRIMITIVES.index(act)] = 1.0
    return tf.constant(weights)


def test_parameter_count_of_the_search_model_at_the_original_sizes():
    # rnn/train_search.py: emsize = nhid = 300, PTB's 10,000 words,
    # STEPS = 8 (rnn/genotypes.py). RNNModelSearch's parameters():
    #   encoder [10000, 300] (the decoder's weight is the same tensor)
    #   + decoder bias [10000]
    #   + _W0 [300 + 300, 600] + 8 x _Ws[i] [300, 600]
    #   = 3,000,000 + 10,000 + 360,000 + 1,440,000 = 4,810,000;
    # alpha (weights [36, 5]) is a plain Variable outside parameters(),
    # and BatchNorm1d(affine=False) has only buffers.
    vocab, hidden, steps = 10000, 300, 8
    expected = (vocab * hidden + vocab + (2 * hidden) * (2 * hidden)
                + steps * hidden * 2 * hidden)
    assert expected == 4_810_000
    model = darts_rnn.build(spaces.get_space("darts_rnn", steps=steps),
                            config.LmConfig(vocab_size=vocab,
                                            hidden_size=hidden), seed=0)
    assert sum(int(np.prod(w.shape))
               for w in model.trainable_weights) == expected
    # The norm's running mean and variance (buffers in PyTorch).
    assert model.count_params() == expected + 2 * hidden
    assert (model.num_edges, model.num_ops) == (36, 5)
    assert darts_rnn.edges(steps)[:4] == [(1, 0), (2, 0), (2, 1), (3, 0)]


@pytest.mark.parametrize("name", ["DARTS_V2_RNN", "DARTS_V1_RNN"])
def test_one_hot_weights_compute_the_fixed_language_model(name):
    space = spaces.get_space("darts_rnn", steps=8)
    arch = spaces.resolve_architecture(space, name)
    cfg = _no_dropout()
    supernet = darts_rnn.build(space, cfg, seed=1, batch_norm=False)
    fixed = language_model.build_language_model(space, arch, cfg, seed=7)
    rng = np.random.default_rng(0)
    fixed.decoder_bias.assign(rng.normal(size=VOCAB))
    # The fixed cell's weights by name: node{i}_kernel, i = 0..8.
    for kernel in fixed.cell.node_kernels:
        name_ = kernel.path.split("/")[-1]
        getattr(supernet.cell, name_).assign(kernel)
    supernet.embedding.embeddings.assign(fixed.embedding.embeddings)
    supernet.decoder_bias.assign(fixed.decoder_bias)
    forward = tf.function(lambda tokens, weights, state: supernet.forward(
        tokens, weights, state))
    tokens = _tokens(steps=6)
    expected = fixed.forward(tokens[:, :3])
    got = forward(tokens[:, :3], _one_hot_weights(space, arch),
                  supernet.initial_state(3))
    np.testing.assert_allclose(got.logits, expected.logits, rtol=1e-5,
                               atol=1e-5)
    expected = fixed.forward(tokens[:, 3:], expected.state)
    got = forward(tokens[:, 3:], _one_hot_weights(space, arch), got.state)
    np.testing.assert_allclose(got.logits, expected.logits, rtol=1e-5,
                               atol=1e-5)
    # Other weights, same graph.
    forward(tokens[:, :3], _softmax_weights(36), got.state)
    assert forward.experimental_get_tracing_count() == 1


def _loss(model, tokens, weights, training):
    logits = model.forward(tokens[:, :-1], weights, training=training).logits
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        tokens[:, 1:], logits))


@pytest.mark.parametrize("batch_norm", [True, False])
def test_gradients_reach_the_weights_and_none_gets_none(batch_norm):
    space = spaces.get_space("darts_rnn", steps=3)
    model = darts_rnn.build(space, _config(), seed=0, batch_norm=batch_norm)
    tokens = _tokens(batch=4, steps=4)
    alpha = tf.Variable(1e-3 * np.random.default_rng(0).normal(
        size=(6, 5)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = _loss(model, tokens, tf.nn.softmax(alpha, axis=-1), True)
    grad = tape.gradient(loss, alpha).numpy()
    assert np.isfinite(grad).all() and (grad != 0).all()
    # Weights given directly: 'none' (column 0) contributes nothing.
    weights = tf.Variable(np.random.default_rng(1).uniform(
        0.1, 1.0, size=(6, 5)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = _loss(model, tokens, weights, True)
    grad = tf.convert_to_tensor(tape.gradient(loss, weights)).numpy()
    assert np.isfinite(grad).all()
    assert not grad[:, 0].any()
    assert (grad[:, 1:] != 0).all()


def test_the_state_carries_between_windows():
    space = spaces.get_space("darts_rnn", steps=4)
    model = darts_rnn.build(space, _config(), seed=0)
    weights, tokens = _softmax_weights(10), _tokens(steps=7)
    first = model.forward(tokens[:, :3], weights)
    assert [s.shape for s in first.state] == [(3, HIDDEN)]
    np.testing.assert_allclose(first.state[0], first.raw_outputs[:, -1])
    second = model.forward(tokens[:, 3:], weights, first.state)
    whole = model.forward(tokens, weights)
    np.testing.assert_allclose(second.logits, whole.logits[:, 3:],
                               rtol=1e-5, atol=1e-5)
    fresh = model.forward(tokens[:, 3:], weights)
    assert not np.allclose(fresh.logits, second.logits)
    # Training windows hand their state on too.
    out = model.forward(tokens[:, 3:], weights, first.state, training=True)
    assert [s.shape for s in out.state] == [(3, HIDDEN)]


def _search_cell_numpy(x, h, weights, kernels, norm, training):
    """model_search.py DARTSCellSearch.cell, one step without dropout,
    written out from the original: one BatchNorm1d(affine=False) after s0
    and each node; ``norm`` holds its running moments and is updated per
    use in training (momentum 0.1, unbiased variance)."""
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    fns = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0),
           "sigmoid": sigmoid, "identity": lambda v: v}
    def bn(v):
        if training:
            mean, var = v.mean(0), v.var(0)
            n = v.shape[0]
            norm["mean"] = 0.9 * norm["mean"] + 0.1 * mean
            norm["var"] = 0.9 * norm["var"] + 0.1 * var * n / (n - 1)
        else:
            mean, var = norm["mean"], norm["var"]
        return (v - mean) / np.sqrt(var + 1e-5)

    c0, h0 = np.split(np.concatenate([x, h], -1) @ kernels[0], 2, -1)
    states = [bn(h + sigmoid(c0) * (np.tanh(h0) - h))]
    offset = 0
    for i in range(1, len(kernels)):
        stacked = np.stack(states)
        c, hh = np.split(stacked @ kernels[i], 2, -1)
        c = sigmoid(c)
        s = np.zeros_like(states[0])
        for k, name in enumerate(darts_rnn.PRIMITIVES):
            if name == "none":
                continue
            unweighted = stacked + c * (fns[name](hh) - stacked)
            s += np.sum(weights[offset:offset + i, k, None, None] *
                        unweighted, 0)
        states.append(bn(s))
        offset += i
    return np.mean(states[1:], 0)


def test_search_batch_norm_follows_the_original_in_training_and_eval():
    space = spaces.get_space("darts_rnn", steps=3)
    model = darts_rnn.build(space, _no_dropout(), seed=2)
    tokens, weights = _tokens(batch=5, steps=3, seed=1), _softmax_weights(6)
    kernels = [k.numpy().astype(np.float64) for k in model.cell.node_kernels]
    table = model.embedding.embeddings.numpy().astype(np.float64)
    w = weights.numpy().astype(np.float64)
    norm = {"mean": np.zeros(HIDDEN), "var": np.ones(HIDDEN)}

    def reference(training, h):
        outputs = []
        for t in range(tokens.shape[1]):
            h = _search_cell_numpy(table[tokens.numpy()[:, t]], h, w,
                                   kernels, norm, training)
            outputs.append(h)
        return np.stack(outputs, 1)

    h = np.zeros((5, HIDDEN))
    got = model.forward(tokens, weights, training=True)
    np.testing.assert_allclose(got.raw_outputs, reference(True, h),
                               rtol=1e-4, atol=1e-5)
    # 3 steps x 4 uses of the one norm, applied in order.
    np.testing.assert_allclose(model.cell.norm.moving_mean, norm["mean"],
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.cell.norm.moving_variance, norm["var"],
                               rtol=1e-4, atol=1e-6)
    # Evaluation uses the moving moments and leaves them alone.
    h = np.random.default_rng(3).normal(size=(5, HIDDEN))
    got = model.forward(tokens, weights, [tf.constant(h, tf.float32)])
    np.testing.assert_allclose(got.raw_outputs, reference(False, h),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.cell.norm.moving_mean, norm["mean"],
                               rtol=1e-4, atol=1e-6)


def test_training_only_adds_dropout_whose_masks_follow_the_seed():
    space = spaces.get_space("darts_rnn", steps=3)
    tokens, weights = _tokens(), _softmax_weights(6)
    plain = darts_rnn.build(space, _no_dropout(), seed=0, batch_norm=False)
    np.testing.assert_allclose(plain(tokens, weights, training=True),
                               plain(tokens, weights), rtol=1e-6)
    first, second = (darts_rnn.build(space, _config(), seed=4)
                     for _ in range(2))
    a, b = (first(tokens, weights, training=True) for _ in range(2))
    assert not np.allclose(a, b)  # new masks every window
    np.testing.assert_array_equal(second(tokens, weights, training=True), a)


def test_bad_weights_spaces_and_configs_are_refused():
    space = spaces.get_space("darts_rnn", steps=3)
    model = darts_rnn.build(space, _config(), seed=0)
    tokens = _tokens()
    with pytest.raises(ValueError, match=r"weights have shape \(6, 4\); "
                       r".* takes \[6, 5\]: one row per edge"):
        model.forward(tokens, tf.zeros([6, 4]))
    with pytest.raises(ValueError, match=r"shape \(36, 5\); .* \[6, 5\]"):
        model(tokens, tf.zeros([36, 5]))
    with pytest.raises(ValueError, match="weights have dtype int32"):
        model(tokens, tf.zeros([6, 5], tf.int32))
    with pytest.raises(ValueError, match="takes a darts_rnn space, got "
                       "'enas_rnn'"):
        darts_rnn.build(spaces.get_space("enas_rnn"), _config())
    with pytest.raises(ValueError, match="average='loose_ends', allowed: "
                       "'all'"):
        darts_rnn.build(spaces.get_space("darts_rnn", average="loose_ends"),
                        _config())
    with pytest.raises(ValueError, match="takes an LmConfig, got "
                       "ChildConfig"):
        darts_rnn.build(space, config.ChildConfig())
    with pytest.raises(ValueError, match="batch_norm='yes'; allowed"):
        darts_rnn.build(space, _config(), batch_norm="yes")
