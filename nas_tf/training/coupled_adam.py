"""Adam as ``torch.optim.Adam`` applies it, replica-aware: the optimizer of
DARTS's architecture parameters.

PyTorch's Adam adds ``weight_decay * w`` to the gradient (coupled L2, not
AdamW's decoupled decay, which Keras's ``weight_decay`` is). The step is
PyTorch 0.3's (the version quark0/darts pins), with epsilon added to the
uncorrected root::

    g <- g + wd * w
    m <- b1 * m + (1 - b1) * g;  v <- b2 * v + (1 - b2) * g^2
    w <- w - lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)

(later PyTorch versions add epsilon to the bias-corrected root instead; the
two differ only while sqrt(v) is within a few epsilons of zero).
"""

import tensorflow as tf


class CoupledAdam(tf.Module):
    """Adam over ``variables``; create it inside the strategy's scope.

    Args:
      variables: tf.Variables.
      learning_rate, beta_1, beta_2, epsilon: Adam's (PyTorch's default
        epsilon 1e-8).
      weight_decay: Coupled L2 added to each gradient.
    """

    def __init__(self, variables, learning_rate: float, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(name="coupled_adam")
        self._variables = list(variables)
        self.learning_rate = tf.Variable(float(learning_rate),
                                         trainable=False,
                                         name="learning_rate")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon, self.weight_decay = float(epsilon), float(weight_decay)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False,
                                      name="iterations")
        self.first_moments = [tf.Variable(tf.zeros_like(v), trainable=False,
                                          name="m") for v in self._variables]
        self.second_moments = [tf.Variable(tf.zeros_like(v), trainable=False,
                                           name="v") for v in self._variables]

    def apply(self, strategy: tf.distribute.Strategy, per_replica_grads):
        """Sums ``per_replica_grads`` (from ``strategy.run``) over replicas
        and updates every replica's copy; cross-replica context."""
        grads = strategy.extended.batch_reduce_to(
            tf.distribute.ReduceOp.SUM,
            list(zip(per_replica_grads, self._variables)))
        self.iterations.assign_add(1)
        t = tf.cast(self.iterations, self._variables[0].dtype)
        for grad, variable, m, v in zip(grads, self._variables,
                                        self.first_moments,
                                        self.second_moments):
            strategy.extended.update(variable, self._update,
                                     args=(grad, m, v, t), group=False)

    def _update(self, variable, grad, m, v, t):
        grad = tf.convert_to_tensor(grad)
        if self.weight_decay:
            grad += self.weight_decay * variable
        m.assign(self.beta_1 * m + (1.0 - self.beta_1) * grad)
        v.assign(self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad))
        lr = tf.cast(self.learning_rate, variable.dtype)
        step = lr * tf.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        variable.assign_sub(step * m / (tf.sqrt(v) + self.epsilon))
