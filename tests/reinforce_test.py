"""REINFORCE: the baseline, the update's direction, learning a target."""

import numpy as np
import pytest
import tensorflow as tf

from nas_tf import controller as controller_lib
from nas_tf.controller import reinforce
from nas_tf import spaces


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
    learner = reinforce.Reinforce(controller, reinforce.ReinforceConfig(
        learning_rate=0.01, num_aggregate=32, baseline_decay=0.9,
        entropy_weight=0.015, entropy_mode="loss"))
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
