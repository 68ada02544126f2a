"""The recurrent cells against numpy written from the published equations,
inside keras.layers.RNN, and through get_config."""

import keras
import numpy as np
import pytest

from nas_tf import spaces
from nas_tf.builders import recurrent_cells


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _relu(x):
    return np.maximum(x, 0)


def _cell(name, units, **kwargs):
    entry = spaces.PUBLISHED[name]
    space = spaces.get_space(entry.space, **entry.params)
    arch = spaces.resolve_architecture(space, name)
    return recurrent_cells.build_cell(space, arch, units, **kwargs)


def _nascell_numpy(x, m_prev, c_prev, kernel, recurrent_kernel):
    """NAS-RL Fig. 8 / TF Addons NASCell, one step, written out."""
    xs = np.split(x @ kernel, 8, axis=-1)
    ms = np.split(m_prev @ recurrent_kernel, 8, axis=-1)
    l1 = [_sigmoid(xs[0] + ms[0]), _relu(xs[1] + ms[1]),
          _sigmoid(xs[2] + ms[2]), _relu(xs[3] * ms[3]),
          np.tanh(xs[4] + ms[4]), _sigmoid(xs[5] + ms[5]),
          np.tanh(xs[6] + ms[6]), _sigmoid(xs[7] + ms[7])]
    l2_0 = np.tanh(l1[0] * l1[1])
    l2_1 = np.tanh(l1[2] + l1[3])
    l2_2 = np.tanh(l1[4] * l1[5])
    l2_3 = _sigmoid(l1[6] + l1[7])
    l2_0 = np.tanh(l2_0 + c_prev)  # cell inject
    new_c = l2_0 * l2_1
    l3_1 = np.tanh(l2_2 + l2_3)
    new_m = np.tanh(new_c * l3_1)
    return new_m, new_c


def test_nascell_matches_the_published_equations_over_a_sequence():
    units, steps = 5, 6
    cell = _cell("NASCell", units, init_range=0.5, seed=1)
    rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, steps, 4)).astype("float32")
    h0 = rng.normal(size=(3, units)).astype("float32")
    c0 = rng.normal(size=(3, units)).astype("float32")
    outputs, h, c = rnn(x, initial_state=[h0, c0])
    kernel = cell.input_kernel.numpy()
    recurrent = cell.recurrent_kernel.numpy()
    m_ref, c_ref = h0, c0
    for t in range(steps):
        m_ref, c_ref = _nascell_numpy(x[:, t], m_ref, c_ref, kernel,
                                      recurrent)
        np.testing.assert_allclose(outputs[:, t], m_ref, rtol=1e-5,
                                   atol=1e-5)
    np.testing.assert_allclose(h, m_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c, c_ref, rtol=1e-5, atol=1e-5)
    assert cell.state_size == [units, units]
    assert kernel.shape == (4, 8 * units)
    assert recurrent.shape == (units, 8 * units)


_ACT = {"tanh": np.tanh, "relu": _relu, "sigmoid": _sigmoid,
        "identity": lambda v: v}


def _highway_numpy(x, h_prev, kernels, dag, gate_first):
    def node(s_prev, projected, act):
        a, b = np.split(projected, 2, axis=-1)
        gate, value = (a, b) if gate_first else (b, a)
        return s_prev + _sigmoid(gate) * (_ACT[act](value) - s_prev)

    states = [node(h_prev, np.concatenate([x, h_prev], -1) @ kernels[0],
                   dag["node0"])]
    for i, (pred, act) in enumerate(dag["nodes"], start=1):
        states.append(node(states[pred], states[pred] @ kernels[i], act))
    return np.mean([states[i] for i in dag["average"]], axis=0)


@pytest.mark.parametrize("name,gate_first,average", [
    # DARTS rnn/model.py: c, h split (gate first); mean of nodes 1..8.
    ("DARTS_V2_RNN", True, list(range(1, 9))),
    # ENAS ptb_enas_child.py: h, t split (gate last); loose ends.
    ("ENAS_PTB_SCRIPT", False, [3, 4, 7, 9, 10, 11]),
])
def test_highway_cell_matches_numpy(name, gate_first, average):
    units = 6
    cell = _cell(name, units, init_range=0.4, seed=2)
    dag = cell.dag
    assert list(dag.average) == average
    rnn = keras.layers.RNN(cell, return_sequences=True)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, units)).astype("float32")
    h0 = rng.normal(size=(2, units)).astype("float32")
    outputs = rnn(x, initial_state=[h0]).numpy()
    kernels = [k.numpy() for k in cell.node_kernels]
    reference = {"node0": dag.node0_activation, "nodes": dag.nodes,
                 "average": dag.average}
    h = h0
    for t in range(4):
        h = _highway_numpy(x[:, t], h, kernels, reference, gate_first)
        np.testing.assert_allclose(outputs[:, t], h, rtol=1e-5, atol=1e-5)
    assert [k.shape for k in kernels] == (
        [(2 * units, 2 * units)] + [(units, 2 * units)] * len(dag.nodes))


def test_cells_rebuild_from_config_with_the_same_architecture():
    for name in ("NASCell", "DARTS_V1_RNN", "ENAS_LM"):
        cell = _cell(name, 3)
        config = cell.get_config()
        clone = type(cell).from_config(config)
        assert clone.get_config() == config
        rnn = keras.layers.RNN(clone)
        assert rnn(np.zeros((1, 2, 3), "float32")).shape == (1, 3)


def test_recurrent_dropout_mask_is_shared_by_all_time_steps():
    # DARTS mask_2d: one x mask per sequence, the same at every step.
    cell = _cell("DARTS_V2_RNN", 8, dropout=0.5, seed=3)
    x = np.ones((4, 5, 8), "float32")
    seen = []
    original = cell._masked

    def spy(inputs, h, training):
        masked, h = original(inputs, h, training)
        seen.append(masked)
        return masked, h

    cell._masked = spy
    keras.layers.RNN(cell, unroll=True)(x, training=True)
    assert len(seen) == 5
    for step in seen[1:]:
        np.testing.assert_array_equal(step.numpy() == 0,
                                      seen[0].numpy() == 0)
    assert 0 < float(np.mean(seen[0].numpy() == 0)) < 1


def test_build_cell_rejects_a_convolutional_space():
    space = spaces.get_space("darts_cnn")
    with pytest.raises(ValueError, match="has no recurrent cell"):
        recurrent_cells.build_cell(space, space.sample(0), 4)


def test_hidden_mask_multiplies_every_node_input_as_in_darts():
    units = 4
    cell = _cell("DARTS_V2_RNN", units, init_range=0.5, dropout=0.5,
                 recurrent_dropout=0.5, seed=4)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, units)).astype("float32")
    h_prev = rng.normal(size=(3, units)).astype("float32")
    cell.build((None, units))
    x_mask = (rng.random((3, units)) > 0.5).astype("float32") * 2
    h_mask = (rng.random((3, units)) > 0.5).astype("float32") * 2
    cell._dropout_mask, cell._recurrent_dropout_mask = x_mask, h_mask
    output, _ = cell.call(x, [h_prev], training=True)
    kernels = [k.numpy() for k in cell.node_kernels]
    dag = cell.dag

    def node(s_prev, projected, act):
        gate, value = np.split(projected, 2, axis=-1)
        return s_prev + _sigmoid(gate) * (_ACT[act](value) - s_prev)

    # DARTS rnn/model.py: [x * x_mask, h_prev * h_mask] at node 0, then
    # (s_prev * h_mask) W_i; the unmasked s_prev is the highway's carry.
    states = [node(h_prev, np.concatenate([x * x_mask, h_prev * h_mask], -1)
                   @ kernels[0], "tanh")]
    for i, (pred, act) in enumerate(dag.nodes, start=1):
        states.append(node(states[pred], (states[pred] * h_mask) @ kernels[i],
                           act))
    expected = np.mean(states[1:], axis=0)
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)


def test_seeded_weights_and_masks_are_all_different():
    cell = _cell("DARTS_V2_RNN", 6, seed=0)
    cell.build((None, 6))
    kernels = [k.numpy() for k in cell.node_kernels[1:]]
    assert all(not np.array_equal(kernels[0], k) for k in kernels[1:])
    tree = _cell("NASCell", 6, seed=0)
    tree.build((None, 6))
    assert not np.array_equal(tree.input_kernel, tree.recurrent_kernel)
    again = _cell("DARTS_V2_RNN", 6, seed=0)
    again.build((None, 6))
    np.testing.assert_array_equal(again.node_kernels[3], cell.node_kernels[3])


def test_tree_cells_take_no_highway_split():
    space = spaces.get_space("nasrl_rnn", base=2)
    with pytest.raises(ValueError, match="highway_split='gate_last' applies "
                       "to ENAS and DARTS cells"):
        recurrent_cells.build_cell(space, space.sample(0), 4,
                                   highway_split="gate_last")
