"""REINFORCE: the baseline, the update's direction, the entropy bonus and
the skip penalty, the presets, learning a target."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, script_env
from nas_tf import controller as controller_lib
from nas_tf.controller import reinforce
from nas_tf import spaces
from nas_tf.search import reward


def test_baseline_moves_before_the_advantage():
    baseline = reinforce.EmaBaseline(0.9)
    advantages = baseline.advantages([1.0, 0.0])
    # b: 0 -> 0.1 (then 1 - 0.1), -> 0.09 (then 0 - 0.09).
    np.testing.assert_allclose(advantages, [0.9, -0.09])
    assert float(baseline.value) == pytest.approx(0.09)


def test_entropy_goes_into_the_reward_or_the_loss():
    out = controller_lib.ControllerOutput(
        tokens=tf.constant([[0]]), log_prob=tf.constant([-2.0]),
        entropy=tf.constant([3.0]), sampled_entropy=tf.constant([1.0]),
        skip_kl=tf.constant([0.0]), skip_count=tf.constant([0.0]),
        decision_log_probs=None)
    full = reinforce.ReinforceConfig(entropy_weight=0.5)
    np.testing.assert_allclose(reinforce.shaped_reward([1.0], out, full),
                               [2.5])
    sampled = reinforce.ReinforceConfig(entropy_weight=0.5,
                                        entropy_kind="sampled")
    np.testing.assert_allclose(reinforce.shaped_reward([1.0], out, sampled),
                               [1.5])
    in_loss = reinforce.ReinforceConfig(entropy_weight=0.5,
                                        entropy_mode="loss")
    np.testing.assert_allclose(reinforce.shaped_reward([1.0], out, in_loss),
                               [1.0])


# The originals' numbers: nasrl: Zoph & Le sec. 4.1 (Adam 6e-4, m = 8; the
# baseline decay is NASNet's); nasnet: NASNet appendix A.2/A.3; enas_*:
# melodyguan/enas scripts, main.py flags and src/utils.py (Adam beta1 0,
# epsilon 1e-3); enas_lm: google-research enas_lm controller.py.
NASRL_REINFORCE = dict(
    learning_rate=6e-4, beta1=0.9, beta2=0.999, epsilon=1e-8,
    baseline_decay=0.95, num_aggregate=8, entropy_weight=0.0,
    entropy_mode="reward", entropy_kind="full", skip_weight=0.0,
    skip_target=0.4)
ORIGINAL_REINFORCE = {
    "nasrl": NASRL_REINFORCE,
    "nasnet": {**NASRL_REINFORCE, "learning_rate": 3.5e-4,
               "num_aggregate": 20, "entropy_weight": 1e-5,
               "entropy_mode": "loss"},
    "enas_macro": {**NASRL_REINFORCE, "learning_rate": 1e-3, "beta1": 0.0,
                   "epsilon": 1e-3, "baseline_decay": 0.99,
                   "num_aggregate": 20, "entropy_weight": 1e-4,
                   "entropy_kind": "sampled", "skip_weight": 0.8},
    "enas_micro": {**NASRL_REINFORCE, "learning_rate": 3.5e-3, "beta1": 0.0,
                   "epsilon": 1e-3, "baseline_decay": 0.99,
                   "num_aggregate": 10, "entropy_weight": 1e-4},
    "enas_ptb": {**NASRL_REINFORCE, "learning_rate": 1e-3, "beta1": 0.0,
                 "epsilon": 1e-3, "baseline_decay": 0.99,
                 "num_aggregate": 10, "entropy_weight": 1e-3,
                 "entropy_kind": "sampled"},
    "enas_lm": {**NASRL_REINFORCE, "learning_rate": 5e-5,
                "baseline_decay": 0.999, "num_aggregate": 10,
                "entropy_weight": 1e-5, "entropy_kind": "sampled"},
}


def test_presets_hold_the_originals_numbers():
    presets = reinforce.REINFORCE_PRESETS
    assert set(presets) == set(ORIGINAL_REINFORCE) == \
        set(controller_lib.CONTROLLER_PRESETS)
    for name, expected in ORIGINAL_REINFORCE.items():
        assert dataclasses.asdict(presets[name]) == expected, name


def test_each_preset_names_its_originals_reward():
    assert set(reward.PRESET_FORMULAS) == set(
        controller_lib.CONTROLLER_PRESETS)
    expected = {"nasrl": ("acc**3", "80/ppl**2"),
                "nasnet": ("acc", "80/ppl**2"),
                "enas_macro": ("acc", "80/ppl"),
                "enas_micro": ("acc", "80/ppl"),
                "enas_ptb": ("acc", "80/ppl"),
                "enas_lm": ("acc", "80/ppl")}
    for preset, (image, text) in expected.items():
        assert reward.preset_formula(preset, "image") == image
        assert reward.preset_formula(preset, "text") == text
    with pytest.raises(ValueError, match="'ppo' has no reward"):
        reward.preset_formula("ppo", "image")
    with pytest.raises(ValueError, match="reward kind 'audio'"):
        reward.preset_formula("nasrl", "audio")


@pytest.mark.slow
def test_search_script_takes_the_presets_reward_unless_given():
    # config_from_flags in a fresh interpreter: absl flags are global.
    common = "--space=enas_rnn --layout=enas_lm --dataset=ptb"
    cases = {"--controller_preset=enas_lm": "80/ppl",
             "--controller_preset=nasrl": "80/ppl**2",
             "--controller_preset=enas_lm --reward=1/ppl": "1/ppl"}
    code = (
        "import sys; sys.path.insert(0, 'scripts'); import search\n"
        "from absl import flags\n"
        f"for args in {list(cases)!r}:\n"
        "    flags.FLAGS.unparse_flags()\n"
        f"    flags.FLAGS(['search.py', *(args + ' {common}').split()])\n"
        "    print(search.config_from_flags().reward)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                            env=script_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == list(cases.values())


def _dense(gradients, variables):
    """``gradients`` as numpy arrays; zeros for variables a loss does not
    use."""
    return [np.zeros(v.shape) if g is None else tf.convert_to_tensor(g).numpy()
            for g, v in zip(gradients, variables)]


@pytest.mark.parametrize("kind", ["full", "sampled"])
def test_entropy_bonus_in_the_loss_has_a_gradient(kind):
    space = spaces.get_space("enas_macro", num_layers=3)
    controller = controller_lib.Controller(
        space, controller_lib.CONTROLLER_PRESETS["enas_macro"])
    # Away from uniform, where the full entropy is flat.
    for w in controller.weights:
        w.assign(w * 10.0)
    score = controller.score_fn(space)
    tokens = tf.constant([space.sample(seed).tokens for seed in range(4)])

    # The op softmax learns only from op decisions, the skip attention's v
    # only from skip decisions: the bonus of each kind of decision counts.
    heads = [controller.soft["choice:op:6"], controller.attention["skips"][2]]

    def largest_gradients(mode):
        config = reinforce.ReinforceConfig(
            entropy_weight=1.0, entropy_mode=mode, entropy_kind=kind)
        with tf.GradientTape() as tape:
            # Zero advantages: only the entropy bonus is left to move.
            loss = reinforce.reinforce_loss(score(tokens), tf.zeros(4),
                                            config)
        return [float(np.max(np.abs(g)))
                for g in _dense(tape.gradient(loss, heads), heads)]

    assert min(largest_gradients("loss")) > 1e-3
    # In the reward the bonus is a number (ENAS's stop_gradient).
    assert max(largest_gradients("reward")) == 0.0


def test_skip_penalty_enters_the_gradient_and_the_update():
    space = spaces.get_space("enas_macro", num_layers=4)
    controller = controller_lib.Controller(
        space, controller_lib.CONTROLLER_PRESETS["enas_macro"])
    variables = controller.trainable_variables
    score = controller.score_fn(space)
    tokens = tf.constant([space.sample(seed).tokens for seed in range(4)])

    def gradients(skip_weight):
        config = reinforce.ReinforceConfig(skip_weight=skip_weight)
        with tf.GradientTape() as tape:
            # Zero advantages: only the skip penalty is left to move.
            loss = reinforce.reinforce_loss(score(tokens), tf.zeros(4),
                                            config)
        return _dense(tape.gradient(loss, variables), variables)

    with tf.GradientTape() as tape:
        kl = tf.reduce_mean(score(tokens).skip_kl)
    kl_grads = _dense(tape.gradient(kl, variables), variables)
    assert max(float(np.max(np.abs(g))) for g in kl_grads) > 1e-3
    assert all(not np.any(g) for g in gradients(0.0))
    for g, expected in zip(gradients(0.8), kl_grads):
        np.testing.assert_allclose(g, 0.8 * expected, rtol=1e-4, atol=1e-8)

    learner = reinforce.Reinforce(controller, reinforce.ReinforceConfig(
        learning_rate=0.003, num_aggregate=4, skip_weight=0.8))
    kl_before = float(kl)
    for _ in range(3):
        # Rewards equal to the baseline (0): zero advantages.
        assert learner.update(space, tokens, [0.0] * 4)["advantage"] == 0.0
    assert float(tf.reduce_mean(score(tokens).skip_kl)) < kl_before - 1e-3


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_update_moves_probability_with_the_advantage(sign):
    space = spaces.get_space("nasnet", num_blocks=2)
    controller = controller_lib.Controller(space)
    learner = reinforce.Reinforce(
        controller, reinforce.ReinforceConfig(learning_rate=0.01,
                                              num_aggregate=1))
    tokens = controller.sample(space, 1, (0, 0)).tokens
    before = float(controller.score(space, tokens).log_prob[0])
    # Baseline 0 and decay 0.95: the first advantage is 0.95 * reward.
    learner.update(space, tokens, [sign])
    after = float(controller.score(space, tokens).log_prob[0])
    assert sign * (after - before) > 0.1


def test_checkpoint_restores_the_learner(tmp_path):
    space = spaces.get_space("enas_macro", num_layers=4)
    controller = controller_lib.Controller(space)
    learner = reinforce.Reinforce(controller)
    tokens = controller.sample(space, 3, (0, 0)).tokens
    learner.update(space, tokens, [1.0, 0.5, 0.2])
    checkpoint = tf.train.Checkpoint(**learner.checkpoint_items())
    path = checkpoint.save(str(tmp_path / "ckpt"))
    expected = controller.sample(space, 3, (1, 1)).tokens.numpy()
    baseline = float(learner.baseline.value)
    learner.update(space, tokens, [0.0, 0.0, 1.0])

    fresh = controller_lib.Controller(space)
    fresh_learner = reinforce.Reinforce(fresh)
    tf.train.Checkpoint(**fresh_learner.checkpoint_items()).restore(
        path).assert_consumed()
    np.testing.assert_array_equal(fresh.sample(space, 3, (1, 1)).tokens,
                                  expected)
    assert float(fresh_learner.baseline.value) == baseline


# The controller must reach 0.9 of the best reward within this many updates
# of 32 samples, on every space.
MAX_UPDATES = 1000


def _random_hit_probability(space, fraction):
    """P(a uniform sample matches at least ``fraction`` of a target's
    tokens): token i matches with probability 1/n_i (a skip bit 1/2)."""
    match = []
    for d in space.decisions:
        match += [0.5] * d.num_tokens if d.kind == "skips" else \
            [1.0 / len(d.choices)]
    hits = np.zeros(len(match) + 1)
    hits[0] = 1.0
    for p in match:  # distribution of the number of matches
        hits[1:] = hits[1:] * (1 - p) + hits[:-1] * p
        hits[0] *= 1 - p
    needed = int(np.ceil(fraction * len(match) - 1e-9))
    return hits[needed:].sum()


@pytest.mark.slow
def test_controller_learns_a_target_much_faster_than_random(small_space):
    space = small_space
    target = np.array(space.sample(12345).tokens)

    def reward(tokens):
        # The fraction of tokens that match the target: optimum 1.
        return (np.asarray(tokens) == target).mean(axis=1)

    controller = controller_lib.Controller(space)
    # The entropy bonus keeps every space exploring: much more keeps
    # NASNet's 13-way op choices near uniform, much less lets the recurrent
    # spaces settle early.
    learner = reinforce.Reinforce(controller, reinforce.ReinforceConfig(
        learning_rate=0.01, num_aggregate=32, baseline_decay=0.9,
        entropy_weight=0.0125, entropy_mode="loss"))
    for update in range(MAX_UPDATES):
        tokens = controller.sample(space, 32, (7, update)).tokens.numpy()
        rewards = reward(tokens)
        if rewards.mean() >= 0.9:
            break
        learner.update(space, tokens, rewards)
    assert rewards.mean() >= 0.9, (space, update, rewards.mean())
    # Random search needs on average 1/p samples to see even one
    # architecture that good; the controller's samples are typically that
    # good after far fewer.
    controller_samples = (update + 1) * 32
    random_samples = 1.0 / _random_hit_probability(space, 0.9)
    assert random_samples > 10 * controller_samples, (
        random_samples, controller_samples)
