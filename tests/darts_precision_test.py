"""DARTS's search network and steps under mixed precision and XLA: the
network computes in bfloat16 with float32 variables and statistics and
gives float32's gradients to bfloat16's precision; the loss-scaled passes
return the unscaled gradients exactly; a non-finite step is skipped; the
XLA-compiled passes equal the uncompiled ones."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf import config as config_lib
from nas_tf.data import dominoes
from nas_tf.search import darts_architect
from nas_tf.search import darts_config
from nas_tf.search import darts_run
from nas_tf.search import darts_step
from nas_tf.search import search_config
from nas_tf.supernets import darts_alpha
from nas_tf.supernets import darts_cnn
from nas_tf.training import coupled_adam
from nas_tf.training import image_trainer
from nas_tf.training import momentum_sgd
from nas_tf.training import precision
from nas_tf.training import replica_loop
from nas_tf.training import schedules

STEPS, BATCH = 2, 6  # nodes per cell; images per batch


def _architect(policy="float32", jit_compile=False, loss_scale=None,
               like=None, steps=STEPS):
    """A 3-cell, C=4 search network of ``steps``-node cells on 8x8 images
    built under ``policy``, with the weights and alpha of the architect
    ``like`` if given."""
    keras.utils.set_random_seed(1)
    child = config_lib.ChildConfig(num_classes=3, image_size=8, num_cells=3,
                                   filters=4)
    with precision.dtype_policy(policy):
        model = darts_cnn.build(child, steps=steps)
    arch = darts_alpha.ArchitectureWeights(
        darts_cnn.CELL_KINDS, 8, [i + 2 for i in range(steps)], seed=3,
        init_scale=0.3)
    if like is not None:
        for mine, theirs in zip(model.weights + arch.variables_list,
                                like.model.weights +
                                like.architecture.variables_list):
            mine.assign(theirs)
    optimizer = momentum_sgd.MomentumSgd(
        model.trainable_variables, 0.05, momentum=0.9, nesterov=False,
        weight_decay=3e-4, loss_scale=loss_scale)

    def loss_fn(logits, labels):
        return replica_loop.cross_entropy(labels, logits, BATCH)

    return darts_architect.Architect(model, arch, optimizer, loss_fn,
                                     jit_compile=jit_compile)


@pytest.fixture(scope="module")
def batches():
    rng = np.random.default_rng(0)
    return [(tf.constant(rng.standard_normal((BATCH, 8, 8, 3)), tf.float32),
             tf.constant(rng.integers(0, 3, BATCH), tf.int32))
            for _ in range(2)]


@pytest.fixture(scope="module")
def float32_architect():
    return _architect()


def _pass(architect, batch):
    weights, _ = architect.current()
    mixing = architect.architecture.mixing("softmax")
    return architect.forward_backward(weights, mixing, batch)


def _flat(values):
    return np.concatenate([np.ravel(np.asarray(v, np.float64))
                           for v in tf.nest.flatten(values)])


def _cosine(a, b):
    a, b = _flat(a), _flat(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_bfloat16_network_keeps_float32_state_and_float32_gradients(
        float32_architect, batches):
    mixed = _architect("mixed_bfloat16", like=float32_architect)
    model = mixed.model
    assert {v.dtype for v in model.weights} == {"float32"}
    assert "bfloat16" in {layer.compute_dtype
                          for layer in model._flatten_layers()}
    assert keras.config.dtype_policy().name == "float32"
    loss32, out32, dw32, dmix32, moved32 = _pass(float32_architect,
                                                 batches[0])
    loss16, out16, dw16, dmix16, moved16 = _pass(mixed, batches[0])
    assert out16.dtype == tf.bfloat16 and loss16.dtype == tf.float32
    assert {g.dtype for g in dw16 + list(dmix16.values())} == {tf.float32}
    assert {v.dtype for v in moved16} == {tf.float32}
    # bfloat16 keeps 8 significant bits (0.4% per rounding), and the
    # gradients sum hundreds of rounded products: measured, cosines of
    # 0.987 for the weights' gradient and 0.97-0.98 for the mixing's
    # (float16, with 11 bits: 0.9996 and 0.999). A float32 step done in
    # 16 bits by mistake, or mixing weights lost, gives far less.
    assert float(loss16) == pytest.approx(float(loss32), rel=1e-2)
    assert _cosine(dw16, dw32) > 0.98
    for kind in darts_cnn.CELL_KINDS:
        assert _cosine(dmix16[kind], dmix32[kind]) > 0.95, kind
    np.testing.assert_allclose(_flat(moved16), _flat(moved32), atol=2e-2)
    grads = {(order, policy): architect.gradient(order, *batches)[0]
             for order in ("first", "second", "exact")
             for policy, architect in (("16", mixed),
                                       ("32", float32_architect))}
    # Measured: 0.9925 at first order, 0.953 for the exact unrolled one.
    assert _cosine(grads["first", "16"], grads["first", "32"]) > 0.98
    assert _cosine(grads["exact", "16"], grads["exact", "32"]) > 0.93
    # The finite difference divides a difference of two passes by 2r, r =
    # 0.01 / ||v||, and bfloat16 rounds that difference: it moved 0.75 in
    # cosine from float32's (float16: 0.96). But float32's is itself a
    # rough estimate of the exact unrolled gradient (0.66 here; ReLU and
    # max-pool kinks between w - rv and w + rv), and bfloat16's is about
    # as far from it (0.61).
    exact = grads["exact", "32"]
    assert (_cosine(grads["second", "16"], exact) >
            _cosine(grads["second", "32"], exact) - 0.1)


def test_loss_scaled_passes_return_the_unscaled_gradients(
        float32_architect, batches):
    """A power-of-two scale is exact in float32: every gradient, of the
    network pass and of the exact order's double backprop, is the
    unscaled one to the last bit."""
    scaled = _architect(loss_scale=precision.DynamicLossScale(2.0 ** 12),
                        like=float32_architect)
    for got, want in zip(_pass(scaled, batches[0]),
                         _pass(float32_architect, batches[0])):
        np.testing.assert_array_equal(_flat(got), _flat(want))
    for order in ("first", "second", "exact"):
        got = scaled.gradient(order, *batches)[0]
        want = float32_architect.gradient(order, *batches)[0]
        np.testing.assert_allclose(_flat(got), _flat(want), rtol=1e-6,
                                   atol=1e-9)


def test_a_non_finite_step_is_skipped_and_halves_the_scale(
        float32_architect, batches):
    scale = precision.DynamicLossScale(2.0 ** 12, growth_steps=10)
    architect = _architect(loss_scale=scale, like=float32_architect)
    arch_optimizer = coupled_adam.CoupledAdam(
        architect.architecture.variables_list, 0.01)
    step = darts_step.SearchStep(
        tf.distribute.get_strategy(), architect, architect.optimizer,
        arch_optimizer, "first")
    weights = (architect.model.trainable_weights +
               architect.optimizer.accumulators)
    alphas = architect.architecture.variables_list
    before = [v.numpy() for v in weights + alphas]
    train, valid = batches
    poisoned = (tf.tensor_scatter_nd_update(
        train[0], [[0, 0, 0, 0]], [np.inf]), train[1])
    step(poisoned, valid, 0, {})
    # At first order the alpha step reads only the finite validation
    # batch: it moved alpha (one finite step); the weight step's gradients
    # were not finite: it left the weights and their momentum and halved
    # the scale.
    assert float(scale.scale) == 2.0 ** 11
    assert int(scale.finite_steps) == 0
    moved = [not np.array_equal(b, v.numpy())
             for b, v in zip(before, weights + alphas)]
    assert not any(moved[:len(weights)])
    assert all(moved[len(weights):])
    step(train, valid, 1, {})
    assert float(scale.scale) == 2.0 ** 11
    assert int(scale.finite_steps) == 2
    assert all(np.all(np.isfinite(v.numpy())) for v in weights)
    assert not np.array_equal(before[0], weights[0].numpy())


def test_xla_compiled_passes_equal_the_uncompiled_ones(batches):
    # One node per cell: XLA compiles a smaller network sooner.
    uncompiled = _architect(steps=1)
    compiled = _architect(jit_compile=True, like=uncompiled, steps=1)
    for got, want in zip(_pass(compiled, batches[0]),
                         _pass(uncompiled, batches[0])):
        np.testing.assert_allclose(_flat(got), _flat(want), rtol=1e-4,
                                   atol=1e-6)


def _search(**changes):
    return search_config.SearchConfig(**{
        "space": "darts_cnn", "space_params": {"steps": 2},
        "strategy": "darts", "dataset": "dominoes", **changes})


def test_xla_refuses_the_exact_order_and_replicas_but_not_the_rest():
    xla = precision.PrecisionConfig(jit_compile=True)
    with pytest.raises(ValueError, match="order='exact'"):
        search_config.check_search_config(_search(
            precision=xla, darts=darts_config.DartsConfig(order="exact")))
    with pytest.raises(ValueError, match="one_device"):
        search_config.check_search_config(_search(precision=xla,
                                                  distribute="mirrored"))
    for policy in precision.POLICIES:
        search_config.check_search_config(_search(
            precision=precision.PrecisionConfig(policy, jit_compile=True),
            darts=darts_config.DartsConfig(order="second")))
    search_config.check_search_config(_search(
        precision=precision.PrecisionConfig("mixed_bfloat16"),
        distribute="mirrored", darts=darts_config.DartsConfig(
            order="exact")))


@pytest.mark.slow
def test_a_search_runs_in_bfloat16_with_xla(tmp_path):
    data = dominoes.generate_dominoes(seed=0, num_train=24, num_valid=8,
                                      num_test=4)
    train = image_trainer.ImageTrainConfig(
        epochs=1, batch_size=8, steps_per_epoch=2, cutout=0,
        schedule=schedules.LrSchedule(kind="constant", learning_rate=0.05))
    config = _search(
        space_params={"steps": 1}, seed=3,
        child=config_lib.ChildConfig(num_cells=3, filters=4),
        darts=darts_config.DartsConfig(train=train, hessian_every=0,
                                       arch_learning_rate=0.01),
        precision=precision.PrecisionConfig("mixed_bfloat16",
                                            jit_compile=True))
    lines = []
    searcher = darts_run.DartsRun(config, str(tmp_path), data, lines.append)
    result = searcher.run()
    assert keras.config.dtype_policy().name == "float32"
    supernet = searcher.supernet
    assert "bfloat16" in {layer.compute_dtype
                          for layer in supernet._flatten_layers()}
    assert {v.dtype for v in supernet.weights} == {"float32"}
    assert {v.dtype for v in searcher.architecture.variables_list} == {
        tf.float32}
    assert searcher.architect._pass._jit_compile
    alphas = [v.numpy() for v in searcher.architecture.variables_list]
    initial = darts_config.DartsConfig().init_scale
    assert all(np.abs(a).max() > 10 * initial for a in alphas)  # moved
    record = searcher.history.records[-1]
    assert np.isfinite(record["metrics"]["train_loss"])
    assert result.best_tokens.startswith("Genotype(normal=[")
