"""REINFORCE for the controller (Zoph & Le 2016 sec. 3.2; ENAS code).

The gradient of one update is the mean over ``m`` sampled architectures of
``-grad sum_t log pi(a_t) * (R_k - b)`` (the paper's (1/m) sum_k), with
``b`` an exponential moving average of the rewards. As in the ENAS code
the baseline is moved by a reward *before* that reward's advantage is taken
(the baseline update is a control dependency of the loss). NAS-RL's wording
(sec. 3.2: b is a moving average of the *previous* rewards, so subtract,
then update) differs by the factor ``d``: ``R - b_new = d (R - b_old)``.

ENAS's extras: an entropy bonus added to the reward (``entropy_mode=
"reward"``, the code's choice; ``"loss"`` subtracts it from the loss
instead, as PPO's entropy bonus is) and, for the macro space, a KL penalty
pulling the skip probabilities towards ``skip_target``.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from nas_tf.config import _raise_on_failed

ENTROPY_MODES = ("reward", "loss")
ENTROPY_KINDS = ("full", "sampled")


@dataclasses.dataclass(frozen=True)
class ReinforceConfig:
    """How the controller learns.

    Defaults are NAS-RL's where the paper states them (Adam lr 6e-4, sec.
    4.1); the paper does not give its baseline decay, so 0.95 is NASNet's
    (the same group's follow-up, appendix A.2). ``REINFORCE_PRESETS`` holds
    the other originals' values.

    Attributes:
      learning_rate: Adam learning rate.
      beta1, beta2, epsilon: Adam settings (ENAS: 0.0, 0.999, 1e-3; TF1's
        AdamOptimizer defaults otherwise).
      baseline_decay: EMA decay of the reward baseline.
      num_aggregate: Architectures per update, ``m`` (NAS-RL m = 8 per
        replica; ENAS ``controller_num_aggregate``).
      entropy_weight: Weight of the entropy bonus; 0 turns it off.
      entropy_mode: ``reward`` (ENAS code: a number, no gradient) or
        ``loss`` (differentiated, either kind).
      entropy_kind: ``full`` distribution entropy (ENAS micro) or
        ``sampled``: ``-log p * p`` of the picked values (ENAS macro/PTB).
      skip_weight: Weight of the skip KL penalty (ENAS macro 0.8); 0 off.
      skip_target: Its prior skip probability (ENAS macro 0.4).
    """

    learning_rate: float = 6e-4
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    baseline_decay: float = 0.95
    num_aggregate: int = 8
    entropy_weight: float = 0.0
    entropy_mode: str = "reward"
    entropy_kind: str = "full"
    skip_weight: float = 0.0
    skip_target: float = 0.4

    def __post_init__(self):
        _raise_on_failed(type(self).__name__, [
            (self.learning_rate > 0, f"learning_rate={self.learning_rate}; "
             "it must be positive"),
            (0.0 <= self.baseline_decay < 1.0, f"baseline_decay="
             f"{self.baseline_decay}; allowed: [0, 1)"),
            (self.num_aggregate >= 1, f"num_aggregate={self.num_aggregate}; "
             "it must be at least 1"),
            (self.entropy_weight >= 0, f"entropy_weight="
             f"{self.entropy_weight}; it must not be negative"),
            (self.entropy_mode in ENTROPY_MODES, f"entropy_mode="
             f"{self.entropy_mode!r}; allowed: {ENTROPY_MODES}"),
            (self.entropy_kind in ENTROPY_KINDS, f"entropy_kind="
             f"{self.entropy_kind!r}; allowed: {ENTROPY_KINDS}"),
            (self.skip_weight >= 0, f"skip_weight={self.skip_weight}; it "
             "must not be negative"),
            (0.0 < self.skip_target < 1.0, f"skip_target="
             f"{self.skip_target}; allowed: (0, 1)"),
        ])


REINFORCE_PRESETS = {
    "nasrl": ReinforceConfig(),
    # NASNet appendix A.2/A.3: lr 0.00035, entropy weight 0.00001, baseline
    # EMA weight 0.95, 20 architectures per update. The paper trains with
    # PPO, which is not implemented: this is REINFORCE with its settings.
    # The entropy goes into the loss as PPO's bonus does; Adam's other
    # settings are not given (TF1's defaults).
    "nasnet": ReinforceConfig(
        learning_rate=3.5e-4, baseline_decay=0.95, num_aggregate=20,
        entropy_weight=1e-5, entropy_mode="loss", entropy_kind="full"),
    # scripts/cifar10_macro_search.sh: lr 0.001, 50 x 20, skip 0.4 / 0.8.
    "enas_macro": ReinforceConfig(
        learning_rate=0.001, beta1=0.0, epsilon=1e-3, baseline_decay=0.99,
        num_aggregate=20, entropy_weight=1e-4, entropy_kind="sampled",
        skip_weight=0.8),
    # scripts/cifar10_micro_search.sh: lr 0.0035, 30 x 10.
    "enas_micro": ReinforceConfig(
        learning_rate=0.0035, beta1=0.0, epsilon=1e-3, baseline_decay=0.99,
        num_aggregate=10, entropy_weight=1e-4, entropy_kind="full"),
    # scripts/ptb_search.sh: lr 0.001, entropy 1e-3, 100 x 10.
    "enas_ptb": ReinforceConfig(
        learning_rate=0.001, beta1=0.0, epsilon=1e-3, baseline_decay=0.99,
        num_aggregate=10, entropy_weight=1e-3, entropy_kind="sampled"),
    # google-research enas_lm src/controller.py: tf.train.AdamOptimizer(5e-5)
    # with its defaults, baseline decay 0.999, 25 x 10, the sampled entropy
    # (stop-gradient) x 1e-5 added to the reward.
    "enas_lm": ReinforceConfig(
        learning_rate=5e-5, baseline_decay=0.999, num_aggregate=10,
        entropy_weight=1e-5, entropy_kind="sampled"),
}


def bonus_entropy(output, config: ReinforceConfig):
    """The entropy the bonus rewards: ``full`` or ``sampled``."""
    return (output.entropy if config.entropy_kind == "full"
            else output.sampled_entropy)


def reinforce_loss(output, advantages, config: ReinforceConfig):
    """The loss of one update of the architectures scored in ``output``:
    ``-mean(log pi * advantage)``, plus the skip penalty, minus the entropy
    bonus when it goes into the loss."""
    loss = -tf.reduce_mean(output.log_prob * advantages)
    if config.skip_weight:
        loss += config.skip_weight * tf.reduce_mean(output.skip_kl)
    if config.entropy_mode == "loss" and config.entropy_weight:
        loss -= config.entropy_weight * tf.reduce_mean(
            bonus_entropy(output, config))
    return loss


def shaped_reward(reward, output, config: ReinforceConfig):
    """The reward the controller learns from: ``reward`` plus the entropy
    bonus when it goes into the reward (ENAS)."""
    if config.entropy_mode != "reward" or not config.entropy_weight:
        return np.asarray(reward, np.float64)
    return (np.asarray(reward, np.float64) + config.entropy_weight *
            np.asarray(bonus_entropy(output, config), np.float64))


class EmaBaseline:
    """b <- decay * b + (1 - decay) * R, moved before each advantage.

    Starts at 0 (both originals). Kept in a variable so it is checkpointed.
    """

    def __init__(self, decay: float):
        self.decay = decay
        self.value = tf.Variable(0.0, dtype=tf.float64, trainable=False,
                                 name="baseline")

    def advantages(self, rewards) -> np.ndarray:
        """Moves the baseline through ``rewards`` in order and returns each
        reward minus the baseline just after it moved."""
        b = float(self.value.numpy())
        out = []
        for r in np.asarray(rewards, np.float64).reshape(-1):
            b = self.decay * b + (1.0 - self.decay) * r
            out.append(r - b)
        self.value.assign(b)
        return np.asarray(out)


class Reinforce:
    """Updates ``controller`` from rewards of architectures it sampled."""

    def __init__(self, controller, config: ReinforceConfig = ReinforceConfig()):
        self.controller = controller
        self.config = config
        self.baseline = EmaBaseline(config.baseline_decay)
        self.optimizer = keras.optimizers.Adam(
            learning_rate=config.learning_rate, beta_1=config.beta1,
            beta_2=config.beta2, epsilon=config.epsilon)
        self.optimizer.build(controller.trainable_variables)
        self._steps = {}

    def _step_fn(self, space):
        key = repr(space)
        if key not in self._steps:
            score = self.controller.score_fn(space)
            cfg = self.config
            variables = self.controller.trainable_variables

            def step(tokens, advantages):
                with tf.GradientTape() as tape:
                    loss = reinforce_loss(score(tokens), advantages, cfg)
                grads = tape.gradient(loss, variables)
                # Heads this space does not use (a shallower stage of a
                # depth schedule) have no gradient and keep their values.
                self.optimizer.apply_gradients(
                    [(g, v) for g, v in zip(grads, variables)
                     if g is not None])
                return loss

            self._steps[key] = tf.function(step, reduce_retracing=True)
        return self._steps[key]

    def update(self, space, tokens, rewards) -> dict:
        """One controller update from ``tokens`` [m, T] and their (shaped)
        ``rewards`` [m]; returns the loss, the baseline and the mean
        advantage."""
        advantages = self.baseline.advantages(rewards)
        loss = self._step_fn(space)(
            tf.convert_to_tensor(tokens, tf.int32),
            tf.constant(advantages, tf.float32))
        return {"loss": float(loss),
                "baseline": float(self.baseline.value.numpy()),
                "advantage": float(np.mean(advantages))}

    def checkpoint_items(self) -> dict:
        """What a tf.train.Checkpoint must hold to resume learning."""
        return {"controller": self.controller, "optimizer": self.optimizer,
                "baseline": self.baseline.value}
