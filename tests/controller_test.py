"""The LSTM controller: valid samples, exact log-probabilities, presets."""

import math

import numpy as np
import pytest
import tensorflow as tf

from nas_tf import controller as controller_lib
from nas_tf import spaces

def test_every_registered_space_is_covered():
    from conftest import SMALL_SPACES
    assert set(SMALL_SPACES) == set(spaces.SPACES.names())


def _preset_for(name):
    return {"enas_micro": "enas_micro", "enas_macro": "enas_macro",
            "enas_rnn": "enas_ptb"}.get(name, "nasrl")


def test_samples_are_valid_and_scores_match(small_space):
    space = small_space
    for preset in sorted({"nasrl", _preset_for(space.name)}):
        controller = controller_lib.Controller(
            space, controller_lib.CONTROLLER_PRESETS[preset])
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


def test_presets_build_the_originals_lstms():
    space = spaces.get_space("nasrl_cnn", num_layers=3)
    nasrl = controller_lib.Controller(space)
    assert [c.units for c in nasrl.cells] == [35, 35]
    bound = max(float(tf.reduce_max(tf.abs(w))) for w in nasrl.weights)
    assert bound <= 0.08
    micro = controller_lib.Controller(
        spaces.get_space("enas_micro"),
        controller_lib.CONTROLLER_PRESETS["enas_micro"])
    assert [c.units for c in micro.cells] == [64]
    assert not any("bias" in w.path and "lstm" in w.path
                   for w in micro.weights)


def test_enas_micro_op_bias_gives_the_closed_form_distribution():
    space = spaces.get_space("enas_micro", num_nodes=2)
    config = controller_lib.CONTROLLER_PRESETS["enas_micro"]
    controller = controller_lib.Controller(space, config)
    # Zero output weights: op logits are the learnable bias alone.
    for w in controller.soft.values():
        w.assign(tf.zeros_like(w))
    bias = np.array(config.op_bias_init)
    squashed = config.tanh_constant / config.op_tanh_reduce * np.tanh(bias)
    normal = squashed + np.array(config.normal_op_bias)
    tokens = controller.sample(space, 1, (0, 0)).tokens.numpy()
    names = [d.name for d in space.decisions]
    for cell, logits in (("normal", normal), ("reduce", squashed)):
        position = names.index(f"{cell}/node2/op1")
        log_p = logits - np.log(np.exp(logits).sum())
        for op in range(5):
            probe = tokens.copy()
            probe[0, position] = op
            scored = controller.score(space, probe).decision_log_probs
            assert float(scored[0, position]) == pytest.approx(log_p[op],
                                                               abs=1e-4)


def test_enas_ptb_locality_penalty_in_node_logits():
    space = spaces.get_space("enas_rnn", num_nodes=5)
    controller = controller_lib.Controller(
        space, controller_lib.CONTROLLER_PRESETS["enas_ptb"])
    controller.set_uniform()
    tokens = controller.sample(space, 1, (0, 0)).tokens.numpy()
    position = [d.name for d in space.decisions].index("node4/input")
    k = 4
    logits = np.array([-(k - j) ** 2 / 6.0 for j in range(k)])
    log_p = logits - np.log(np.exp(logits).sum())
    scores = []
    for j in range(k):
        probe = tokens.copy()
        probe[0, position] = j
        scored = controller.score(space, probe).decision_log_probs
        scores.append(float(scored[0, position]))
    np.testing.assert_allclose(scores, log_p, atol=1e-4)


def test_skip_kl_of_an_undecided_controller():
    space = spaces.get_space("enas_macro", num_layers=4)
    controller = controller_lib.Controller(
        space, controller_lib.CONTROLLER_PRESETS["enas_macro"],
        skip_target=0.4)
    controller.set_uniform()
    out = controller.sample(space, 2, (0, 0))
    per_skip = 0.5 * math.log(0.5 / 0.4) + 0.5 * math.log(0.5 / 0.6)
    # Layers 1, 2, 3 have 1, 2, 3 skips: summed per layer, then averaged.
    expected = per_skip * (1 + 2 + 3) / 3
    np.testing.assert_allclose(out.skip_kl, [expected] * 2, rtol=1e-4)


@pytest.mark.parametrize("preset,steps", [("enas_macro", 8), ("nasrl", 7)])
def test_layer_zero_takes_a_skip_step_only_in_enas_macro(preset, steps):
    # ENAS macro: an op step and a skip step per layer, layer 0 included.
    space = spaces.get_space("enas_macro", num_layers=4)
    controller = controller_lib.Controller(
        space, controller_lib.CONTROLLER_PRESETS[preset])
    calls = []
    lstm = controller._lstm
    controller._lstm = lambda x, states: calls.append(1) or lstm(x, states)
    controller._walk(space, 1, seed=tf.constant([0, 0], tf.int64))
    assert len(calls) == steps


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="skip_logits='soft'"):
        controller_lib.ControllerConfig(skip_logits="soft")
    with pytest.raises(ValueError, match="lstm_size=0"):
        controller_lib.ControllerConfig(lstm_size=0)
    with pytest.raises(ValueError, match="op_bias_init has 2 values"):
        controller_lib.Controller(
            spaces.get_space("enas_micro"),
            controller_lib.ControllerConfig(op_bias_init=(1.0, 2.0)))
