"""Compiled epoch loops of image classifiers under a tf.distribute strategy.

Shared by the search's child trainer and the final trainer. One
``tf.function`` per epoch loop: batches are split over the replicas inside
it (``distribute.split_batch``), gradients summed across replicas and
applied in cross-replica context (``momentum_sgd``), so nothing a model
traces stays registered with TensorFlow after the model is dropped.
"""

import keras
import tensorflow as tf

from nas_tf import distribute


def logits_of(outputs):
    """Main logits of a model that may also return auxiliary logits."""
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def count_hits(logits, labels):
    hits = tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                    tf.cast(labels, tf.int32))
    return tf.reduce_sum(tf.cast(hits, tf.float32))


def compile_train_epoch(strategy, model, loss_fn, variables, optimizer,
                        before_step=None):
    """A ``tf.function(dataset, first_step)`` training one epoch; returns
    the mean loss per batch and the training hits.

    Args:
      strategy: The strategy the model and ``optimizer`` were built under.
      model: Called as ``model(images, training=True)``.
      loss_fn: ``(outputs, labels) -> loss`` of one replica's batch, already
        divided by the global batch size (so replicas' losses sum).
      variables: What is trained.
      optimizer: A ``MomentumSgd`` over ``variables``.
      before_step: Optional ``(global_step) -> None`` run in cross-replica
        context before each step (e.g. to move scheduled drop path).
    """

    def gradient_step(batch):
        images, labels = batch
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            loss = loss_fn(outputs, labels)
        return (loss, count_hits(logits_of(outputs), labels),
                tape.gradient(loss, variables))

    @tf.function
    def train_epoch(dataset, first_step):
        total, hits = tf.constant(0.0), tf.constant(0.0)
        step = tf.cast(first_step, tf.int64)
        for batch in dataset:
            if before_step is not None:
                before_step(step)
            loss, batch_hits, grads = strategy.run(
                gradient_step, (distribute.split_batch(strategy, batch),))
            optimizer.apply(strategy, grads)
            total += strategy.reduce("SUM", loss, axis=None)
            hits += strategy.reduce("SUM", batch_hits, axis=None)
            step += 1
        steps = tf.cast(step - tf.cast(first_step, tf.int64), tf.float32)
        return total / tf.maximum(steps, 1.0), hits

    return train_epoch


def compile_evaluate(strategy, model, batch_stats: bool = False):
    """A ``tf.function(dataset)`` returning the number of correct
    predictions; ``batch_stats`` runs BatchNorm on batch statistics."""

    def eval_step(batch):
        images, labels = batch
        return count_hits(logits_of(model(images, training=batch_stats)),
                          labels)

    @tf.function
    def evaluate(dataset):
        hits = tf.constant(0.0)
        for batch in dataset:
            hits += strategy.reduce("SUM", strategy.run(
                eval_step, (distribute.split_batch(strategy, batch),)),
                axis=None)
        return hits

    return evaluate


def cross_entropy(labels, logits, global_batch: int,
                  label_smoothing: float = 0.0):
    """Summed softmax cross-entropy / ``global_batch``, with labels
    smoothed towards uniform by ``label_smoothing`` (NASNet ImageNet)."""
    nll = keras.losses.sparse_categorical_crossentropy(labels, logits,
                                                       from_logits=True)
    if label_smoothing:
        uniform = -tf.reduce_mean(tf.nn.log_softmax(logits), axis=-1)
        nll = (1.0 - label_smoothing) * nll + label_smoothing * uniform
    return tf.reduce_sum(nll) / global_batch
