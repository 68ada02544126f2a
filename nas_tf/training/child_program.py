"""A search child's whole training as one compiled program, for a worker of
a TensorFlow cluster.

A worker of ``ClusterCoordinator`` runs graphs, not Python, so the child's
Python loop (``child_trainer``) becomes one ``tf.function``: it puts every
variable of the child and its optimizer back to its initial value, trains
epoch after epoch on the batches ``images.train_dataset`` would give
(gathered from the training images by the same ``images.epoch_draws``),
validates after each epoch the reward reads, and returns the per-epoch
losses, the correct validation predictions and its own time. A diverged
child trains on to the last epoch (its outcome is cut at the divergence,
as ``child_trainer`` stops there). The step is ``replica_loop``'s, so a
child trained this way equals one trained by ``child_trainer`` with the
same seed.

Starting from the initial values makes the program idempotent:
``ClusterCoordinator`` re-runs a closure whose worker was lost (it may so
run twice), and nothing of the lost attempt survives into the second.
"""

import math

import numpy as np
import tensorflow as tf

from nas_tf.data import images
from nas_tf.training import child_trainer
from nas_tf.training import image_trainer
from nas_tf.training import replica_loop


def data_element(data: images.ImageData):
    """The element of the per-worker dataset a program reads: the training
    and validation splits whole (images uint8, labels int32). A worker
    holds them once, whatever the number of children."""
    return (data.train_images, data.train_labels.astype(np.int32),
            data.valid_images, data.valid_labels.astype(np.int32))


class ChildProgram:
    """The training of ``model`` (built inside ``strategy.scope()``) with
    ``config``, ``seed`` and ``precision`` (``PrecisionConfig``), as
    ``child_trainer.train_child`` does it.

    ``schedule_args(data_iterator)`` are the arguments of ``run`` for
    ``ClusterCoordinator.schedule``; ``result(*outputs)`` turns what
    ``run`` returned into a ``ChildResult``.
    """

    def __init__(self, model, data: images.ImageData,
                 config: child_trainer.ChildTrainConfig, strategy, seed: int,
                 precision=None):
        self.config, self.data = config, data
        self.optimizer, train_step, evaluate_batch = child_trainer.child_steps(
            model, config, strategy, precision)
        self._train_step = train_step
        self._hits = evaluate_batch
        # Everything a run changes: weights, BatchNorm statistics, dropout
        # seeds, momentum, and mixed_float16's loss scale.
        loss_scale = self.optimizer.loss_scale
        state = ([v.value for v in model.variables] +
                 self.optimizer.accumulators +
                 (list(loss_scale.variables) if loss_scale else []))
        self._state = state
        self._initial = [tf.constant(v.numpy()) for v in state]
        self.steps = image_trainer.steps_per_epoch(data, config)
        self._tables = self._epoch_tables(seed)
        self.run = tf.function(self._run)

    def _epoch_tables(self, seed):
        """Per epoch and step: the rows of the batch, their crop offsets
        and flips; and the learning rate of each epoch."""
        cfg, steps, rows = self.config, self.steps, self.config.batch_size
        order, offsets, flips = [], [], []
        for epoch in range(cfg.epochs):
            perm, offset, flip, _ = images.epoch_draws(self.data, seed, epoch)
            used = perm[:steps * rows]
            order.append(used.reshape(steps, rows).astype(np.int32))
            offsets.append(offset[used].reshape(steps, rows, 2))
            flips.append(flip[used].reshape(steps, rows))
        rates = [cfg.epoch_learning_rate(e) for e in range(cfg.epochs)]
        return (np.stack(order), np.stack(offsets), np.stack(flips),
                np.asarray(rates, np.float32))

    def schedule_args(self, data_iterator) -> tuple:
        return (data_iterator,) + self._tables

    def _run(self, data_iterator, order, offsets, flips, rates):
        cfg, data = self.config, self.data
        began = tf.timestamp()
        # The clock reads are ordered by data: before the first read of the
        # data, after the last result.
        with tf.control_dependencies([began]):
            train_x, train_y, valid_x, valid_y = next(data_iterator)
        for variable, value in zip(self._state, self._initial):
            variable.assign(value)
        first_read = self._first_validated()
        losses = tf.TensorArray(tf.float32, size=cfg.epochs)
        # Correct predictions (whole numbers, exact in float32): ``result``
        # divides them in float64, as ``child_trainer`` does.
        correct = tf.TensorArray(tf.float32, size=cfg.epochs - first_read)
        num_valid = tf.shape(valid_y)[0]
        for epoch in tf.range(cfg.epochs):
            self.optimizer.learning_rate.assign(rates[epoch])
            total = tf.constant(0.0)
            for step in tf.range(self.steps):
                rows = order[epoch, step]
                batch_images = tf.gather(train_x, rows)
                if cfg.augment:
                    batch_images = images.crop_and_flip(
                        batch_images, offsets[epoch, step], flips[epoch, step])
                loss, _ = self._train_step(
                    (images.normalize(data, batch_images),
                     tf.gather(train_y, rows)), tf.cast(step, tf.int64))
                total += loss
            losses = losses.write(epoch, total / self.steps)
            if epoch >= first_read:
                hits = tf.constant(0.0)
                # The validation batches of ``images.eval_dataset``.
                for start in tf.range(0, num_valid, cfg.batch_size):
                    end = start + cfg.batch_size
                    hits += self._hits((images.normalize(
                        data, valid_x[start:end]), valid_y[start:end]))
                correct = correct.write(epoch - first_read, hits)
        losses, correct = losses.stack(), correct.stack()
        with tf.control_dependencies([losses, correct]):
            return losses, correct, tf.timestamp() - began

    def _first_validated(self) -> int:
        """The first epoch validated: the reward reads the last
        ``reward_epochs`` (every epoch when there are fewer)."""
        return max(self.config.epochs - self.config.reward_epochs, 0)

    def result(self, losses, correct,
               seconds: float) -> child_trainer.ChildResult:
        """What ``child_trainer.train_child`` would have returned, from what
        ``run`` returned: training stops at the first non-finite epoch
        loss, and only the epochs it trained are validated. ``seconds`` is
        the program's own time on its worker."""
        losses = [float(x) for x in losses]
        trained = next((i + 1 for i, x in enumerate(losses)
                        if not math.isfinite(x)), len(losses))
        diverged = not math.isfinite(losses[trained - 1])
        validated = trained - 1 if diverged else trained
        num_valid = len(self.data.valid_labels)
        read = [float(hits) / num_valid for hits in
                correct[:max(validated - self._first_validated(), 0)]]
        return child_trainer.ChildResult(read, trained, losses[:trained],
                                         diverged, float(seconds), 0.0)
