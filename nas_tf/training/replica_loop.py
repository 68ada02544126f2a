"""Epoch loops of image classifiers under a tf.distribute strategy.

Shared by the search's child trainer, the final trainer and ENAS's shared
weights. A Python loop over the batches calls one compiled step: inside it
the batch is split over the replicas (``distribute.split_batch``),
gradients are summed across replicas and applied in cross-replica context
(``momentum_sgd``), so nothing a model traces stays registered with
TensorFlow after the model is dropped.
"""

import contextlib

import keras
import tensorflow as tf

from nas_tf import distribute
from nas_tf.training import precision


def logits_of(outputs):
    """Main logits of a model that may also return auxiliary logits."""
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def count_hits(logits, labels):
    hits = tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                    tf.cast(labels, tf.int32))
    return tf.reduce_sum(tf.cast(hits, tf.float32))


def train_step_fn(strategy, model, loss_fn, variables, optimizer,
                  before_step=None, arc_sampler=None, skip_unused=False,
                  jit_compile=False):
    """The training step ``(batch, step) -> (loss, hits)`` of one global
    batch, in cross-replica context, not compiled: ``compile_train_epoch``
    compiles it for a loop over a dataset, ``child_program`` calls it inside
    a child's whole training.

    Args:
      strategy: The strategy the model and ``optimizer`` were built under.
      model: Called as ``model(images, training=True)``, or with
        ``arc_sampler`` as ``model(images, arc, training=True)``.
      loss_fn: ``(outputs, labels) -> loss`` of one replica's batch, already
        divided by the global batch size (so replicas' losses sum).
      variables: What is trained.
      optimizer: A ``MomentumSgd`` over ``variables``.
      before_step: Optional ``(global_step) -> None`` run in cross-replica
        context before each step (e.g. to move scheduled drop path).
      arc_sampler: Optional ``(global_step, replica_id) -> arc``: a
        shared-weight supernet's architecture of each step, drawn afresh
        on every replica (ENAS: one architecture per minibatch).
      skip_unused: With ``arc_sampler``: weights whose gradient is zero on
        every replica (an op the step's architectures did not use) keep
        their value and momentum; see ``MomentumSgd.apply``.
      jit_compile: Compile each replica's forward and backward pass with
        XLA (``precision``); the gradients' sum over replicas, the update
        and the loss scale's bookkeeping stay outside it.

    With ``optimizer.loss_scale`` set (``mixed_float16``) the gradients are
    taken of the scaled loss and unscaled; a step with a non-finite
    gradient on any replica is skipped and the scale moves
    (``precision.DynamicLossScale``). The loss returned is unscaled.
    """
    loss_scale = getattr(optimizer, "loss_scale", None)

    def forward_backward(batch, *arc):
        images, labels = batch
        with tf.GradientTape() as tape:
            outputs = model(images, *arc, training=True)
            loss = loss_fn(outputs, labels)
            scaled = (loss if loss_scale is None
                      else loss_scale.scale_loss(loss))
        grads = tape.gradient(scaled, variables)
        non_finite = ()
        if loss_scale is not None:
            grads = loss_scale.unscale(grads)
            non_finite = precision.non_finite(grads)
        used = ()
        if skip_unused:
            used = [tf.cast(tf.reduce_any(tf.not_equal(
                tf.convert_to_tensor(g), 0.0)), tf.float32) for g in grads]
        return (loss, count_hits(logits_of(outputs), labels), grads, used,
                non_finite)

    # The architecture is sampled outside XLA: only the pass through the
    # model is compiled.
    compiled_pass = _maybe_jit(forward_backward, jit_compile)

    def replica_step(batch, step):
        if arc_sampler is None:
            return compiled_pass(batch)
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return compiled_pass(batch, arc_sampler(step, replica))

    def train_step(batch, step):
        if before_step is not None:
            before_step(step)
        loss, batch_hits, grads, used, non_finite = strategy.run(
            replica_step, (distribute.split_batch(strategy, batch), step))
        apply_if_finite(strategy, loss_scale, non_finite,
                        lambda: optimizer.apply(
                            strategy, grads, used if skip_unused else None))
        return (strategy.reduce("SUM", loss, axis=None),
                strategy.reduce("SUM", batch_hits, axis=None))

    return train_step


def apply_if_finite(strategy, loss_scale, non_finite, apply) -> None:
    """Runs the update ``apply()`` (cross-replica context). With a
    ``loss_scale`` (mixed_float16) the update is skipped on every replica
    if one replica's gradients were not finite (``non_finite``: each
    replica's ``precision.non_finite``), and the scale moves."""
    if loss_scale is None:
        apply()
        return
    finite = strategy.reduce("SUM", non_finite, axis=None) == 0
    if finite:
        apply()
    loss_scale.update(finite)


def compile_train_epoch(strategy, model, loss_fn, variables, optimizer,
                        before_step=None, arc_sampler=None,
                        skip_unused=False, jit_compile=False):
    """A function ``(dataset, first_step)`` training one epoch, one compiled
    step per batch; returns the mean loss per batch and the training hits
    (tensors: nothing waits for the device until they are read). The
    arguments are ``train_step_fn``'s.
    """
    return epoch_loop(tf.function(train_step_fn(
        strategy, model, loss_fn, variables, optimizer, before_step,
        arc_sampler, skip_unused, jit_compile)), jit_compile)


def epoch_loop(train_step, jit_compile: bool = False):
    """``(dataset, first_step) -> (mean loss, hits)`` of one epoch over the
    compiled ``train_step`` (``train_step_fn``'s, in a ``tf.function``);
    ``jit_compile``: XLA's refusals are named (``XlaCompileError``)."""

    def train_epoch(dataset, first_step):
        # A Python loop over a compiled step. A ``for batch in dataset``
        # inside the tf.function would compile into a tf.data reduction and
        # run every step inside tf.data's function runtime: several times
        # slower on CPU.
        total, hits = tf.constant(0.0), tf.constant(0.0)
        step = int(first_step)
        first = step
        for batch in dataset:
            with _naming_xla_failures(jit_compile, "training step"):
                loss, batch_hits = train_step(batch,
                                              tf.constant(step, tf.int64))
            total += loss
            hits += batch_hits
            step += 1
        return total / max(step - first, 1), hits

    return train_epoch


def _maybe_jit(replica_fn, jit_compile: bool):
    """``replica_fn`` itself, or compiled with XLA: the function each
    replica runs inside ``strategy.run`` (as Keras compiles a replica's
    step), so the cross-replica sums stay outside XLA."""
    if not jit_compile:
        return replica_fn
    return tf.function(replica_fn, jit_compile=True, reduce_retracing=True)


@contextlib.contextmanager
def _naming_xla_failures(jit_compile: bool, what: str):
    """Re-raises XLA's refusal to compile a step as ``XlaCompileError``
    naming the step and the way out (no silent fallback)."""
    try:
        yield
    except (tf.errors.InvalidArgumentError,
            tf.errors.UnimplementedError) as err:
        if jit_compile and _is_xla_failure(err):
            raise precision.XlaCompileError(
                f"jit_compile: XLA cannot compile the {what} of this model "
                f"({err.message.splitlines()[0]}); run without "
                f"--jit_compile") from err
        raise


def _is_xla_failure(err) -> bool:
    text = err.message
    return any(mark in text for mark in (
        "XLA", "Detected unsupported operations", "No registered",
        "must be a compile-time constant"))


def replica_hits(strategy, model, training: bool, jit_compile=False):
    """``(batch, *arc) -> correct predictions`` of one batch split over the
    replicas (call inside a ``tf.function``); ``arc`` is a supernet's
    architecture, if any."""

    def step(batch, *arc):
        images, labels = batch
        return count_hits(logits_of(model(images, *arc, training=training)),
                          labels)

    replica_step = _maybe_jit(step, jit_compile)

    def hits(batch, *arc):
        return strategy.reduce("SUM", strategy.run(
            replica_step, (distribute.split_batch(strategy, batch), *arc)),
            axis=None)

    return hits


def compile_evaluate(strategy, model, batch_stats: bool = False,
                     jit_compile: bool = False):
    """A function ``(dataset)`` returning the number of correct predictions
    (a tensor); ``batch_stats`` runs BatchNorm on batch statistics;
    ``jit_compile`` compiles each replica's pass with XLA."""
    # The last batch may be smaller.
    return evaluation_loop(tf.function(
        replica_hits(strategy, model, batch_stats, jit_compile),
        reduce_retracing=True), jit_compile)


def evaluation_loop(batch_hits, jit_compile: bool = False):
    """``(dataset) -> correct predictions`` over the compiled
    ``batch_hits`` (``replica_hits``'s, in a ``tf.function``)."""

    def evaluate(dataset):
        hits = tf.constant(0.0)
        for batch in dataset:  # outside tf.function: see epoch_loop
            with _naming_xla_failures(jit_compile, "evaluation step"):
                hits += batch_hits(batch)
        return hits

    return evaluate


def cross_entropy(labels, logits, global_batch: int,
                  label_smoothing: float = 0.0):
    """Summed softmax cross-entropy / ``global_batch``, with labels
    smoothed towards uniform by ``label_smoothing`` (NASNet ImageNet).
    16-bit logits (mixed precision) are taken to float32 first; float64
    ones (the gradient checks) stay."""
    if logits.dtype in (tf.float16, tf.bfloat16):
        logits = tf.cast(logits, tf.float32)
    nll = keras.losses.sparse_categorical_crossentropy(labels, logits,
                                                       from_logits=True)
    if label_smoothing:
        uniform = -tf.reduce_mean(tf.nn.log_softmax(logits), axis=-1)
        nll = (1.0 - label_smoothing) * nll + label_smoothing * uniform
    return tf.reduce_sum(nll) / global_batch


def compile_arc_hits(strategy, model, training: bool,
                     jit_compile: bool = False):
    """A ``tf.function(images, labels, arc)`` returning the correct
    predictions of supernet ``model`` with architecture ``arc`` on one
    batch, split over the replicas; ``training`` as the model takes it;
    ``jit_compile`` compiles each replica's pass with XLA."""
    batch_hits = replica_hits(strategy, model, training, jit_compile)

    @tf.function
    def hits(images, labels, arc):
        return batch_hits((images, labels), arc)

    return hits


def seed_generator_states(model) -> list:
    """The state variables of ``model``'s Keras seed generators (dropout
    masks). ``tf.train.Checkpoint(model=...)`` leaves them out; checkpoint
    them too, so a resumed run draws the masks the uninterrupted one
    would."""
    return [v.value for v in model.non_trainable_variables
            if v.path.endswith("seed_generator_state")]


def model_variables(model) -> list:
    """Every variable of ``model`` as a list for ``tf.train.Checkpoint``:
    its weights (BatchNorm statistics included) and its seed generators'
    states. A subclassed Keras model that keeps layers in dicts or nested
    lists is not fully traversed by ``tf.train.Checkpoint(model=...)``; a
    list of its variables is, in the model's own (fixed) order."""
    return [v.value for v in model.weights] + seed_generator_states(model)
