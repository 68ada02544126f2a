"""Trains one image child from scratch under a tf.distribute strategy.

The search's inner loop (NAS-RL: every child trained from scratch on the
search training split, validated after the epochs its reward reads). A
custom loop with ``strategy.run`` (DESIGN: ``Model.fit`` is slow or broken
under tf.distribute); one compiled function per epoch, so a child costs one
trace. Nothing of a child stays registered with TensorFlow once it is
dropped (see ``replica_loop``), so a search's memory stays flat.
"""

import contextlib
import dataclasses
import logging
import math
import threading
import time
import warnings

import tensorflow as tf

from nas_tf.config import _raise_on_failed
from nas_tf.data import images
from nas_tf.training import momentum_sgd
from nas_tf.training import precision as precision_lib
from nas_tf.training import replica_loop
from nas_tf.training import schedules

LR_SCHEDULES = ("constant", "cosine")

class _NoRetracingWarning(logging.Filter):
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


_quiet_lock = threading.Lock()
_quiet = {"depth": 0, "warnings": None, "filter": None}


@contextlib.contextmanager
def _quiet_child_tracing():
    """While children train: every child traces its own step functions by
    design, and TF's "retracing" warning counts them as if one function
    retraced, so it is filtered; so is tf.data's note about options read in
    graph mode. Nothing stays filtered once the last child (children may
    train in parallel threads) has finished."""
    with _quiet_lock:
        if _quiet["depth"] == 0:
            _quiet["filter"] = _NoRetracingWarning()
            tf.get_logger().addFilter(_quiet["filter"])
            _quiet["warnings"] = warnings.catch_warnings()
            _quiet["warnings"].__enter__()
            warnings.filterwarnings(
                "ignore", message="To make it possible to preserve")
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet["depth"] -= 1
            if _quiet["depth"] == 0:
                _quiet["warnings"].__exit__(None, None, None)
                tf.get_logger().removeFilter(_quiet["filter"])


@dataclasses.dataclass(frozen=True)
class ChildTrainConfig:
    """How a child is trained during search.

    Defaults are NAS-RL's CIFAR-10 children as far as the paper gives them
    (sec. 4.1: 50 epochs; Nesterov momentum 0.9, lr 0.1, weight decay 1e-4,
    the DenseNet setting; the reward looks at the last 5 epochs). The paper
    names no batch size or schedule: 64 (DenseNet's) and a constant rate.

    Attributes:
      epochs: Training epochs per child.
      batch_size: Global batch size (split over replicas).
      learning_rate: Initial learning rate.
      momentum: SGD momentum.
      nesterov: Nesterov momentum.
      weight_decay: Coupled L2: ``weight_decay * w`` is added to every
        gradient (PyTorch/TF1 style).
      lr_schedule: ``constant`` or per-epoch ``cosine`` to 0.
      steps_per_epoch: Cap on steps per epoch; 0 uses the whole split.
      augment: Pad-4 random crop and flip on the training split.
      reward_epochs: The reward uses the best metric of this many last
        epochs (NAS-RL: 5).
      eval_batch_stats: Validate in training mode, as ENAS micro's reward
        does (``micro_child.py`` ``build_valid_rl`` with
        ``is_training=True``): BatchNorm uses batch statistics instead of
        its moving averages, dropout and drop path stay active, and the
        validation batches move the BatchNorm moving averages. After few
        steps the moving averages lag the weights and make rewards noisy.
    """

    epochs: int = 50
    batch_size: int = 64
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    lr_schedule: str = "constant"
    steps_per_epoch: int = 0
    augment: bool = True
    reward_epochs: int = 5
    eval_batch_stats: bool = False

    def __post_init__(self):
        _raise_on_failed(type(self).__name__, [
            (self.epochs >= 1, f"epochs={self.epochs}; it must be at least "
             "1"),
            (self.batch_size >= 1, f"batch_size={self.batch_size}; it must "
             "be at least 1"),
            (self.learning_rate > 0, f"learning_rate={self.learning_rate}; "
             "it must be positive"),
            (self.weight_decay >= 0, f"weight_decay={self.weight_decay}; it "
             "must not be negative"),
            (self.momentum >= 0, f"momentum={self.momentum}; it must not be "
             "negative"),
            (self.lr_schedule in LR_SCHEDULES, f"lr_schedule="
             f"{self.lr_schedule!r}; allowed: {LR_SCHEDULES}"),
            (self.steps_per_epoch >= 0, f"steps_per_epoch="
             f"{self.steps_per_epoch}; it must be 0 (all) or positive"),
            (self.reward_epochs >= 1, f"reward_epochs={self.reward_epochs}; "
             "it must be at least 1"),
        ])

    def epoch_learning_rate(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        if self.lr_schedule == "cosine":
            return schedules.cosine(epoch, self.epochs, self.learning_rate)
        return self.learning_rate


@dataclasses.dataclass
class ChildResult:
    """What training one child gave.

    Attributes:
      valid_accuracy: Validation accuracy after each of the last
        ``reward_epochs`` epochs (the only ones the reward reads).
      epochs: Epochs trained.
      train_loss: Mean training loss of every epoch.
      diverged: The loss became NaN or infinite (training stopped there).
      seconds: Wall time of the whole training, first trace included.
      first_epoch_seconds: Wall time of epoch 1 (holds the tracing).
    """

    valid_accuracy: list
    epochs: int
    train_loss: list
    diverged: bool
    seconds: float
    first_epoch_seconds: float


def train_child(model, data: images.ImageData, config: ChildTrainConfig,
                strategy: tf.distribute.Strategy, seed: int,
                precision: precision_lib.PrecisionConfig = None
                ) -> ChildResult:
    """Trains ``model`` (built inside ``strategy.scope()``, and under
    ``precision``'s dtype policy) on ``data``'s training split and
    validates it after every epoch; ``precision`` (default float32, no
    XLA) also scales the loss for mixed_float16 and compiles the steps
    with XLA for ``jit_compile``."""
    with _quiet_child_tracing():
        return _train_child(model, data, config, strategy, seed,
                            precision or precision_lib.PrecisionConfig())


def child_steps(model, config: ChildTrainConfig, strategy,
                precision: precision_lib.PrecisionConfig = None):
    """The optimizer of a child and its two uncompiled steps: ``(batch,
    step) -> (loss, hits)`` training on one global batch and ``(batch) ->
    hits`` validating one (BatchNorm on batch statistics with
    ``eval_batch_stats``), with ``precision``'s loss scaling and XLA.
    ``train_child`` loops over them in Python, ``child_program`` inside one
    compiled program."""
    precision = precision or precision_lib.PrecisionConfig()
    variables = model.trainable_variables
    with strategy.scope():
        optimizer = momentum_sgd.MomentumSgd(
            variables, config.learning_rate, momentum=config.momentum,
            nesterov=config.nesterov, weight_decay=config.weight_decay,
            loss_scale=precision_lib.make_loss_scale(precision))
    train_step = replica_loop.train_step_fn(
        strategy, model,
        lambda outputs, labels: replica_loop.cross_entropy(
            labels, replica_loop.logits_of(outputs), config.batch_size),
        variables, optimizer, jit_compile=precision.jit_compile)
    hits = replica_loop.replica_hits(strategy, model, config.eval_batch_stats,
                                     precision.jit_compile)
    return optimizer, train_step, hits


def _train_child(model, data, config, strategy, seed,
                 precision) -> ChildResult:
    began = time.time()
    optimizer, train_step, hits = child_steps(model, config, strategy,
                                              precision)
    train_epoch = replica_loop.epoch_loop(tf.function(train_step),
                                          precision.jit_compile)
    evaluate = replica_loop.evaluation_loop(
        tf.function(hits, reduce_retracing=True), precision.jit_compile)

    def epoch_data(epoch):
        train = images.train_dataset(data, config.batch_size, seed, epoch,
                                     augment=config.augment)
        if config.steps_per_epoch:
            train = train.take(config.steps_per_epoch)
        return train

    valid = images.eval_dataset(data, "valid", config.batch_size)
    num_valid = len(data.valid_labels)
    accuracies, losses, diverged = [], [], False
    first_epoch = 0.0
    for epoch in range(config.epochs):
        optimizer.learning_rate.assign(config.epoch_learning_rate(epoch))
        loss = float(train_epoch(epoch_data(epoch), 0)[0])
        losses.append(loss)
        if not math.isfinite(loss):
            diverged = True
            break
        if epoch >= config.epochs - config.reward_epochs:
            accuracies.append(float(evaluate(valid)) / num_valid)
        if epoch == 0:
            first_epoch = time.time() - began
    return ChildResult(accuracies, len(losses), losses, diverged,
                       time.time() - began, first_epoch)
