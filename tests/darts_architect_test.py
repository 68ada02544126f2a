"""The DARTS alpha gradients: finite-difference second order against the
exact unrolled gradient (double backprop), both against a numerical
derivative of the unrolled validation loss, and first order against
grad_alpha L_val."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf import config as config_lib
from nas_tf.search import darts_architect
from nas_tf.supernets import darts_alpha
from nas_tf.supernets import darts_cnn
from nas_tf.training import momentum_sgd
from nas_tf.training import replica_loop

STEPS = 2  # nodes per cell: 5 edges, enough to mix every op kind


@pytest.fixture(scope="module")
def float64_setup():
    """A 3-cell, C=4 search network in float64 on 8x8 images, with a
    momentum buffer already filled."""
    before = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        keras.utils.set_random_seed(1)
        child = config_lib.ChildConfig(num_classes=3, image_size=8,
                                       num_cells=3, filters=4)
        model = darts_cnn.build(child, steps=STEPS)
        arch = darts_alpha.ArchitectureWeights(
            darts_cnn.CELL_KINDS, 8, [i + 2 for i in range(STEPS)], seed=3,
            init_scale=0.3, dtype=tf.float64)
        optimizer = momentum_sgd.MomentumSgd(
            model.trainable_variables, 0.05, momentum=0.9, nesterov=False,
            weight_decay=3e-4)
        rng = np.random.default_rng(0)
        for a in optimizer.accumulators:
            a.assign(0.1 * rng.standard_normal(a.shape))
        batch = 6

        def loss_fn(logits, labels):
            return replica_loop.cross_entropy(labels, logits, batch)

        architect = darts_architect.Architect(model, arch, optimizer, loss_fn)
        data = [(tf.constant(rng.standard_normal((batch, 8, 8, 3))),
                 tf.constant(rng.integers(0, 3, batch), tf.int32))
                for _ in range(2)]
        yield architect, data
    finally:
        keras.config.set_floatx(before)


def _relative(a, b):
    a = np.concatenate([np.ravel(x) for x in a])
    b = np.concatenate([np.ravel(x) for x in b])
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_finite_difference_matches_exact_unrolled_gradient(float64_setup):
    """With a small radius the central difference converges to the exact
    product (1e-10 relative here at r = 1e-6 / ||v||). At the code's r =
    0.01 / ||v|| it does not on this network, nor at 1e-4 or 1e-5: w +- r v
    crosses ReLU and max-pool kinks, and the difference quotient picks up
    their jumps (0.66 relative at 0.01; 0.3-0.85 on other small networks).
    That is the approximation DARTS makes, not an error of the formula."""
    architect, (train, valid) = float64_setup
    exact, exact_loss, _ = architect.gradient("exact", train, valid)
    first, _, _ = architect.gradient("first", train, valid)
    radius = architect.radius
    try:
        architect.radius = 1e-6
        fd, fd_loss, _ = architect.gradient("second", train, valid)
    finally:
        architect.radius = radius
    assert float(fd_loss) == pytest.approx(float(exact_loss), rel=1e-12)
    error = _relative(fd, exact)
    assert error < 1e-6, error
    # The implicit term is far above that error: the check has teeth.
    assert _relative(first, exact) > 1e4 * error


def test_exact_gradient_equals_numerical_derivative(float64_setup):
    """d/d alpha of L_val(w - xi (m a + grad_w L_train(w, alpha) + wd w),
    alpha) by central differences in a few alpha coordinates."""
    architect, (train, valid) = float64_setup
    exact, _, _ = architect.gradient("exact", train, valid)
    weights, alphas = architect.current()

    def unrolled_loss(alpha_values):
        with tf.GradientTape() as tape:
            tape.watch(weights)
            loss, _ = architect.loss(weights, train, alpha_values)
        moved = architect._virtual_step(weights, tape.gradient(loss, weights))
        return float(architect.loss(moved, valid, alpha_values)[0])

    h = 1e-5
    for kind, (row, col) in ((0, (0, 4)), (0, (3, 1)), (1, (2, 6))):
        plus = [tf.identity(a) for a in alphas]
        minus = [tf.identity(a) for a in alphas]
        delta = np.zeros(alphas[kind].shape)
        delta[row, col] = h
        plus[kind] += delta
        minus[kind] -= delta
        numeric = (unrolled_loss(plus) - unrolled_loss(minus)) / (2 * h)
        assert float(exact[kind][row, col]) == pytest.approx(
            numeric, rel=1e-5, abs=1e-9)


def test_first_order_is_the_validation_gradient(float64_setup):
    architect, (train, valid) = float64_setup
    first, loss, _ = architect.gradient("first", train, valid)
    alphas = architect.architecture.variables_list
    images, labels = valid
    with tf.GradientTape() as tape:
        mixing = architect.architecture.mixing()
        logits = architect.model(images, mixing, training=True)
        direct = architect.loss_fn(logits, labels)
    expected = tape.gradient(direct, alphas)
    assert float(loss) == pytest.approx(float(direct), rel=1e-12)
    for got, want in zip(first, expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)


def test_gradient_rejects_an_unknown_order(float64_setup):
    architect, (train, valid) = float64_setup
    with pytest.raises(ValueError, match="order='third'; allowed"):
        architect.gradient("third", train, valid)


def test_recomputed_cells_give_the_same_gradients_and_moving_averages(
        float64_setup):
    """Cells rerun in the backward pass (``recompute_cells``): the
    second-order alpha gradient, the weights' gradient and the moved
    BatchNorm averages equal those of the network that keeps its
    activations; the exact order refuses the rerun (its double backprop
    through it is not supported in graph mode)."""
    architect, (train, valid) = float64_setup
    weights, alphas = architect.current()
    mixing = architect.architecture.mixing()

    def gradients():
        second, _, _ = architect.gradient("second", train, valid)
        _, _, d_weights, d_mixing, moved = architect.forward_backward(
            weights, mixing, train)
        return second, d_weights, list(d_mixing.values()), moved

    # The pass as the other tests compiled it (or compiles it now), then
    # retraced with the rerun.
    assert not architect.model.recompute_cells
    kept = gradients()
    architect.model.recompute_cells = True
    architect._pass = None
    try:
        rerun = gradients()
        with pytest.raises(ValueError, match="recompute_cells"):
            architect.gradient("exact", train, valid)
    finally:
        architect.model.recompute_cells = False
        architect._pass = None
    assert len(kept[3]) == len(architect.model.non_trainable_variables)
    for want, got in zip(kept, rerun):
        assert _relative(got, want) < 1e-12
    # The pass moved the averages (so the comparison above says something).
    before = [v.numpy() for v in architect.model.non_trainable_variables]
    assert _relative(kept[3], before) > 1e-3
