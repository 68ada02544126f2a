"""One DARTS iteration as one compiled step (quark0/darts
``cnn/train_search.py`` ``train``): alpha's update on a batch of the alpha
half, then the weights' on a batch of the weights half.

Under a tf.distribute strategy each replica takes its share of both
batches; alpha's and the weights' gradients are summed over replicas and
applied in cross-replica context (``CoupledAdam``, ``MomentumSgd``), so
alpha stays one set of values outside the replicated network's weights and
the step equals one device's on the global batch (with the supernet's
synchronized BatchNorm).

Under ``mixed_float16`` both updates share the weight optimizer's loss
scale: each is skipped when its gradients are not finite, and each moves
the scale (``replica_loop.apply_if_finite``).
"""

import functools

import tensorflow as tf

from nas_tf import distribute
from nas_tf.training import precision
from nas_tf.training import replica_loop
from nas_tf.utils import function_specialization


def perturbed(weights, bound, seed):
    """SDARTS-RS (``attacker/perturb.py`` ``Random_alpha`` then
    ``model_search.py`` ``clip``): uniform noise in [-bound, bound] on the
    softmax weights, clamped to [0, 1], each row renormalised (a row that
    clamps to all zeros becomes one-hot at its largest noisy entry)."""
    noise = tf.random.stateless_uniform(tf.shape(weights), seed,
                                        -1.0, 1.0, dtype=weights.dtype)
    moved = weights + bound * noise
    best = tf.one_hot(tf.argmax(moved, axis=-1), tf.shape(weights)[-1],
                      dtype=weights.dtype)
    moved = tf.clip_by_value(moved, 0.0, 1.0)
    empty = tf.reduce_sum(moved, -1, keepdims=True) <= 0.0
    moved = tf.where(empty, best, moved)
    return moved / tf.reduce_sum(moved, -1, keepdims=True)


class SearchStep:
    """Compiles ``(train_batch, valid_batch, step, extra) -> metrics``.

    Args:
      strategy: The tf.distribute strategy everything was built under.
      architect: The ``darts_architect.Architect``.
      weight_optimizer: ``MomentumSgd`` of the model's trainable variables.
      arch_optimizer: ``CoupledAdam`` of alpha (and beta).
      order: ``first``, ``second`` or ``exact``.
      perturb: SDARTS-RS's noise before the weight step.
      seed: The run's seed (the noise of step s is keyed by (seed, s)).
    """

    def __init__(self, strategy, architect, weight_optimizer, arch_optimizer,
                 order, perturb=False, seed=0):
        self.strategy, self.architect = strategy, architect
        self.weight_optimizer = weight_optimizer
        self.arch_optimizer = arch_optimizer
        self.order, self.perturb, self.seed = order, perturb, seed
        self._compiled = {}

    def _alpha_gradients(self, train, valid, extra):
        grads, loss, outputs = self.architect.gradient(self.order, train,
                                                       valid, extra)
        return (grads, loss, replica_loop.count_hits(outputs, valid[1]),
                self._non_finite(grads))

    def _non_finite(self, grads):
        if self.architect.loss_scale is None:
            return ()
        return precision.non_finite(grads)

    def _weight_gradients(self, train, extra, bound, step):
        architect = self.architect
        weights, _ = architect.current()
        mixing = architect.architecture.mixing(architect.mixing_mode)
        if self.perturb:
            for i, kind in enumerate(architect.architecture.kinds):
                # The same noise on every replica: one network is
                # perturbed, as in the original.
                key = tf.stack([tf.constant(self.seed, tf.int64),
                                step * len(mixing) + i])
                mixing[kind] = perturbed(
                    mixing[kind], tf.cast(bound, mixing[kind].dtype), key)
        mixing.update(extra)
        loss, outputs, grads, _, moved = architect.forward_backward(
            weights, mixing, train)
        for variable, value in zip(architect.model.non_trainable_variables,
                                   moved):
            variable.assign(value)
        return (grads, loss, replica_loop.count_hits(outputs, train[1]),
                self._non_finite(grads))

    def _function(self, update_alpha: bool):
        strategy = self.strategy

        @tf.function
        def step(train, valid, step, extra, bound):
            train = distribute.split_batch(strategy, train)
            metrics = {}
            loss_scale = self.architect.loss_scale
            if update_alpha:
                grads, loss, hits, non_finite = strategy.run(
                    self._alpha_gradients,
                    (train, distribute.split_batch(strategy, valid), extra))
                replica_loop.apply_if_finite(
                    strategy, loss_scale, non_finite,
                    functools.partial(self.arch_optimizer.apply, strategy,
                                      grads))
                metrics["valid_loss"] = strategy.reduce("SUM", loss, None)
                metrics["valid_hits"] = strategy.reduce("SUM", hits, None)
            grads, loss, hits, non_finite = strategy.run(
                self._weight_gradients, (train, extra, bound, step))
            replica_loop.apply_if_finite(
                strategy, loss_scale, non_finite,
                functools.partial(self.weight_optimizer.apply, strategy,
                                  grads))
            metrics["train_loss"] = strategy.reduce("SUM", loss, None)
            metrics["train_hits"] = strategy.reduce("SUM", hits, None)
            return metrics

        return step

    def __call__(self, train, valid, step, extra, bound=0.0,
                 update_alpha=True):
        """Runs one iteration; ``extra`` adds tensors to the mixing
        (DARTS-'s skip weight); ``bound`` is SDARTS-RS's epsilon."""
        if update_alpha not in self._compiled:
            self._compiled[update_alpha] = self._function(update_alpha)
        with function_specialization.off():
            return self._compiled[update_alpha](
                train, valid, tf.constant(step, tf.int64), extra,
                tf.constant(bound, tf.float32))
