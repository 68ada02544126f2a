"""The LSTM controller: valid samples, exact log-probabilities, presets."""

import math

import numpy as np
import pytest
import tensorflow as tf

from nas_tf import controller as controller_lib
from nas_tf import spaces

PRESETS = controller_lib.CONTROLLER_PRESETS

# Each preset on a small space of the kind it is for.
PRESET_SPACES = {
    "nasrl": ("nasrl_cnn", {"num_layers": 3}),
    "nasnet": ("nasnet", {"num_blocks": 2}),
    "enas_macro": ("enas_macro", {"num_layers": 3}),
    "enas_micro": ("enas_micro", {"num_nodes": 2}),
    "enas_ptb": ("enas_rnn", {"num_nodes": 3}),
    "enas_lm": ("enas_rnn", {"num_nodes": 3, "layout": "enas_lm"}),
}


def _preset_space(preset):
    name, params = PRESET_SPACES[preset]
    return spaces.get_space(name, **params)


def _scale_weights(controller, scale):
    """Multiplies every weight, so that logits are far from 0 and the
    squashing, temperature and attention all shape the distributions."""
    for w in controller.weights:
        w.assign(w * scale)


def test_every_registered_space_is_covered():
    from conftest import SMALL_SPACES
    assert set(SMALL_SPACES) == set(spaces.SPACES.names())


def test_every_preset_is_tested_on_a_space_of_its_kind():
    assert set(PRESET_SPACES) == set(PRESETS)


def _preset_for(name):
    return {"enas_micro": "enas_micro", "enas_macro": "enas_macro",
            "enas_rnn": "enas_ptb", "nasnet": "nasnet"}.get(name, "nasrl")


def test_samples_are_valid_and_scores_match(small_space):
    space = small_space
    for preset in sorted({"nasrl", _preset_for(space.name)}):
        controller = controller_lib.Controller(space, PRESETS[preset])
        out = controller.sample(space, 5, (3, 4))
        assert out.tokens.shape == (5, space.num_tokens)
        for row in out.tokens.numpy():
            space.from_tokens(row)  # raises if invalid
        again = controller.sample(space, 5, (3, 4))
        np.testing.assert_array_equal(out.tokens, again.tokens)
        other = controller.sample(space, 5, (3, 5))
        assert not np.array_equal(out.tokens, other.tokens)
        scored = controller.score(space, out.tokens)
        np.testing.assert_allclose(scored.log_prob, out.log_prob, atol=1e-4)
        np.testing.assert_allclose(scored.entropy, out.entropy, atol=1e-4)
        assert np.all(out.log_prob.numpy() < 0)


def test_uniform_controller_log_prob_is_minus_sum_log_n(small_space):
    space = small_space
    controller = controller_lib.Controller(space)
    controller.set_uniform()
    out = controller.sample(space, 4, (0, 1))
    # A skips decision over n layers is n fair coins: log 2^n.
    expected = -sum(math.log(d.size) for d in space.decisions)
    np.testing.assert_allclose(out.log_prob, [expected] * 4, rtol=1e-5)
    np.testing.assert_allclose(out.entropy, [-expected] * 4, rtol=1e-5)


# The originals' numbers. nasrl: Zoph & Le sec. 4.1 (2 x 35, U(+-0.08));
# nasnet: NASNet appendix A.2 (1 x 100, U(+-0.1)); enas_*: melodyguan/enas
# main.py files, scripts and controllers; enas_lm: google-research enas_lm
# controller.py.
NASRL_CONTROLLER = dict(
    lstm_size=35, num_layers=2, init_range=0.08, lstm_bias=True,
    temperature=0.0, tanh_constant=0.0, op_tanh_reduce=1.0, op_bias_init=(),
    normal_op_bias=(), tie_choice_logits=False, index_locality=0.0,
    index_input_scaling=False, zero_input_anchors=False,
    input_node_steps=True, anchor_at="last_step", anchor_step=False,
    empty_input_step=False, empty_skip_step=False, skip_logits="sigmoid")
ORIGINAL_CONTROLLERS = {
    "nasrl": NASRL_CONTROLLER,
    "nasnet": {**NASRL_CONTROLLER, "lstm_size": 100, "num_layers": 1,
               "init_range": 0.1},
    "enas_macro": {**NASRL_CONTROLLER, "lstm_size": 64, "num_layers": 1,
                   "init_range": 0.1, "lstm_bias": False,
                   "tanh_constant": 1.5, "skip_logits": "paired",
                   "empty_skip_step": True},
    "enas_micro": {**NASRL_CONTROLLER, "lstm_size": 64, "num_layers": 1,
                   "init_range": 0.1, "lstm_bias": False,
                   "tanh_constant": 1.1, "op_tanh_reduce": 2.5,
                   "op_bias_init": (10.0, 10.0, 0.0, 0.0, 0.0),
                   "normal_op_bias": (0.25, 0.25, -0.25, -0.25, -0.25),
                   "zero_input_anchors": True, "anchor_step": True},
    "enas_ptb": {**NASRL_CONTROLLER, "lstm_size": 100, "num_layers": 1,
                 "init_range": 0.1, "lstm_bias": False, "temperature": 5.0,
                 "tanh_constant": 2.5, "index_locality": 1 / 6,
                 "index_input_scaling": True, "anchor_at": "first_step",
                 "empty_input_step": True},
    "enas_lm": {**NASRL_CONTROLLER, "lstm_size": 64, "num_layers": 1,
                "init_range": 0.01, "lstm_bias": False, "temperature": 5.0,
                "tanh_constant": 2.25, "tie_choice_logits": True,
                "index_locality": 1 / 6, "index_input_scaling": True,
                "zero_input_anchors": True, "input_node_steps": False,
                "anchor_at": "first_step"},
}


def test_presets_hold_the_originals_numbers():
    import dataclasses
    assert set(PRESETS) == set(ORIGINAL_CONTROLLERS)
    for name, expected in ORIGINAL_CONTROLLERS.items():
        assert dataclasses.asdict(PRESETS[name]) == expected, name


@pytest.mark.parametrize("preset", sorted(PRESET_SPACES))
def test_every_preset_builds_its_lstm_and_starts_in_its_init_range(preset):
    config = PRESETS[preset]
    controller = controller_lib.Controller(_preset_space(preset), config)
    assert [c.units for c in controller.cells] == \
        [config.lstm_size] * config.num_layers
    lstm_biases = [w for w in controller.weights
                   if "lstm" in w.path and "bias" in w.path]
    assert len(lstm_biases) == (config.num_layers if config.lstm_bias else 0)
    # ENAS micro's op bias starts at its own constants.
    op_biases = {id(w) for w in controller.soft_bias.values()}
    r = config.init_range
    for w in controller.weights:
        if id(w) in op_biases:
            continue
        values = np.abs(w.numpy())
        assert values.max() <= r, (w.path, values.max(), r)
        if values.size >= 100:  # U(-r, r): some weight comes near r
            assert values.max() > 0.9 * r, (w.path, values.max(), r)
    # Each weight is drawn on its own (W_1 and W_2 of the attention have
    # one shape, and so do the LSTM's input and recurrent kernels).
    starts = [tuple(w.numpy().ravel()[:8]) for w in controller.weights]
    assert len(set(starts)) == len(starts)


def test_tied_choice_logits_have_no_softmax_weight():
    space = _preset_space("enas_lm")
    tied = controller_lib.Controller(space, PRESETS["enas_lm"])
    untied = controller_lib.Controller(space, PRESETS["enas_ptb"])
    assert not tied.soft and len(untied.soft) == 1
    # enas_lm controller.py: w_lstm, g_emb, w_emb, attn_w_1, attn_w_2,
    # attn_v (the Keras LSTM keeps its input and recurrent halves apart).
    assert len(tied.weights) == 7


# -- the walk: which LSTM steps there are and which state is each anchor ----

def _trace(controller, space, tokens):
    """Scores ``tokens`` [1, T] eagerly; returns every LSTM step (its input,
    state in and output h) and every attention (its keys and query)."""
    steps, attentions = [], []
    lstm, attend = controller._lstm, controller._attend

    def traced_lstm(x, states):
        h, new_states = lstm(x, states)
        steps.append({"x": x.numpy()[0], "h": h.numpy()[0],
                      "h_in": states[-1][0].numpy()[0]})
        return h, new_states

    def traced_attend(keys, h, kind):
        attentions.append({"keys": [k.numpy()[0] for k in keys],
                           "query": h.numpy()[0]})
        return attend(keys, h, kind)

    controller._lstm, controller._attend = traced_lstm, traced_attend
    try:
        controller._walk(space, 1, tokens=tf.constant([tokens], tf.int32))
    finally:
        del controller._lstm, controller._attend
    return steps, attentions


def _name(vector, steps, controller):
    """``0``, ``start``, ``emb`` (a choice embedding), ``h<i>`` (the output
    of step i) or ``h<i>/<c>`` (that output divided by c)."""
    if not np.any(vector):
        return "0"
    if np.allclose(vector, controller.start.numpy()[0], atol=1e-7):
        return "start"
    for table in controller.embedding.values():
        if any(np.allclose(vector, row, atol=1e-7) for row in table.numpy()):
            return "emb"
    for i, step in enumerate(steps):
        h = step["h"]
        ratio = float(vector @ h / (h @ h))
        if np.allclose(vector, ratio * h, atol=1e-7):
            scale = "" if abs(ratio - 1) < 1e-6 else f"/{1 / ratio:.1f}"
            return f"h{i}{scale}"
    return "?"


# Per preset: tokens to score, then what each LSTM step reads, and for each
# attention (node picks, skips) the step whose output is its query and the
# anchors it attends to (their keys).
EXPECTED_WALKS = {
    # nasrl_cnn, 3 layers: [fh, fw, nf], [fh, fw, nf, skip],
    # [fh, fw, nf, 2 skips].
    # A layer's anchor is the state after its last decision (layer 0:
    # num_filters); picked skips feed back as their mean over 1 + count.
    "nasrl": ([0, 1, 2, 3, 0, 1, 1, 2, 3, 0, 1, 0],
              ["start", "emb", "emb", "emb", "emb", "emb", "emb",
               "h2/2.0", "emb", "emb", "emb"],
              [("h6", ["h2"]), ("h10", ["h2", "h6"])]),
    # nasnet, 2 blocks a cell: two input-node steps on the start embedding
    # make the input anchors (and keys); a block's anchor is the state
    # after its combine; the reduce cell goes on from the normal cell (its
    # first pick reads the normal cell's last combine).
    "nasnet": ([1, 0, 5, 6, 1, 2, 0, 3, 4, 0] * 2,
               ["start", "start", "start", "h1", "h0", "emb", "emb", "emb",
                "h6", "h0", "emb", "emb",
                "start", "start", "emb", "h13", "h12", "emb", "emb", "emb",
                "h18", "h12", "emb", "emb"],
               [("h2", ["h0", "h1"]), ("h3", ["h0", "h1"]),
                ("h7", ["h0", "h1", "h6"]), ("h8", ["h0", "h1", "h6"]),
                ("h14", ["h12", "h13"]), ("h15", ["h12", "h13"]),
                ("h19", ["h12", "h13", "h18"]),
                ("h20", ["h12", "h13", "h18"])]),
    # enas_macro, 3 layers: op step and skip step per layer, layer 0's skip
    # step taken without skips (its output is layer 0's anchor), then the
    # start embedding again.
    "enas_macro": ([2, 4, 1, 5, 1, 0],
                   ["start", "emb", "start", "emb", "h1/2.0", "emb"],
                   [("h3", ["h1"]), ("h5", ["h1", "h3"])]),
    # enas_micro, 2 nodes a cell: two start steps make zero input anchors
    # with LSTM keys; node: index1, index2, op1, op2 and an anchor step,
    # then the start embedding; the reduce cell goes on from the normal one.
    "enas_micro": ([0, 1, 2, 3, 2, 0, 4, 1] * 2,
                   ["start", "start", "start", "0", "0", "emb", "emb",
                    "start", "h6", "0", "emb", "emb",
                    "start", "start", "start", "0", "0", "emb", "emb",
                    "start", "h18", "0", "emb", "emb"],
                   [("h2", ["h0", "h1"]), ("h3", ["h0", "h1"]),
                    ("h7", ["h0", "h1", "h6"]), ("h8", ["h0", "h1", "h6"]),
                    ("h14", ["h12", "h13"]), ("h15", ["h12", "h13"]),
                    ("h19", ["h12", "h13", "h18"]),
                    ("h20", ["h12", "h13", "h18"])]),
    # enas_rnn/enas_code, 3 nodes: [f0, p1, f1, p2, f2]. Node 0: an anchor
    # step and an activation step, both on the start embedding; node k:
    # the step that picks its input is its anchor, then the activation step
    # reads anchor_j / (0.1 + k - j).
    "enas_ptb": ([1, 0, 2, 0, 3],
                 ["start", "start", "emb", "h0/1.1", "emb", "h0/2.1"],
                 [("h2", ["h0"]), ("h4", ["h0", "h2"])]),
    # enas_rnn/enas_lm, 3 nodes: [p1, f1, p2, f2, p3, f3]. Node 0 takes no
    # step: its anchor and key are zeros.
    "enas_lm": ([0, 2, 1, 3, 1, 0],
                ["start", "0", "emb", "h0/1.1", "emb", "h0/2.1"],
                [("h0", ["0"]), ("h2", ["0", "h0"]),
                 ("h4", ["0", "h0", "h2"])]),
}


@pytest.mark.parametrize("preset", sorted(EXPECTED_WALKS))
def test_lstm_steps_and_anchors_of_every_preset(preset):
    space = _preset_space(preset)
    controller = controller_lib.Controller(space, PRESETS[preset])
    tokens, inputs, attentions = EXPECTED_WALKS[preset]
    space.from_tokens(tokens)  # a valid architecture
    steps, seen = _trace(controller, space, tokens)
    assert [_name(s["x"], steps, controller) for s in steps] == inputs
    assert [(_name(a["query"], steps, controller),
             [_name(k, steps, controller) for k in a["keys"]])
            for a in seen] == attentions
    # One LSTM state runs through the whole walk, across cells.
    assert not np.any(steps[0]["h_in"])
    for before, step in zip(steps, steps[1:]):
        np.testing.assert_array_equal(step["h_in"], before["h"])


def test_enas_ptb_preset_takes_the_originals_24_steps_for_12_nodes():
    space = spaces.get_space("enas_rnn", num_nodes=12)
    controller = controller_lib.Controller(space, PRESETS["enas_ptb"])
    tokens = space.sample(0).tokens
    assert len(_trace(controller, space, tokens)[0]) == 24


# -- the ENAS PTB samplers, transcribed into numpy --------------------------

def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _log_softmax(z):
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def _ptb_sampler_log_probs(controller, tokens, zero_node0, temperature,
                           tanh_constant):
    """Each decision's log-probability by the ENAS PTB samplers
    (melodyguan/enas ptb_enas_controller.py at HEAD; ``zero_node0``:
    google-research enas_lm controller.py), from the controller's weights.
    """
    cell = controller.cells[0]
    kernel = cell.kernel.numpy().astype(np.float64)
    recurrent = cell.recurrent_kernel.numpy().astype(np.float64)
    g_emb = controller.start.numpy()[0].astype(np.float64)
    w_1, w_2, v = (w.numpy().astype(np.float64)
                   for w in controller.attention["node"])
    (w_emb,) = [w.numpy().astype(np.float64)
                for w in controller.embedding.values()]
    w_soft = (w_emb.T if zero_node0 else
              list(controller.soft.values())[0].numpy().astype(np.float64))
    n = kernel.shape[0]
    state = [np.zeros(n), np.zeros(n)]

    def lstm(x):
        # Keras LSTMCell gates: input, forget, cell, output.
        z = x @ kernel + state[1] @ recurrent
        i, f, g, o = (z[k * n:(k + 1) * n] for k in range(4))
        c = _sigmoid(f) * state[0] + _sigmoid(i) * np.tanh(g)
        state[:] = [c, _sigmoid(o) * np.tanh(c)]
        return state[1]

    def squash(logits):
        return tanh_constant * np.tanh(logits / temperature)

    tokens = list(tokens)
    log_probs = []
    if zero_node0:
        all_h, all_key, first = [np.zeros(n)], [np.zeros(n)], 1
        x = g_emb
    else:  # node 0: its anchor step, then its function on g_emb
        h = lstm(g_emb)
        all_h, all_key, first = [h], [h @ w_1], 1
        h = lstm(g_emb)
        f = tokens.pop(0)
        log_probs.append(_log_softmax(squash(h @ w_soft))[f])
        x = w_emb[f]
    for k in range(first, first + len(tokens) // 2):
        h = lstm(x)
        query = h @ w_2
        logits = np.array([np.tanh(key + query) @ v[:, 0]
                           for key in all_key])
        logits = squash(logits) - (k - np.arange(k)) ** 2 / 6.0
        all_h.append(h)
        all_key.append(h @ w_1)
        j, f = tokens.pop(0), tokens.pop(0)
        log_probs.append(_log_softmax(logits)[j])
        h = lstm(all_h[j] / (0.1 + k - j))
        log_probs.append(_log_softmax(squash(h @ w_soft))[f])
        x = w_emb[f]
    return log_probs


@pytest.mark.parametrize("preset,zero_node0", [("enas_ptb", False),
                                               ("enas_lm", True)])
def test_enas_ptb_log_probs_match_a_numpy_transcription(preset, zero_node0):
    space = spaces.get_space("enas_rnn", num_nodes=5,
                             layout="enas_lm" if zero_node0 else "enas_code")
    config = PRESETS[preset]
    controller = controller_lib.Controller(space, config)
    # Large weights: attention scores of several units, so temperature,
    # tanh constant, locality and input scaling all change the result.
    _scale_weights(controller, 1.0 / config.init_range)
    tokens = np.array([space.sample(seed).tokens for seed in range(6)])
    scored = controller._walk(space, 6, tokens=tf.constant(tokens))
    for row, log_probs in zip(tokens, scored.decision_log_probs.numpy()):
        expected = _ptb_sampler_log_probs(controller, row, zero_node0,
                                          config.temperature,
                                          config.tanh_constant)
        np.testing.assert_allclose(log_probs, expected, atol=2e-4)


# -- micro's op bias, macro's skips ------------------------------------------

def test_enas_micro_op_bias_gives_the_closed_form_distribution():
    space = spaces.get_space("enas_micro", num_nodes=2)
    config = PRESETS["enas_micro"]
    controller = controller_lib.Controller(space, config)
    # Zero output weights: op logits are the learnable bias alone.
    for w in controller.soft.values():
        w.assign(tf.zeros_like(w))
    bias = np.array(config.op_bias_init)
    squashed = config.tanh_constant / config.op_tanh_reduce * np.tanh(bias)
    normal = squashed + np.array(config.normal_op_bias)
    names = [d.name for d in space.decisions]
    for cell, logits in (("normal", normal), ("reduce", squashed)):
        position = names.index(f"{cell}/node2/op1")
        log_p = logits - np.log(np.exp(logits).sum())
        probes = np.array([space.sample(0).tokens] * 5)
        probes[:, position] = range(5)
        scored = controller._walk(space, 5, tokens=tf.constant(probes))
        np.testing.assert_allclose(
            scored.decision_log_probs[:, position], log_p, atol=1e-4)


# Skip scores q of the layers' attention, by earlier layer.
SKIP_SCORES = [0.9, -0.7, 0.4]


@pytest.mark.parametrize("preset", ["enas_macro", "nasrl"])
def test_skip_probability_and_kl_at_nonzero_scores(preset):
    space = spaces.get_space("enas_macro", num_layers=4)
    config = PRESETS[preset]
    controller = controller_lib.Controller(space, config, skip_target=0.4)
    attend = controller._attend

    def fixed_skip_scores(keys, h, kind):
        if kind != "skips":
            return attend(keys, h, kind)
        return tf.tile(tf.constant([SKIP_SCORES[:len(keys)]]),
                       [tf.shape(h)[0], 1])

    controller._attend = fixed_skip_scores
    tokens = np.array([space.sample(0).tokens])
    tokens[0, -3:] = [1, 0, 1]  # layer 3's skips
    out = controller._walk(space, 1, tokens=tf.constant(tokens))
    q = np.array(SKIP_SCORES)
    if config.skip_logits == "paired":
        # ENAS macro: logits [-q', q'] with q' = 1.5 tanh(q) sample with
        # sigmoid(2 q'); the KL uses sigmoid(q').
        squashed = config.tanh_constant * np.tanh(q)
        p_skip, p_kl = _sigmoid(2 * squashed), _sigmoid(squashed)
    else:
        p_skip = p_kl = _sigmoid(q)
    names = [d.name for d in space.decisions]
    log_p = out.decision_log_probs.numpy()[0]
    assert log_p[names.index("layer3/skips")] == pytest.approx(
        np.log(p_skip[0] * (1 - p_skip[1]) * p_skip[2]), abs=1e-5)
    kl = p_kl * np.log(p_kl / 0.4) + (1 - p_kl) * np.log((1 - p_kl) / 0.6)
    # Summed over each layer's skips (layers 1, 2, 3 have 1, 2, 3), then
    # averaged over the layers.
    expected = (kl[:1].sum() + kl[:2].sum() + kl[:3].sum()) / 3
    assert float(out.skip_kl[0]) == pytest.approx(expected, rel=1e-4)


# -- what sampling draws -----------------------------------------------------

def _within(count, expected, variance, sigmas=4.0):
    return abs(count - expected) <= sigmas * math.sqrt(variance) + 1.0


def test_samples_follow_the_controller_probabilities():
    space = spaces.get_space("enas_macro", num_layers=3)
    controller = controller_lib.Controller(space, PRESETS["enas_macro"])
    _scale_weights(controller, 30.0)
    n = 4000
    out = controller._walk(space, n, seed=tf.constant([5, 6], tf.int64))
    tokens = out.tokens.numpy()
    probs = np.exp(out.decision_log_probs.numpy())
    # layer0/op: the same distribution for every sample.
    p_op = np.zeros(6)
    p_op[tokens[:, 0]] = probs[:, 0]
    assert p_op.sum() == pytest.approx(1.0, abs=1e-3)
    assert p_op.max() < 0.9 and np.count_nonzero(p_op > 0.02) >= 3
    for op in range(6):
        count = np.count_nonzero(tokens[:, 0] == op)
        assert _within(count, n * p_op[op], n * p_op[op] * (1 - p_op[op])), \
            (op, count, n * p_op[op])
    # layer1/skips: one bit, whose probability depends on the ops before.
    bits = tokens[:, 2]
    p_one = np.where(bits == 1, probs[:, 2], 1 - probs[:, 2])
    assert np.abs(p_one - 0.5).mean() > 0.2
    assert _within(bits.sum(), p_one.sum(), (p_one * (1 - p_one)).sum()), \
        (bits.sum(), p_one.sum())


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="skip_logits='soft'"):
        controller_lib.ControllerConfig(skip_logits="soft")
    with pytest.raises(ValueError, match="lstm_size=0"):
        controller_lib.ControllerConfig(lstm_size=0)
    with pytest.raises(ValueError, match="anchor_at='middle'.*first_step"):
        controller_lib.ControllerConfig(anchor_at="middle")
    with pytest.raises(ValueError, match="anchor_at='first_step' with "
                       "anchor_step=True"):
        controller_lib.ControllerConfig(anchor_at="first_step",
                                        anchor_step=True)
    with pytest.raises(ValueError, match="input_node_steps=False with "
                       "zero_input_anchors=False"):
        controller_lib.ControllerConfig(input_node_steps=False)
    with pytest.raises(ValueError, match="op_bias_init has 2 values"):
        controller_lib.Controller(
            spaces.get_space("enas_micro"),
            controller_lib.ControllerConfig(op_bias_init=(1.0, 2.0)))
