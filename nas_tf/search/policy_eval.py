"""How good is an ENAS controller's policy? Sample many architectures from
it, score each on the shared weights over one fixed set of validation
images, and look at the distribution; compare with the controller as it was
before training (the run's initial weights, from the same seed), which is
the question Sciuto et al. and Li & Talwalkar ask of ENAS.

``choice_memory`` answers a second question: does the controller remember
its earlier choices? Over the sampled architectures, it measures how much
of the variance of the controller's hidden state at each decision the value
picked at each earlier decision explains.
"""

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from nas_tf import controller as controller_lib
from nas_tf.drawing import charts
from nas_tf.utils import fileio

# Stateless key of the policy's samples, apart from the run's own.
_POLICY_KEY = -(2 ** 41)
POLICIES = ("trained", "untrained")


@dataclasses.dataclass
class PolicyEvaluation:
    """``num_samples`` architectures of one policy, scored on the first
    ``num_valid`` validation images with the shared weights."""

    policy: str
    tokens: list
    accuracies: list
    rewards: list
    num_valid: int

    def summary(self) -> dict:
        r = np.asarray(self.rewards, float)
        return {"policy": self.policy, "num_samples": len(r),
                "num_valid": self.num_valid, "mean": float(r.mean()),
                "std": float(r.std()), "min": float(r.min()),
                "quartiles": [float(q) for q in np.percentile(r, [25, 50,
                                                                   75])],
                "max": float(r.max())}

    def to_json(self) -> str:
        return json.dumps({**self.summary(), "tokens": self.tokens,
                           "valid_accuracy": self.accuracies,
                           "reward": self.rewards}, indent=1)


def controller_of(searcher, untrained: bool):
    """The run's controller, or (``untrained``) the one it started from:
    made again from the run's seed, as the run made it."""
    if not untrained:
        return searcher.controller
    cfg = searcher.config
    keras.utils.set_random_seed(cfg.seed)
    return controller_lib.Controller(searcher.space, cfg.controller,
                                     skip_target=cfg.reinforce.skip_target)


def evaluate_policy(searcher, num_samples: int, untrained: bool = False,
                    num_valid: int = 0, log=print) -> PolicyEvaluation:
    """Scores ``num_samples`` architectures of ``searcher``'s (an
    ``EnasRun`` restored from its directory) trained or initial policy on
    its first ``num_valid`` validation images (0: all)."""
    if num_samples < 1:
        raise ValueError(f"num_samples={num_samples}; it must be at least 1")
    available = searcher.num_valid
    if not 0 <= num_valid <= available:
        raise ValueError(f"num_valid={num_valid}; allowed: 0 (all) to "
                         f"{available}, the run's validation images")
    num_valid = num_valid or available
    controller = controller_of(searcher, untrained)
    sampled = controller.sample(searcher.space, num_samples,
                                (searcher.config.seed, _POLICY_KEY))
    batch = searcher.valid_batch
    chunks = [tf.range(start, min(start + batch, num_valid))
              for start in range(0, num_valid, batch)]
    formula = searcher.config.reward_formula()
    tokens, accuracies, rewards = [], [], []
    for i, arc in enumerate(tf.unstack(sampled.tokens)):
        hits = sum(float(searcher.score(arc, rows)) for rows in chunks)
        accuracy = hits / num_valid
        arch = searcher.space.from_tokens([int(v) for v in arc.numpy()])
        tokens.append(searcher.space.format(arch))
        accuracies.append(accuracy)
        rewards.append(formula(accuracy))
        if (i + 1) % max(1, num_samples // 10) == 0:
            log(f"{i + 1}/{num_samples} architectures scored; mean reward "
                f"{np.mean(rewards):.4f}")
    return PolicyEvaluation("untrained" if untrained else "trained", tokens,
                            accuracies, rewards, num_valid)


def choice_memory(space, tokens, hidden) -> np.ndarray:
    """[decisions, decisions]: entry (j, i), i < j, is the share of the
    variance of the hidden state read at decision j (summed over units, over
    the architectures) that the value picked at decision i explains
    (between-group over total sum of squares); NaN elsewhere."""
    tokens, hidden = np.asarray(tokens), np.asarray(hidden, float)
    bounds = np.cumsum([0] + [d.num_tokens for d in space.decisions])
    values = [[tuple(row) for row in tokens[:, a:b]]
              for a, b in zip(bounds[:-1], bounds[1:])]
    count = len(space.decisions)
    memory = np.full((count, count), np.nan)
    for j in range(count):
        h = hidden[:, j, :]
        total = float(((h - h.mean(0)) ** 2).sum())
        for i in range(j):
            groups = {}
            for row, value in enumerate(values[i]):
                groups.setdefault(value, []).append(row)
            between = sum(len(rows) * float(((h[rows].mean(0) - h.mean(0))
                                             ** 2).sum())
                          for rows in groups.values())
            memory[j, i] = between / total if total > 0 else 0.0
    return memory


def write_policy_evaluation(out_dir: str, evaluation) -> dict:
    """``evaluation`` as JSON (``<policy>.json``) and a TensorBoard
    histogram in ``out_dir``, and one PNG of the reward distributions of
    every policy evaluated there so far; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{evaluation.policy}.json")
    fileio.write_file_atomically(path, evaluation.to_json() + "\n")
    paths = {evaluation.policy: path}
    writer = tf.summary.create_file_writer(out_dir)
    with writer.as_default(step=0):
        tf.summary.histogram(f"policy/{evaluation.policy}_reward",
                             evaluation.rewards)
    writer.flush()
    rewards = {}
    for policy in POLICIES:
        other = os.path.join(out_dir, f"{policy}.json")
        if os.path.exists(other):
            with open(other) as f:
                rewards[policy] = json.load(f)["reward"]
    png = charts.histograms_png(
        rewards, f"Rewards of sampled architectures on "
        f"{evaluation.num_valid} validation images, shared weights",
        "reward")
    paths["plot"] = os.path.join(out_dir, "rewards.png")
    fileio.write_file_atomically(paths["plot"], png)
    return paths


def write_choice_memory(out_dir: str, searcher, count: int = 100) -> str:
    """Samples ``count`` architectures, draws ``choice_memory`` of the
    controller's hidden states as a heatmap; returns the PNG's path."""
    sampled = searcher.controller.sample(
        searcher.space, count, (searcher.config.seed, _POLICY_KEY - 1))
    memory = choice_memory(searcher.space, sampled.tokens.numpy(),
                           sampled.hidden.numpy())
    names = [d.name for d in searcher.space.decisions]
    png = charts.heatmap_png(
        memory, f"How much each earlier choice explains the controller's "
        f"state ({count} sampled architectures)",
        "earlier decision (its value)", "decision (the hidden state read)",
        names, names, "share of the state's variance")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "hidden_states.png")
    fileio.write_file_atomically(path, png)
    np.save(os.path.join(out_dir, "hidden_states.npy"),
            sampled.hidden.numpy())
    return path
