"""SGD with momentum as the originals' optimizers apply it, replica-aware.

The update is the one of TF1's ``MomentumOptimizer`` (NAS-RL, NASNet, ENAS)
and ``torch.optim.SGD`` (DARTS), which agree::

    a <- m * a + g            (g includes coupled weight decay, wd * w)
    w <- w - lr * (g + m * a)  with Nesterov, else  w <- w - lr * a

Keras's SGD keeps ``lr * g`` in its velocity instead, which differs from
the originals as soon as the learning rate changes.

``apply`` runs in cross-replica context on gradients already summed over
replicas. The Keras optimizers sum them inside the replica function with
``ReplicaContext.all_reduce``, and every trace of that registers a custom
gradient that TensorFlow never removes and that keeps the traced function
(and so the whole model) alive; a search traces one step function per child,
so its memory would grow child after child.
"""

import keras
import tensorflow as tf


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


class MomentumSgd(tf.Module):
    """Momentum SGD over ``variables``; create it inside the strategy's scope
    (its accumulators are then mirrored like the variables).

    Args:
      variables: The trainable variables (Keras or tf).
      learning_rate: Initial learning rate; ``learning_rate`` is a variable
        the caller assigns when the schedule moves.
      momentum: Momentum coefficient.
      nesterov: Nesterov momentum.
      weight_decay: Coupled L2: ``weight_decay * w`` added to each gradient
        before the momentum (TF1 and PyTorch style).
      clip_norm: Rescales the summed gradients so their global norm is at
        most this, before the weight decay is added (DARTS
        ``clip_grad_norm_``; NASNet's slim clips the gradient of a loss that
        holds the decay); 0: off.
      loss_scale: Optional ``precision.DynamicLossScale`` (mixed_float16):
        the training loop scales the loss and unscales the gradients with
        it and skips ``apply`` on non-finite gradients. Held here so that
        checkpointing the optimizer checkpoints the scale.
    """

    def __init__(self, variables, learning_rate: float, momentum: float = 0.9,
                 nesterov: bool = True, weight_decay: float = 0.0,
                 clip_norm: float = 0.0, loss_scale=None):
        super().__init__(name="momentum_sgd")
        # None adds nothing to a checkpoint: a float32 run's keeps its
        # layout, so runs started before stay resumable.
        self.loss_scale = loss_scale
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.weight_decay = float(weight_decay)
        self.clip_norm = float(clip_norm)
        self._variables = [_tf_variable(v) for v in variables]
        self.learning_rate = tf.Variable(float(learning_rate), trainable=False,
                                         name="learning_rate")
        self.accumulators = [
            tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False,
                        name="accumulator") for v in self._variables]

    def apply(self, strategy: tf.distribute.Strategy, per_replica_grads,
              per_replica_used=None):
        """Sums ``per_replica_grads`` (as ``strategy.run`` returned them, one
        per variable) over replicas and updates every replica's copy. Call
        in cross-replica context, e.g. inside a ``tf.function`` right after
        ``strategy.run``.

        ``per_replica_used``: optional float 0/1 per variable; a variable no
        replica used keeps its value and its momentum (no decay either), as
        PyTorch's SGD skips parameters without a gradient. Without it every
        variable moves, zero gradient or not, as in TF1.
        """
        grads = strategy.extended.batch_reduce_to(
            tf.distribute.ReduceOp.SUM,
            list(zip(per_replica_grads, self._variables)))
        if per_replica_used is None:
            used = [None] * len(grads)
        else:
            used = strategy.extended.batch_reduce_to(
                tf.distribute.ReduceOp.SUM,
                list(zip(per_replica_used, self._variables)))
        scale = tf.constant(1.0)
        if self.clip_norm:
            # Every replica holds the same sums; the norm of one copy is
            # the norm.
            norm = tf.linalg.global_norm(
                [strategy.experimental_local_results(g)[0] for g in grads])
            scale = self.clip_norm / tf.maximum(norm, self.clip_norm)
        # One learning rate and momentum tensor per dtype, not per variable:
        # a supernet has over a thousand variables, and every op is a node
        # of the step's graph to hold and compile.
        constants = {}
        for grad, variable, accumulator, was_used in zip(
                grads, self._variables, self.accumulators, used):
            dtype = variable.dtype
            if dtype not in constants:
                constants[dtype] = (tf.cast(self.learning_rate, dtype),
                                    tf.constant(self.momentum, dtype))
            strategy.extended.update(
                variable, self._update,
                args=(grad, accumulator, *constants[dtype], scale, was_used),
                group=False)

    def _update(self, variable, grad, accumulator, learning_rate, momentum,
                scale, was_used=None):
        grad = tf.convert_to_tensor(grad)
        if self.clip_norm:
            grad *= scale
        if self.weight_decay:
            grad += self.weight_decay * variable
        if was_used is None:
            # TF1's MomentumOptimizer kernel, the update above in one op
            # (the step does one update per variable, hundreds in a
            # supernet, so the ops the unfused form adds are felt on CPU).
            tf.raw_ops.ResourceApplyMomentum(
                var=variable.handle, accum=accumulator.handle,
                lr=learning_rate, grad=grad, momentum=momentum,
                use_nesterov=self.nesterov)
            return
        moved = self.momentum * accumulator + grad
        keep = tf.cast(tf.convert_to_tensor(was_used) > 0, grad.dtype)
        moved = keep * moved + (1.0 - keep) * accumulator
        accumulator.assign(moved)
        step = (grad + self.momentum * accumulator if self.nesterov
                else accumulator)
        variable.assign_sub(learning_rate * keep * step)
