"""Builds, trains and scores one child; failures become rewards.

A child that cannot be built (its spatial size collapses, a shape does not
fit) gets ``failed_reward`` and a log line; one whose loss turns NaN gets
reward 0. Either way the search goes on. Per-child state (model, optimizer,
compiled functions) is dropped after each child so memory stays flat.
"""

import contextlib
import dataclasses
import math
import time

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
        seed = child_seed(self.config.seed, child_index)
        keras.utils.set_random_seed(seed)
        began = time.time()
        try:
            # Language models train on one device (lm_trainer has no
            # replicas), so their variables are not made mirrored.
            scope = (contextlib.nullcontext() if self.config.kind == "text"
                     else self.strategy.scope())
            with scope, precision.dtype_policy(
                    self.config.precision.mixed_precision):
                model = builders.build_model(space, arch,
                                             self._child_config(), seed=seed)
        except (ValueError, tf.errors.InvalidArgumentError) as err:
            self.log(f"child {child_index + 1}: cannot be built ({err}); reward "
                     f"{self.config.failed_reward}")
            return {"reward": self.config.failed_reward,
                    "status": BUILD_FAILED, "metrics": {"error": str(err)}}
        build_seconds = time.time() - began
        try:
            trainable, _ = describe.count_params(model)
            if self.config.kind == "text":
                result = self._train_text(model, seed)
            else:
                result = self._train_image(model, seed)
        finally:
            # Keras keeps global state per model built (layer names, traced
            # functions); clearing it keeps memory flat across children.
            del model
            keras.backend.clear_session(free_memory=True)
        result["metrics"].update(params=trainable,
                                 build_seconds=round(build_seconds, 3))
        if result["status"] == DIVERGED:
            self.log(f"child {child_index + 1}: the training loss became NaN; "
                     f"reward 0")
        return result

    def _train_image(self, model, seed) -> dict:
        cfg = self.config.child_train
        result = child_trainer.train_child(
            model, self.data, cfg, self.strategy, seed,
            precision=self.config.precision)
        metrics = {"valid_accuracy_per_epoch": [
            round(a, 6) for a in result.valid_accuracy],
            "epochs": result.epochs,
            "train_seconds": round(result.seconds, 3),
            "first_epoch_seconds": round(result.first_epoch_seconds, 3)}
        if result.diverged:
            return {"reward": 0.0, "status": DIVERGED, "metrics": metrics}
        acc = max(result.valid_accuracy[-cfg.reward_epochs:])
        metrics["valid_accuracy"] = acc
        return {"reward": self.formula(acc), "status": OK,
                "metrics": metrics}

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
