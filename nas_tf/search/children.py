"""Builds, trains and scores one child; failures become rewards.

A child that cannot be built (its spatial size collapses, a shape does not
fit) gets ``failed_reward`` and a log line; one whose loss turns NaN gets
reward 0. Either way the search goes on. Per-child state (model, optimizer,
compiled functions) is dropped after each child (after each batch when
children train in parallel) so memory stays flat.
"""

import contextlib
import dataclasses
import math
import time
from typing import Optional

import keras
import tensorflow as tf

from nas_tf import builders
from nas_tf import config as config_lib
from nas_tf import describe
from nas_tf.builders.recurrent_cells import derived_seed
from nas_tf.training import child_trainer
from nas_tf.training import lm_trainer
from nas_tf.training import precision

OK, DIVERGED, BUILD_FAILED = "ok", "diverged", "build_failed"

# Offsets that keep child seeds apart from each other and from the run's.
_CHILD_SEED_OFFSET = 7919


def child_seed(run_seed: int, child_index: int) -> int:
    return derived_seed(run_seed, _CHILD_SEED_OFFSET + child_index) % (2**31)


@dataclasses.dataclass
class BuiltChild:
    """A child ready to train: its index and seed, its model (None when it
    could not be built; ``outcome`` then says so), the strategy it was
    built under, and the build's metrics (``params``, ``build_seconds``)."""

    index: int
    seed: int
    model: object
    strategy: object
    outcome: Optional[dict]
    build_metrics: dict = dataclasses.field(default_factory=dict)


class ChildEvaluator:
    """Evaluates children of a ``SearchConfig`` on prepared ``data``
    (``ImageData`` or ``LmCorpus``) under ``strategy``."""

    def __init__(self, config, data, strategy, log=print):
        self.config = config
        self.data = data
        self.strategy = strategy
        self.log = log
        self.formula = config.reward_formula()

    def _child_config(self):
        if self.config.kind == "text":
            return self.config.lm
        d = self.data
        return config_lib.ChildConfig(**{
            **self.config.child.to_dict(), "num_classes": d.num_classes,
            "image_size": d.image_size, "image_channels": d.image_channels})

    def evaluate(self, space, arch, child_index: int) -> dict:
        """Trains child ``child_index``; returns ``reward``, ``status`` and
        ``metrics`` for the history."""
        built = self.build(space, arch, child_index)
        try:
            return self.train(built)
        finally:
            # Keras keeps global state per model built (layer names, traced
            # functions); clearing it keeps memory flat across children.
            built.model = None
            keras.backend.clear_session(free_memory=True)

    def build(self, space, arch, child_index: int,
              strategy=None) -> BuiltChild:
        """Builds child ``child_index`` under ``strategy`` (the
        evaluator's by default) from the child's seed. The initial weights
        come from the global seeds, which this sets, so children that train
        in parallel are built first, one after another (and seeding
        TensorFlow clears its kernel caches, which must not happen while
        others train)."""
        seed = child_seed(self.config.seed, child_index)
        strategy = strategy or self.strategy
        keras.utils.set_random_seed(seed)
        began = time.time()
        try:
            # Language models train on one device (lm_trainer has no
            # replicas), so their variables are not made mirrored.
            scope = (contextlib.nullcontext()
                     if self.config.kind == "text" else strategy.scope())
            with scope, precision.dtype_policy(
                    self.config.precision.mixed_precision):
                model = builders.build_model(
                    space, arch, self._child_config(), seed=seed)
        except (ValueError, tf.errors.InvalidArgumentError) as err:
            self.log(f"child {child_index + 1}: cannot be built ({err}); "
                     f"reward {self.config.failed_reward}")
            return BuiltChild(child_index, seed, None, strategy, {
                "reward": self.config.failed_reward,
                "status": BUILD_FAILED, "metrics": {"error": str(err)}})
        trainable, _ = describe.count_params(model)
        return BuiltChild(child_index, seed, model, strategy, None,
                          {"params": trainable,
                           "build_seconds": round(time.time() - began, 3)})

    def train(self, built: BuiltChild) -> dict:
        """Trains a built child; its outcome for the history. Nothing it
        does depends on another child's training, so children on different
        device groups train at once."""
        if built.model is None:
            return built.outcome
        if self.config.kind == "text":
            return self._finish(built, self._train_text(built.model,
                                                        built.seed))
        return self.finish_image(built, child_trainer.train_child(
            built.model, self.data, self.config.child_train, built.strategy,
            built.seed, precision=self.config.precision))

    def finish_image(self, built: BuiltChild,
                     result: child_trainer.ChildResult) -> dict:
        """The history's outcome of image child ``built`` trained to
        ``result`` (here, or by a cluster worker)."""
        cfg = self.config.child_train
        metrics = {"valid_accuracy_per_epoch": [
            round(a, 6) for a in result.valid_accuracy],
            "epochs": result.epochs,
            "train_seconds": round(result.seconds, 3),
            "first_epoch_seconds": round(result.first_epoch_seconds, 3)}
        if result.diverged:
            outcome = {"reward": 0.0, "status": DIVERGED, "metrics": metrics}
        else:
            acc = max(result.valid_accuracy[-cfg.reward_epochs:])
            metrics["valid_accuracy"] = acc
            outcome = {"reward": self.formula(acc), "status": OK,
                       "metrics": metrics}
        return self._finish(built, outcome)

    def _finish(self, built: BuiltChild, outcome: dict) -> dict:
        outcome["metrics"].update(built.build_metrics)
        if outcome["status"] == DIVERGED:
            self.log(f"child {built.index + 1}: the training loss became "
                     f"NaN; reward 0")
        return outcome

    def _train_text(self, model, seed) -> dict:
        began = time.time()
        try:
            result = lm_trainer.train_language_model(
                model, self.data,
                dataclasses.replace(self.config.lm_train, seed=seed),
                log=lambda line: None, test=False)
        except FloatingPointError:
            return {"reward": 0.0, "status": DIVERGED, "metrics": {}}
        ppls = [r["valid_ppl"] for r in result.history]
        metrics = {"valid_ppl_per_epoch": [round(p, 4) for p in ppls],
                   "train_seconds": round(time.time() - began, 3)}
        ppl = min(ppls[-self.config.child_train.reward_epochs:])
        if not math.isfinite(ppl):
            return {"reward": 0.0, "status": DIVERGED, "metrics": metrics}
        metrics["valid_ppl"] = ppl
        return {"reward": self.formula(ppl), "status": OK,
                "metrics": metrics}
