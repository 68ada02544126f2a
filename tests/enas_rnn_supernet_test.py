"""The ENAS recurrent supernet: one compiled step for every arc, the
originals' parameter counts, the selection of matrices, activations and
predecessors against the fixed model, idle weights' zero gradients, and the
ENAS code's batch norm."""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf import config
from nas_tf import spaces
from nas_tf.builders import language_model
from nas_tf.supernets import arc_tensor
from nas_tf.supernets import build_supernet
from nas_tf.supernets import enas_rnn

VOCAB, HIDDEN = 11, 4


def _config(**overrides):
    fields = dict(vocab_size=VOCAB, hidden_size=HIDDEN, decoder_bias=False,
                  init_range=0.5)
    fields.update(overrides)
    return config.LmConfig(**fields)


def _no_dropout(**overrides):
    return _config(output_dropout=0.0, hidden_dropout=0.0, x_dropout=0.0,
                   input_dropout=0.0, embedding_dropout=0.0, **overrides)


def _tokens(batch=3, steps=5, seed=0):
    return tf.constant(np.random.default_rng(seed).integers(
        0, VOCAB, (batch, steps)), tf.int32)


def _slice_of(space, arc, node):
    """Where the original keeps the matrix ``arc`` uses at ``node``:
    enas_lm child.py w_skip[node][f, p] (and w_prev unsliced); the ENAS
    code's rows (p * F + f) * H of w_skip[node], i.e. [p, f] of its
    [node, F, H, 2H] view (and w_prev's [f0] block)."""
    values = space.values(arc)
    if node == 0:
        return (values["node0/activation"],) if space.sample_node0 else ()
    p, f = values[f"node{node}/input"], values[f"node{node}/activation"]
    return (f, p) if space.layout == "enas_lm" else (p, f)


def test_parameter_count_of_the_enas_lm_search_supernet():
    # enas_lm search: hidden 200 (child.py hidden_size), 9 nodes after
    # node 0 (controller.py controller_num_layers), 4 functions
    # (controller_num_functions), PTB's 10,000 words, decoder tied to the
    # embedding (w_soft = w_emb) and without bias.
    vocab, hidden, nodes, functions = 10000, 200, 9, 4
    expected = (
        vocab * hidden  # child.py embedding/w [vocab_size, hidden_size]
        + (2 * hidden) * (2 * hidden)  # rnn_cell/w_prev [2H, 2H]
        # rnn_cell/layer_{i}/w [num_functions, i, H, 2H], i = 1..9
        + sum(functions * i * hidden * 2 * hidden
              for i in range(1, nodes + 1)))
    assert expected == 16_560_000
    space = spaces.get_space("enas_rnn", layout="enas_lm", num_nodes=nodes)
    model = build_supernet(space, config.LmConfig(
        vocab_size=vocab, hidden_size=hidden, decoder_bias=False), seed=0)
    assert model.count_params() == expected  # before any call
    assert sum(int(np.prod(w.shape)) for w in
               model.trainable_weights) == expected


def test_parameter_count_of_the_enas_code_supernet_with_its_batch_norms():
    vocab, hidden, depth, functions = VOCAB, HIDDEN, 5, 4
    trainable = (
        vocab * hidden  # embedding/w
        # rnn/layer_0/w_prev [2 * num_funcs * H, 2H]
        + 2 * functions * hidden * 2 * hidden
        # rhn_layer_{i}/w [num_funcs * i * H, 2H], i = 1..rhn_depth-1
        + sum(functions * i * hidden * 2 * hidden for i in range(1, depth))
        # rhn_layer_{i}/batch_norm offset and scale [2H], i = 0..depth-1
        + depth * 2 * (2 * hidden)
        + 2 * hidden)  # the output's batch_norm offset and scale [H]
    # Moving mean and variance beside each offset and scale, and one update
    # count per norm (TF1's zero-debias local_step).
    moving = depth * 2 * (2 * hidden) + 2 * hidden + (depth + 1)
    space = spaces.get_space("enas_rnn", layout="enas_code", num_nodes=depth)
    model = build_supernet(space, _config(), seed=0)
    assert sum(int(np.prod(w.shape))
               for w in model.trainable_weights) == trainable
    assert model.count_params() == trainable + moving


@pytest.mark.parametrize("layout,average,seed", [
    ("enas_lm", "all", 0), ("enas_code", "loose_ends", 1),
    ("enas_lm", "loose_ends", 2)])
def test_a_fixed_arc_computes_the_fixed_language_model(layout, average, seed):
    space = spaces.get_space("enas_rnn", layout=layout, num_nodes=5,
                             average=average)
    cfg = _config()
    # The ENAS code's fixed child has no batch norm.
    supernet = enas_rnn.build(space, cfg, seed=seed, batch_norm=False)
    forward = tf.function(
        lambda tokens, arc, state: supernet.forward(tokens, arc, state))
    tokens = _tokens(steps=8, seed=seed)
    rng = random.Random(seed)
    for _ in range(3):
        arch = space.sample(rng)
        fixed = language_model.build_language_model(space, arch, cfg,
                                                    seed=seed + 10)
        # The fixed model's weights go where the original keeps the arc's.
        supernet.embedding.embeddings.assign(fixed.embedding.embeddings)
        for node, kernel in enumerate(fixed.cell.node_kernels):
            shared = supernet.cell.node_kernels[node]
            values = shared.numpy()
            values[_slice_of(space, arch, node)] = kernel.numpy()
            shared.assign(values)
        expected = fixed.forward(tokens[:, :4])
        got = forward(tokens[:, :4], arc_tensor(arch),
                      supernet.initial_state(3))
        np.testing.assert_allclose(got.logits, expected.logits, rtol=1e-5,
                                   atol=1e-5)
        # The state carries into the next window.
        expected = fixed.forward(tokens[:, 4:], expected.state)
        got = forward(tokens[:, 4:], arc_tensor(arch), got.state)
        np.testing.assert_allclose(got.state[0], expected.state[0],
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got.logits, expected.logits, rtol=1e-5,
                                   atol=1e-5)
        for node, kernel in enumerate(supernet.selected_kernels(
                arc_tensor(arch))):
            np.testing.assert_array_equal(kernel,
                                          fixed.cell.node_kernels[node])
    assert forward.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("layout", ["enas_lm", "enas_code"])
def test_each_activation_index_gives_a_different_output(layout):
    space = spaces.get_space("enas_rnn", layout=layout, num_nodes=3)
    model = build_supernet(space, _no_dropout(), seed=0)
    # Every (activation, predecessor) pair gets the same matrix, so only
    # the activation can change the output.
    for node, kernel in enumerate(model.cell.node_kernels):
        if node == 0 and layout == "enas_lm":
            continue  # one matrix: node 0 is always tanh
        values = kernel.numpy()
        axis = 0 if layout == "enas_lm" or node == 0 else 1
        same = np.take(values, [0], axis=axis)
        kernel.assign(np.broadcast_to(same, values.shape))
    tokens = _tokens()
    base = list(space.sample(0).tokens)
    positions = [space.token_names().index(name) for name in
                 ("node0/activation", "node1/activation")
                 if name in space.token_names()]
    for position in positions:
        outputs = []
        for activation in range(len(space.activations)):
            arc = list(base)
            arc[position] = activation
            outputs.append(model.forward(tokens, tf.constant(arc)).logits)
        for i in range(len(outputs)):
            for j in range(i):
                assert not np.allclose(outputs[i], outputs[j]), (
                    f"{space.token_names()[position]}: activations "
                    f"{space.activations[i]} and {space.activations[j]} "
                    f"give the same output")


@pytest.mark.parametrize("layout", ["enas_lm", "enas_code"])
def test_only_the_arcs_weight_slices_get_gradients(layout):
    space = spaces.get_space("enas_rnn", layout=layout, num_nodes=4)
    model = build_supernet(space, _config(), seed=0)
    arch = space.sample(3)
    tokens = _tokens(steps=4)
    kernels = model.cell.node_kernels
    with tf.GradientTape() as tape:
        logits = model.forward(tokens[:, :-1], arc_tensor(arch),
                               training=True).logits
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tokens[:, 1:], logits))
    grads = tape.gradient(loss, kernels)
    for node, grad in enumerate(grads):
        grad = tf.convert_to_tensor(grad).numpy()
        used = _slice_of(space, arch, node)
        assert np.abs(grad[used]).sum() > 0, f"node {node}"
        grad[used] = 0
        assert not grad.any(), f"node {node}: idle slices have gradients"


@pytest.mark.slow  # 5-10 s on two shared cores, half of it tracing
def test_two_hundred_architectures_trace_each_compiled_step_once():
    space = spaces.get_space("enas_rnn", layout="enas_lm", num_nodes=4)
    model = build_supernet(space, _config(vocab_size=8, hidden_size=3),
                           seed=0)
    optimizer = keras.optimizers.SGD(0.5)
    optimizer.build(model.trainable_variables)
    traces = {"train": 0, "eval": 0}

    def loss_of(inputs, targets, arc, state, training):
        out = model.forward(inputs, arc, state, training=training)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            targets, out.logits)), out.state

    @tf.function
    def train_step(inputs, targets, arc, state):
        traces["train"] += 1
        with tf.GradientTape() as tape:
            loss, state = loss_of(inputs, targets, arc, state, True)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss, state

    @tf.function
    def eval_step(inputs, targets, arc, state):
        traces["eval"] += 1
        return loss_of(inputs, targets, arc, state, False)

    tokens = np.random.default_rng(0).integers(0, 8, (2, 4))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    rng = random.Random(0)
    state = model.initial_state(2)
    first = [w.numpy() for w in model.trainable_weights]
    eval_losses = set()
    for _ in range(200):
        arc = arc_tensor(space.sample(rng))
        loss, state = train_step(inputs, targets, arc, state)
        eval_loss, _ = eval_step(inputs, targets, arc, state)
        assert np.isfinite(loss) and np.isfinite(eval_loss)
        eval_losses.add(float(eval_loss))
    assert traces == {"train": 1, "eval": 1}
    assert len(eval_losses) > 100  # the arcs and the weights did change
    assert all(not np.array_equal(a, w)
               for a, w in zip(first, model.trainable_weights))


def _moments_numpy(x):
    return x.mean(0), x.var(0)


def test_batch_norm_moving_averages_are_tf1_zero_debiased_emas():
    norm = enas_rnn.SearchBatchNorm(3)
    rng = np.random.default_rng(0)
    # TF1 assign_moving_average(zero_debias=True), one update at a time:
    # biased -= (biased - value) * (1 - decay); step += 1;
    # moving = biased / (1 - decay ** step).
    biased_mean, biased_variance, step = np.zeros(3), np.zeros(3), 0
    for steps in (4, 1, 3):
        means = rng.normal(size=(steps, 3)).astype("float32")
        variances = rng.uniform(0.5, 2.0, size=(steps, 3)).astype("float32")
        norm.update_moving(tf.constant(means), tf.constant(variances))
        for mean, variance in zip(means, variances):
            biased_mean -= (biased_mean - mean) * (1 - 0.999)
            biased_variance -= (biased_variance - variance) * (1 - 0.999)
            step += 1
        np.testing.assert_allclose(
            norm.moving_mean, biased_mean / (1 - 0.999 ** step), rtol=1e-4)
        np.testing.assert_allclose(
            norm.moving_variance, biased_variance / (1 - 0.999 ** step),
            rtol=1e-4)
    assert norm.num_updates.numpy() == step


def _enas_code_cell_numpy(x, h, arch, space, model):
    """ptb_enas_child.py _rhn_enas for one step, batch norms in inference,
    written out from the original."""
    cell = model.cell
    acts = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0),
            "identity": lambda v: v, "sigmoid": lambda v: 1 / (1 + np.exp(
                -v))}

    def norm(v, layer):
        return (layer.scale.numpy() * (v - layer.moving_mean.numpy()) /
                np.sqrt(1.0 + layer.moving_variance.numpy()) +
                layer.offset.numpy())

    def node(s_prev, inputs, kernel, layer, activation):
        value, gate = np.split(norm(inputs @ kernel, layer), 2, axis=-1)
        gate = 1 / (1 + np.exp(-gate))
        return s_prev + gate * (acts[activation](value) - s_prev)

    dag = space.decode(arch)
    kernels = [k.numpy() for k in cell.node_kernels]
    states = [node(h, np.concatenate([x, h], -1),
                   kernels[0][_slice_of(space, arch, 0)], cell.norms[0],
                   dag.node0_activation)]
    for i, (pred, activation) in enumerate(dag.nodes, start=1):
        states.append(node(states[pred], states[pred],
                           kernels[i][_slice_of(space, arch, i)],
                           cell.norms[i], activation))
    average = np.mean([states[i] for i in dag.average], axis=0)
    return norm(average, cell.output_norm)


def test_enas_code_norms_train_on_batch_and_evaluate_on_moving_moments():
    space = spaces.get_space("enas_rnn", layout="enas_code", num_nodes=4)
    model = build_supernet(space, _no_dropout(), seed=0)
    arch = space.sample(5)
    tokens = _tokens(batch=6, steps=1)
    x = model.embedding.embeddings.numpy()[tokens.numpy()[:, 0]]
    # One training step from h = 0: node 0's norm now holds the moments of
    # [x, 0] times the arc's node-0 matrix (debiased: exactly them).
    node0 = model.cell.node_kernels[0].numpy()[_slice_of(space, arch, 0)]
    projected = np.concatenate([x, np.zeros_like(x)], -1) @ node0
    model.forward(tokens, arc_tensor(arch), training=True)
    mean, variance = _moments_numpy(projected)
    norm0 = model.cell.norms[0]
    np.testing.assert_allclose(norm0.moving_mean, mean, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(norm0.moving_variance, variance, rtol=1e-4,
                               atol=1e-6)
    assert all(n.num_updates.numpy() == 1 for n in model.cell.norms)
    # Evaluation uses the moving moments and leaves them alone.
    rng = np.random.default_rng(1)
    for n in model.cell.norms:
        for w in (n.scale, n.offset, n.moving_mean):
            w.assign(rng.normal(size=w.shape))
        n.moving_variance.assign(rng.uniform(0.5, 2.0, size=n.width))
    h = rng.normal(size=(6, HIDDEN)).astype("float32")
    out = model.forward(tokens, arc_tensor(arch), [tf.constant(h)])
    np.testing.assert_allclose(
        out.raw_outputs[:, 0], _enas_code_cell_numpy(x, h, arch, space,
                                                     model),
        rtol=1e-4, atol=1e-5)
    assert all(n.num_updates.numpy() == 1 for n in model.cell.norms)


def test_training_only_adds_dropout_whose_masks_follow_the_seed():
    space = spaces.get_space("enas_rnn", layout="enas_lm", num_nodes=3)
    tokens, arc = _tokens(), arc_tensor(space.sample(0))
    plain = build_supernet(space, _no_dropout(), seed=0)
    np.testing.assert_allclose(plain(tokens, arc, training=True),
                               plain(tokens, arc), rtol=1e-6)
    first, second = (build_supernet(space, _config(), seed=4)
                     for _ in range(2))
    a, b = (first(tokens, arc, training=True) for _ in range(2))
    assert not np.allclose(a, b)  # new masks every window
    np.testing.assert_array_equal(second(tokens, arc, training=True), a)


def test_bad_arcs_spaces_and_configs_are_refused():
    space = spaces.get_space("enas_rnn", layout="enas_lm", num_nodes=3)
    model = build_supernet(space, _config(), seed=0)
    tokens = _tokens()
    with pytest.raises(ValueError, match=r"arc has shape \(5,\); .* takes "
                       r"int32 \[6\] \(layout enas_lm"):
        model(tokens, tf.constant([0, 1, 0, 1, 0]))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"arc token out of range; each must be below "
                       r"\[1, 4, 2, 4, 3, 4\]"):
        model(tokens, tf.constant([0, 1, 2, 1, 0, 1]))
    with pytest.raises(ValueError, match="takes an enas_rnn space, got "
                       "'darts_rnn'"):
        enas_rnn.build(spaces.get_space("darts_rnn"), _config())
    with pytest.raises(ValueError, match="takes an LmConfig, got "
                       "ChildConfig"):
        enas_rnn.build(space, config.ChildConfig())
    with pytest.raises(ValueError, match="batch_norm='yes'; allowed"):
        enas_rnn.build(space, _config(), batch_norm="yes")
