"""Final training of one image classifier, with the originals' recipes.

Trains from scratch on the final split (training and validation images
together, as DARTS and ENAS retrain) and tests on the test split. Checkpoints
after every epoch; a second call with the same ``logdir`` resumes after the
last finished epoch.
"""

import dataclasses
import math
import os
import time
from typing import Callable, Optional

import tensorflow as tf

from nas_tf.utils import progress
from nas_tf.training import trained_run
from nas_tf.builders import child_model
from nas_tf.config import _raise_on_failed
from nas_tf.data import images
from nas_tf.training import momentum_sgd
from nas_tf.training import precision as precision_lib
from nas_tf.training import replica_loop
from nas_tf.training import schedules

DROP_PATH_RAMPS = ("epoch", "step")


@dataclasses.dataclass(frozen=True)
class ImageTrainConfig:
    """A final-training recipe. Defaults are DARTS's CIFAR-10 evaluation
    (``cnn/train.py``, paper A.2.1); the presets set the others'.

    Attributes:
      epochs: Training epochs (DARTS 600).
      batch_size: Global batch size (DARTS 96).
      schedule: The learning-rate schedule (DARTS: cosine from 0.025 to 0
        over the run; its ``epochs`` is set to ``epochs`` when left at 1).
      momentum: SGD momentum (0.9 in every original).
      nesterov: Nesterov momentum (ENAS yes; DARTS's torch SGD no).
      weight_decay: Coupled L2 on every trainable weight (DARTS 3e-4).
      grad_clip: Global-norm gradient clipping; 0: off (DARTS 5; ENAS's
        clipping is a no-op in its code, so its presets use 0).
      aux_weight: Weight of the auxiliary head's loss (0.4 everywhere).
      train_aux_head: Train the auxiliary head's own weights. ENAS's code
        leaves them out of the trained variables (they keep their initial
        values while their loss still trains the trunk); False reproduces
        that.
      cutout: Side of the square zeroed in each training image (DARTS
        ``--cutout`` 16, ENAS micro final 16); 0: none.
      cutout_anchor: ``centre`` (DARTS: the square centred on a uniform
        pixel) or ``corner`` (ENAS: it starts at one).
      label_smoothing: Smoothing of the targets (NASNet/DARTS ImageNet 0.1).
      drop_path_ramp: How scheduled drop path grows: ``epoch`` (DARTS,
        ``drop_prob * epoch / epochs``) or ``step`` (NASNet, ENAS: by
        training step over all steps).
      augment: Pad-4 random crop and flip.
      steps_per_epoch: Cap on steps per epoch; 0: the whole split.
      eval_every: Test every this many epochs (and after the last).
      seed: Data order and augmentation.
    """

    epochs: int = 600
    batch_size: int = 96
    schedule: schedules.LrSchedule = schedules.LrSchedule(
        kind="cosine", learning_rate=0.025)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    aux_weight: float = 0.4
    train_aux_head: bool = True
    cutout: int = 0
    cutout_anchor: str = "centre"
    label_smoothing: float = 0.0
    drop_path_ramp: str = "epoch"
    augment: bool = True
    steps_per_epoch: int = 0
    eval_every: int = 1
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.schedule, dict):
            object.__setattr__(self, "schedule",
                               schedules.LrSchedule(**self.schedule))
        if self.schedule.kind == "cosine" and self.schedule.epochs == 1:
            object.__setattr__(self, "schedule", dataclasses.replace(
                self.schedule, epochs=self.epochs))
        _raise_on_failed(type(self).__name__, [
            (self.epochs >= 1, f"epochs={self.epochs}; it must be at least "
             "1"),
            (self.batch_size >= 1, f"batch_size={self.batch_size}; it must "
             "be at least 1"),
            (self.momentum >= 0, f"momentum={self.momentum}; it must not be "
             "negative"),
            (self.weight_decay >= 0, f"weight_decay={self.weight_decay}; it "
             "must not be negative"),
            (self.grad_clip >= 0, f"grad_clip={self.grad_clip}; it must be "
             "0 (off) or positive"),
            (self.aux_weight >= 0, f"aux_weight={self.aux_weight}; it must "
             "not be negative"),
            (self.cutout >= 0, f"cutout={self.cutout}; it must be 0 (off) "
             "or positive"),
            (self.cutout_anchor in images.CUTOUT_ANCHORS, f"cutout_anchor="
             f"{self.cutout_anchor!r}; allowed: {images.CUTOUT_ANCHORS}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing="
             f"{self.label_smoothing}; it must be in [0, 1)"),
            (self.drop_path_ramp in DROP_PATH_RAMPS, f"drop_path_ramp="
             f"{self.drop_path_ramp!r}; allowed: {DROP_PATH_RAMPS}"),
            (self.steps_per_epoch >= 0, f"steps_per_epoch="
             f"{self.steps_per_epoch}; it must be 0 (all) or positive"),
            (self.eval_every >= 1, f"eval_every={self.eval_every}; it must "
             "be at least 1"),
        ])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def loss_fn(config: ImageTrainConfig):
    """``(outputs, labels) -> loss`` of one replica: the main cross-entropy
    plus ``aux_weight`` times the auxiliary head's, over the global batch."""

    def loss(outputs, labels):
        def term(logits):
            return replica_loop.cross_entropy(
                labels, logits, config.batch_size, config.label_smoothing)

        if isinstance(outputs, (list, tuple)):
            logits, aux_logits = outputs
            return term(logits) + config.aux_weight * term(aux_logits)
        return term(outputs)

    return loss


def trained_variables(model, config: ImageTrainConfig) -> list:
    """The model's trainable variables, less the auxiliary head's when
    ``train_aux_head`` is off (ENAS)."""
    if config.train_aux_head:
        return list(model.trainable_variables)
    frozen = {id(v) for layer in model.layers
              if child_model.is_auxiliary(layer)
              for v in layer.trainable_variables}
    return [v for v in model.trainable_variables if id(v) not in frozen]


def steps_per_epoch(data, config) -> int:
    steps = len(data.train_labels) // config.batch_size
    return min(steps, config.steps_per_epoch) if config.steps_per_epoch \
        else steps


def drop_path_step_ramp(model, config: ImageTrainConfig, steps_per_epoch):
    """With ``drop_path_ramp="step"`` and a model with scheduled drop path:
    a per-step setter of its progress, ``(step + 1) / total steps`` as ENAS
    computes it; else None."""
    if (config.drop_path_ramp != "step" or
            not hasattr(model, "set_drop_path_progress")):
        return None
    ramp = model._drop_path_progress.variable
    total_steps = float(config.epochs * steps_per_epoch)

    def before_step(step):
        ramp.assign(tf.minimum(
            1.0, tf.cast(step + 1, tf.float32) / total_steps))

    return before_step


class ImageTrainer:
    """Trains ``model`` (built inside ``strategy.scope()``) on ``data``
    (use the final split: ``images.without_validation``) with ``config``,
    checkpointing into ``logdir`` as ``trained_run`` lays it out.
    ``precision`` (default float32, no XLA): the model was built under its
    dtype policy; mixed_float16 scales the loss (the scale is checkpointed
    with the optimizer), ``jit_compile`` compiles the steps with XLA.

    ``scratch_dir`` is for the workers of a multi-worker run other than the
    chief: they write nothing into ``logdir`` (no checkpoints, no
    summaries) but restore from its checkpoints, and save theirs into
    ``scratch_dir``, since every worker must save (saving may run
    collectives the chief waits for)."""

    def __init__(self, model, data: images.ImageData,
                 config: ImageTrainConfig, strategy, logdir: str,
                 log: Callable[[str], None] = print,
                 scratch_dir: Optional[str] = None,
                 precision: precision_lib.PrecisionConfig = None):
        self.model, self.data, self.config = model, data, config
        self.strategy, self.logdir, self.log = strategy, logdir, log
        precision = precision or precision_lib.PrecisionConfig()
        variables = trained_variables(model, config)
        with strategy.scope():
            self.optimizer = momentum_sgd.MomentumSgd(
                variables, config.schedule(0), momentum=config.momentum,
                nesterov=config.nesterov, weight_decay=config.weight_decay,
                clip_norm=config.grad_clip,
                loss_scale=precision_lib.make_loss_scale(precision))
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.steps = self._steps_per_epoch()
        self._train_epoch = replica_loop.compile_train_epoch(
            strategy, model, loss_fn(config), variables, self.optimizer,
            self._step_ramp(), jit_compile=precision.jit_compile)
        self._evaluate = replica_loop.compile_evaluate(
            strategy, model, jit_compile=precision.jit_compile)
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=self.optimizer, epoch=self.epoch,
            dropout_seeds=replica_loop.seed_generator_states(model))
        self.checkpoint_dir = os.path.join(logdir, trained_run.CHECKPOINTS)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, scratch_dir or self.checkpoint_dir,
            max_to_keep=2 if scratch_dir is None else 1)
        self.writer = (tf.summary.create_file_writer(logdir)
                       if scratch_dir is None
                       else tf.summary.create_noop_writer())

    # The data's three uses; StreamingImageTrainer streams instead.
    def _steps_per_epoch(self) -> int:
        return steps_per_epoch(self.data, self.config)

    def _train_batches(self, epoch: int) -> tf.data.Dataset:
        cfg = self.config
        return images.train_dataset(self.data, cfg.batch_size, cfg.seed,
                                    epoch, augment=cfg.augment,
                                    cutout=cfg.cutout,
                                    cutout_anchor=cfg.cutout_anchor)

    def _test_batches(self) -> tuple[tf.data.Dataset, int]:
        """The test batches and how many images they hold."""
        return (images.eval_dataset(self.data, "test", self.config.batch_size),
                len(self.data.test_labels))

    def _has_drop_path(self) -> bool:
        return hasattr(self.model, "set_drop_path_progress")

    def _step_ramp(self):
        return drop_path_step_ramp(self.model, self.config, self.steps)

    def restore(self) -> int:
        """Restores the last checkpoint of ``logdir``, if any; returns the
        epochs done."""
        latest = tf.train.latest_checkpoint(self.checkpoint_dir)
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        return int(self.epoch.numpy())

    def test_accuracy(self) -> float:
        test, count = self._test_batches()
        return float(self._evaluate(test)) / count

    def train_epoch(self, epoch: int) -> dict:
        cfg = self.config
        lr = cfg.schedule(epoch)
        self.optimizer.learning_rate.assign(lr)
        if cfg.drop_path_ramp == "epoch" and self._has_drop_path():
            self.model.set_drop_path_progress(epoch / cfg.epochs)
        dataset = self._train_batches(epoch)
        if cfg.steps_per_epoch:
            dataset = dataset.take(cfg.steps_per_epoch)
        loss, hits = self._train_epoch(
            dataset, tf.constant(epoch * self.steps, tf.int64))
        return {"loss": float(loss), "learning_rate": lr,
                "accuracy": float(hits) / (self.steps * cfg.batch_size)}

    def run(self) -> dict:
        """Trains the remaining epochs; returns the final metrics."""
        cfg = self.config
        done = self.restore()
        if done:
            self.log(f"resuming after epoch {done} of {cfg.epochs} "
                     f"({tf.train.latest_checkpoint(self.checkpoint_dir)})")
        began, record = time.time(), {}
        for epoch in range(done, cfg.epochs):
            started = time.time()
            record = self.train_epoch(epoch)
            if not math.isfinite(record["loss"]):
                raise FloatingPointError(
                    f"the training loss became {record['loss']} in epoch "
                    f"{epoch + 1}; lower --learning_rate or set --grad_clip")
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                record["test_accuracy"] = self.test_accuracy()
            self.epoch.assign(epoch + 1)
            self.manager.save(checkpoint_number=epoch + 1)
            self._summaries(epoch + 1, record)
            per_epoch = (time.time() - began) / (epoch + 1 - done)
            left = per_epoch * (cfg.epochs - epoch - 1)
            test = (f"  test acc {record['test_accuracy']:.4f}"
                    if "test_accuracy" in record else "")
            self.log(f"epoch {epoch + 1}/{cfg.epochs}  loss "
                     f"{record['loss']:.4f}  train acc "
                     f"{record['accuracy']:.4f}  lr "
                     f"{record['learning_rate']:.5f}{test}  "
                     f"{time.time() - started:.1f} s  ETA "
                     f"{progress.duration(left)}")
        if "test_accuracy" not in record:
            record = {"test_accuracy": self.test_accuracy()}
        return {"test_accuracy": record["test_accuracy"],
                "epochs": cfg.epochs}

    def _summaries(self, step: int, record: dict) -> None:
        with self.writer.as_default():
            tf.summary.scalar("train/loss", record["loss"], step=step)
            tf.summary.scalar("train/accuracy", record["accuracy"], step=step)
            tf.summary.scalar("train/learning_rate", record["learning_rate"],
                              step=step)
            if "test_accuracy" in record:
                tf.summary.scalar("test/accuracy", record["test_accuracy"],
                                  step=step)
        self.writer.flush()
