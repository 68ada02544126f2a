"""The gradient of DARTS's validation loss in alpha (Liu et al. 2018, sec.
2.3 and Alg. 1; quark0/darts ``cnn/architect.py``).

Three orders, all run inside one replica of ``strategy.run`` and returning
that replica's share of the gradient (the shares sum to the gradient of the
global batch, so the optimizer sums them over replicas):

* ``first``: grad_alpha L_val(w, alpha).
* ``second``: the code's unrolled gradient. The virtual step is the weight
  optimizer's next step without clipping, ``w' = w - xi * (momentum * a +
  grad_w L_train(w) + wd * w)`` with ``a`` its momentum buffer and ``xi``
  its current learning rate (``_compute_unrolled_model``). Then
  ``grad_alpha L_val(w', alpha) - xi * H v`` with ``v = grad_w'
  L_val(w', alpha)`` and the Hessian-vector product ``H v`` of
  ``L_train`` taken by central differences **at w** (the fix of darts#21):
  ``(grad_alpha L_train(w + r v) - grad_alpha L_train(w - r v)) / 2r``,
  ``r = 0.01 / ||v||`` (``_hessian_vector_product``, paper footnote 2).
* ``exact``: the same one-step unrolled gradient by double backprop: nested
  tapes differentiate ``L_val(w'(alpha), alpha)`` through the virtual step.
  It is what the finite difference approximates (they agree to about 1e-5
  relative in float64, ``tests/darts_architect_test.py``).

The losses are evaluated with ``model.stateless_call`` at the given
weights, so nothing is copied or assigned, and BatchNorm uses the batch's
statistics (the original's ``model.train()``) without moving its averages:
only the weight step moves them (the original's architect passes move them
too; they only matter for the evaluation with moving statistics).

Under several replicas, the training gradient (for w') and ``v`` (for ``r``
and ``w +- r v``) are summed across replicas inside the step, so every
replica forms the same w' and perturbations as one device would.
"""

import numpy as np
import tensorflow as tf

ORDERS = ("first", "second", "exact")


def _sum_over_replicas(values):
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return context.all_reduce("SUM", values)


class Architect:
    """The alpha gradient of one supernet.

    Args:
      model: The supernet, called ``model(inputs, mixing, training=True)``.
      architecture: Its ``darts_alpha.ArchitectureWeights``.
      weight_optimizer: The weights' ``MomentumSgd`` (its momentum buffers,
        weight decay and learning rate form the virtual step); its variables
        are ``model.trainable_variables`` in order.
      loss_fn: ``(outputs, labels) -> loss`` of one replica, divided by the
        global batch.
      mixing_mode: ``softmax`` or ``sigmoid`` (Fair DARTS).
      alpha_penalty: Optional ``(alpha values) -> loss`` added to the
        validation loss (Fair DARTS's zero-one loss), counted once over all
        replicas.
      radius: The finite difference's ``r`` numerator (0.01).
      jit_compile: Compile the network's pass (``forward_backward``) with
        XLA (one device; not the exact order's double backprop, which the
        configuration refuses with XLA).

    With ``weight_optimizer.loss_scale`` (``mixed_float16``) every
    gradient is taken of the scaled loss and returned unscaled; the caller
    skips a step whose gradients are not finite.
    """

    def __init__(self, model, architecture, weight_optimizer, loss_fn,
                 mixing_mode="softmax", alpha_penalty=None, radius=0.01,
                 jit_compile=False):
        self.model, self.architecture = model, architecture
        self.optimizer, self.loss_fn = weight_optimizer, loss_fn
        self.mixing_mode, self.alpha_penalty = mixing_mode, alpha_penalty
        self.radius = radius
        self.jit_compile = jit_compile
        self.loss_scale = getattr(weight_optimizer, "loss_scale", None)
        self._pass = None

    def forward_backward(self, weights, mixing, batch):
        """``(loss, outputs, weight grads, mixing grads, non-trainable
        values)`` of ``batch`` at weight values ``weights`` and mixing
        tensors ``mixing``, with BatchNorm's batch statistics; the last are
        the values the pass moved BatchNorm's averages to (assigned by the
        weight step only).

        Every pass through the network of a step (first order: the alpha
        step's and the weight step's; second: five) is this one compiled
        function, called without inlining on one device, so the step holds
        one compiled copy of the network instead of one per pass: the graph,
        not the activations, is most of a step's memory at batch 16 (see
        the README's DARTS speed and memory). It computes both gradients
        each time: the mixing's costs little, the weights' (the kernels'
        gradients) made the first-order step 4.0 -> 4.9 s at batch 16.
        Under several replicas (the BatchNorm's all-reduce) it is traced in
        place, and XLA is not offered there (``search_config``).
        """
        if self._pass is None:
            def run(weights, mixing, batch):
                with tf.GradientTape() as tape:
                    tape.watch([weights, mixing])
                    loss, outputs, moved = self._network_loss(
                        weights, mixing, batch)
                    scaled = self._scaled(loss)
                d_weights, d_mixing = tape.gradient(scaled,
                                                    (weights, mixing))
                d_weights, d_mixing = self._unscaled((d_weights, d_mixing))
                return loss, outputs, d_weights, d_mixing, moved
            context = tf.distribute.get_replica_context()
            if context is not None and context.num_replicas_in_sync > 1:
                self._pass = run
            else:
                self._pass = tf.function(
                    run, jit_compile=self.jit_compile or None,
                    experimental_attributes={"_noinline": True})
        return self._pass(weights, mixing, batch)

    def _scaled(self, loss):
        return loss if self.loss_scale is None else \
            self.loss_scale.scale_loss(loss)

    def _unscaled(self, grads):
        """``grads`` (a nest) divided by the loss scale."""
        if self.loss_scale is None:
            return grads
        flat = self.loss_scale.unscale(tf.nest.flatten(grads))
        return tf.nest.pack_sequence_as(grads, flat)

    def evaluate(self, weights, alphas, batch, extra, penalized):
        """``(loss, outputs, weight grads, alpha grads)`` of ``batch`` at
        ``weights`` and alpha values ``alphas`` (``penalized``: with the
        alpha penalty, the validation loss)."""
        with tf.GradientTape() as tape:
            tape.watch(alphas)
            mixing = self.architecture.mixing(self.mixing_mode, alphas)
            penalty = (self._penalty(alphas)
                       if penalized and self.alpha_penalty is not None
                       else None)
        given = dict(mixing)
        given.update(extra or {})
        loss, outputs, d_weights, d_mixing, _ = self.forward_backward(
            weights, given, batch)
        targets = list(mixing.values())
        upstream = [d_mixing[k] for k in mixing]
        if penalty is not None:
            loss += penalty
            targets.append(penalty)
            upstream.append(tf.ones_like(penalty))
        d_alpha = tape.gradient(targets, alphas, output_gradients=upstream)
        return loss, outputs, d_weights, d_alpha

    def loss(self, weights, batch, alphas, extra=None):
        """The loss of ``batch`` at weight values ``weights`` and alpha
        values ``alphas``; ``extra`` adds entries to the mixing (DARTS-'s
        skip weight)."""
        mixing = self.architecture.mixing(self.mixing_mode, alphas)
        mixing.update(extra or {})
        loss, outputs, _ = self._network_loss(weights, mixing, batch)
        return loss, outputs

    def _network_loss(self, weights, mixing, batch):
        """(loss, outputs, moved non-trainable values) of ``batch``."""
        inputs, labels = batch
        frozen = [v.value for v in self.model.non_trainable_variables]
        outputs, moved = self.model.stateless_call(weights, frozen, inputs,
                                                   mixing, training=True)
        return self.loss_fn(outputs, labels), outputs, moved

    def _penalty(self, alphas):
        """The alpha penalty's share of one replica (0 without one)."""
        if self.alpha_penalty is None:
            return tf.zeros([], alphas[0].dtype)
        context = tf.distribute.get_replica_context()
        replicas = 1 if context is None else context.num_replicas_in_sync
        return self.alpha_penalty(alphas) / replicas

    def _validation_loss(self, weights, batch, alphas, extra):
        loss, outputs = self.loss(weights, batch, alphas, extra)
        return loss + self._penalty(alphas), outputs

    def current(self):
        """(weight values, alpha values) as tensors."""
        weights = [tf.convert_to_tensor(v.value)
                   for v in self.model.trainable_variables]
        alphas = [tf.convert_to_tensor(v)
                  for v in self.architecture.variables_list]
        return weights, alphas

    def _virtual_step(self, weights, train_grads):
        """w' = w - xi (momentum * a + g + wd * w), the optimizer's next
        step without clipping (``_compute_unrolled_model``)."""
        opt = self.optimizer
        xi = tf.cast(opt.learning_rate, weights[0].dtype)
        return [w - xi * (opt.momentum * tf.convert_to_tensor(a) + g +
                          opt.weight_decay * w)
                for w, g, a in zip(weights, train_grads, opt.accumulators)]

    def gradient(self, order, train_batch, valid_batch, extra=None):
        """This replica's share of the alpha gradient, and its validation
        loss and outputs (at w for ``first``, at w' otherwise)."""
        if order not in ORDERS:
            raise ValueError(f"order={order!r}; allowed: {ORDERS}")
        weights, alphas = self.current()
        extra = extra or {}
        if order == "first":
            loss, outputs, _, grads = self.evaluate(
                weights, alphas, valid_batch, extra, penalized=True)
            return grads, loss, outputs
        if order == "exact":
            if getattr(self.model, "recompute_cells", False):
                raise ValueError(
                    "order='exact' differentiates twice through the "
                    "network, which its recompute_cells rerun does not "
                    "support in graph mode; build it with "
                    "recompute_cells=False")
            return self._exact(weights, alphas, train_batch, valid_batch,
                               extra)
        return self._finite_difference(weights, alphas, train_batch,
                                       valid_batch, extra)

    def _finite_difference(self, weights, alphas, train_batch, valid_batch,
                           extra):
        _, _, train_grads, _ = self.evaluate(weights, alphas, train_batch,
                                             extra, penalized=False)
        train_grads = _sum_over_replicas(train_grads)
        unrolled = self._virtual_step(weights, train_grads)
        loss, outputs, v, d_alpha = self.evaluate(
            unrolled, alphas, valid_batch, extra, penalized=True)
        v = _sum_over_replicas(v)
        r = self.radius / tf.linalg.global_norm(v)
        sides = []
        for sign in (1.0, -1.0):
            # One side after the other: run side by side, the two passes'
            # activations would be alive at once.
            with tf.control_dependencies(sides[-1] if sides else []):
                moved = [w + sign * r * d for w, d in zip(weights, v)]
                sides.append(self.evaluate(moved, alphas, train_batch,
                                           extra, penalized=False)[3])
        xi = tf.cast(self.optimizer.learning_rate, weights[0].dtype)
        grads = [g - xi * (plus - minus) / (2.0 * r)
                 for g, plus, minus in zip(d_alpha, *sides)]
        return grads, loss, outputs

    def _exact(self, weights, alphas, train_batch, valid_batch, extra):
        with tf.GradientTape() as outer:
            outer.watch(alphas)
            with tf.GradientTape() as inner:
                inner.watch(weights)
                train_loss, _ = self.loss(weights, train_batch, alphas,
                                          extra)
                scaled = self._scaled(train_loss)
            train_grads = _sum_over_replicas(self._unscaled(
                inner.gradient(scaled, weights)))
            unrolled = self._virtual_step(weights, train_grads)
            loss, outputs = self._validation_loss(unrolled, valid_batch,
                                                  alphas, extra)
            scaled = self._scaled(loss)
        return (self._unscaled(outer.gradient(scaled, alphas)), loss,
                outputs)

    def alpha_gradient(self, batch, alphas, extra=None):
        """grad_alpha of ``batch``'s loss at the current weights and alpha
        values ``alphas`` (one replica, or no strategy)."""
        weights, _ = self.current()
        return self.evaluate(weights, list(alphas), batch, extra,
                             penalized=False)[3]


def dominant_eigenvalue(gradient_at, point, iterations=20, radius=1e-3):
    """The largest eigenvalue of the Hessian of a function at ``point`` (a
    list of arrays), by power iteration on Hessian-vector products taken as
    central differences of its gradient ``gradient_at(values) -> list``:
    ``H u ~ (g(x + r u) - g(x - r u)) / 2r`` with ``u`` of unit norm.
    Power iteration finds the eigenvalue of largest magnitude; when that is
    negative, a second run on ``H - lambda I`` finds the largest one
    (RobustDARTS takes ``max(eigvals(H))``).

    RobustDARTS forms the whole Hessian of the validation loss in alpha by
    double backprop. Differences of a compiled gradient cost two gradient
    evaluations a step and compile in seconds, where a compiled double
    backprop through the search network took minutes and gigabytes
    (measured: 111 s and 5.7 GB for its first call at the quickstart's
    size).
    """
    point = [np.asarray(p, np.float64) for p in point]

    def hessian_times(vector):
        plus = gradient_at([p + radius * u for p, u in zip(point, vector)])
        minus = gradient_at([p - radius * u for p, u in zip(point, vector)])
        return [(np.asarray(a, np.float64) - np.asarray(b, np.float64))
                / (2 * radius) for a, b in zip(plus, minus)]

    largest = _power_iteration(hessian_times, point, iterations, 0.0)
    if largest < 0:
        largest = _power_iteration(hessian_times, point, iterations,
                                   largest)
    return largest


def _power_iteration(hessian_times, point, iterations, shift):
    """The dominant eigenvalue of ``H - shift I``, plus ``shift``."""
    # A random start: a constant one lies in the Hessian's null space (the
    # softmax of a row does not change when the whole row moves).
    rng = np.random.default_rng(0)
    vector = [rng.standard_normal(p.shape) for p in point]
    eigenvalue = 0.0
    for _ in range(iterations):
        norm = np.sqrt(sum(float(np.sum(u * u)) for u in vector))
        vector = [u / norm for u in vector]
        product = [p - shift * u for p, u in zip(hessian_times(vector),
                                                 vector)]
        eigenvalue = sum(float(np.sum(u * p))
                         for u, p in zip(vector, product))
        vector = product
    return eigenvalue + shift
