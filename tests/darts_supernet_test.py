"""The DARTS convolutional search network, alpha, the derived genotype and
the follow-ups' mechanisms."""

import numpy as np
import pytest
import tensorflow as tf

from nas_tf import config as config_lib
from nas_tf import spaces
from nas_tf.search import darts_architect
from nas_tf.search import darts_config
from nas_tf.search import darts_run
from nas_tf.search import darts_step
from nas_tf.supernets import darts_alpha
from nas_tf.supernets import darts_cnn
from nas_tf.supernets import darts_ops
from nas_tf.supernets import describe_supernet
from nas_tf.training import image_trainer


def test_search_network_counts_the_originals_weights():
    """quark0/darts's search network at C = 16, 8 cells, 10 classes:
    1,930,618 weights ("param size = 1.930618MB"), 2 x 14 x 8 alphas."""
    sizes = describe_supernet.count(spaces.get_space("darts_cnn"),
                                    config_lib.ChildConfig())
    assert sizes["trainable_params"] == 1930618
    assert sizes["architecture_params"] == 224


def _small(partial_channels=1, auxiliary_skip=False):
    child = config_lib.ChildConfig(num_classes=3, image_size=8, num_cells=3,
                                   filters=8)
    return darts_cnn.build(child, partial_channels, auxiliary_skip, steps=2)


def _mixing(model, rng, **extra):
    return {kind: tf.nn.softmax(tf.constant(rng.standard_normal(
        (model.num_edges, 8)), tf.float32)) for kind in darts_cnn.CELL_KINDS
            } | extra


def test_forward_shapes_and_a_clear_error_for_bad_mixing():
    model = _small()
    rng = np.random.default_rng(0)
    logits = model(tf.zeros([2, 8, 8, 3]), _mixing(model, rng),
                   training=True)
    assert logits.shape == (2, 3)
    with pytest.raises(ValueError, match=r"mixing\['normal'\] has shape "
                       r"\(4, 8\); this network takes \(5, 8\)"):
        model(tf.zeros([2, 8, 8, 3]), {"normal": tf.zeros([4, 8]),
                                       "reduce": tf.zeros([5, 8])})


def test_none_contributes_only_through_the_softmax():
    """The ``none`` column multiplies zeros: its own weight has no
    gradient, while its alpha still has one through the normalisation."""
    model = _small()
    rng = np.random.default_rng(1)
    images = tf.constant(rng.standard_normal((4, 8, 8, 3)), tf.float32)
    weights = {k: tf.Variable(v) for k, v in _mixing(model, rng).items()}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(images, weights, training=True) ** 2)
    grads = tape.gradient(loss, list(weights.values()))
    for g in grads:
        np.testing.assert_array_equal(g.numpy()[:, 0], 0.0)
        assert np.all(np.abs(g.numpy()[:, 1:]).sum(axis=1) > 0)


def test_partial_channels_send_exactly_one_kth_through_the_ops():
    """PC-DARTS: with K = 4 the ops see the first C/4 channels; the rest
    pass unchanged and the shuffle puts the ops' outputs at channels 0, K,
    2K, ..."""
    k, filters = 4, 8
    edge = darts_ops.MixedOp(filters, 1, darts_ops.BnSettings(), k)
    assert all(getattr(op, "stacks", [(None, None, None)])[0][1] is None or
               op.stacks[0][1].shape[-1] == filters // k
               for op in edge.ops if hasattr(op, "stacks"))
    rng = np.random.default_rng(2)
    x = tf.constant(rng.standard_normal((2, 6, 6, filters)), tf.float32)
    w = tf.constant(rng.random(8), tf.float32)
    y = edge(x, w, training=True).numpy()
    off = edge(x, tf.zeros(8), training=True).numpy()
    through = [c for c in range(filters) if c % k == 0]
    bypass = [c for c in range(filters) if c % k]
    assert np.abs(y[..., through] - off[..., through]).max() > 1e-3
    np.testing.assert_array_equal(y[..., bypass], off[..., bypass])
    np.testing.assert_allclose(off[..., through], 0.0)
    # The bypassed channels are x's last (K - 1) C / K, shuffled.
    expected = darts_ops.channel_shuffle(
        tf.concat([tf.zeros_like(x[..., :filters // k]),
                   x[..., filters // k:]], -1), k).numpy()
    np.testing.assert_array_equal(off, expected)


def test_channel_shuffle_matches_the_nchw_definition():
    """PC-DARTS's view(b, g, c/g, h, w) -> transpose(1, 2) -> view."""
    x = np.arange(2 * 3 * 3 * 12, dtype=np.float32).reshape(2, 3, 3, 12)
    nchw = x.transpose(0, 3, 1, 2)
    groups = 4
    b, c, h, w = nchw.shape
    reference = nchw.reshape(b, groups, c // groups, h, w).transpose(
        0, 2, 1, 3, 4).reshape(b, c, h, w).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(
        darts_ops.channel_shuffle(tf.constant(x), groups), reference)


def test_auxiliary_skip_adds_beta_times_the_input_and_decays_to_zero():
    edge = darts_ops.MixedOp(8, 1, darts_ops.BnSettings(),
                             auxiliary_skip=True)
    rng = np.random.default_rng(3)
    x = tf.constant(rng.standard_normal((2, 6, 6, 8)), tf.float32)
    w = tf.nn.softmax(tf.constant(rng.standard_normal(8), tf.float32))
    with_skip = edge(x, w, tf.constant(0.7), training=True)
    without = edge(x, w, tf.constant(0.0), training=True)
    np.testing.assert_allclose(with_skip - without, 0.7 * x.numpy(),
                               atol=1e-5)
    config = darts_config.DartsConfig(auxiliary_skip=True)
    beta = [config.auxiliary_skip_weight(e) for e in range(50)]
    assert beta[0] == 1.0 and beta == sorted(beta, reverse=True)
    # DecayScheduler's linear rule: 1/50 in the last epoch, 0 after it.
    assert beta[-1] == pytest.approx(0.02)
    assert config.auxiliary_skip_weight(50) == 0.0


def test_edge_normalization_is_a_softmax_over_each_nodes_inputs():
    arch = darts_alpha.ArchitectureWeights(
        darts_cnn.CELL_KINDS, 8, [2, 3, 4, 5], seed=0, init_scale=1.0,
        edge_normalization=True)
    edges = arch.mixing()["normal_edges"].numpy()
    assert edges.shape == (14,)
    for start, end in arch.nodes:
        assert edges[start:end].sum() == pytest.approx(1.0)


def test_sdarts_noise_stays_on_the_simplex_within_the_bound():
    rng = np.random.default_rng(4)
    weights = tf.nn.softmax(tf.constant(rng.standard_normal((14, 8))))
    moved = darts_step.perturbed(weights, tf.constant(0.3, tf.float64),
                                 tf.constant([0, 1], tf.int64)).numpy()
    assert np.all(moved >= 0)
    np.testing.assert_allclose(moved.sum(axis=1), 1.0)
    assert np.abs(moved - weights.numpy()).max() > 0.01
    again = darts_step.perturbed(weights, tf.constant(0.3, tf.float64),
                                 tf.constant([0, 1], tf.int64)).numpy()
    np.testing.assert_array_equal(moved, again)
    config = darts_config.DartsConfig(perturbation="random")
    assert config.perturbation_bound(0) == pytest.approx(0.03)
    assert config.perturbation_bound(49) == pytest.approx(0.2946)


def _one_hot_weights(space, arch, noise=0.0, rng=None):
    """Weights whose derived genotype is ``arch``: each kept edge's op
    strongest, dropped edges weaker everywhere but on ``none``."""
    pair = space.decode(arch)
    nodes = darts_alpha.node_edges([i + 2 for i in range(space.steps)])
    weights = {}
    for kind in darts_cnn.CELL_KINDS:
        w = np.zeros((nodes[-1][1], 8))
        w[:, 0] = 1.0  # 'none' never counts
        for (start, _), node in zip(nodes, getattr(pair, kind).nodes):
            for source, op in zip(node.inputs, node.ops):
                w[start + source, darts_ops.PRIMITIVES.index(op)] = 0.9
        if rng is not None:
            w += noise * rng.random(w.shape)
        weights[kind] = w
    return weights


def test_derive_recovers_a_genotype_and_ignores_none():
    space = spaces.get_space("darts_cnn")
    rng = np.random.default_rng(5)
    for name in ("DARTS_V1", "DARTS_V2"):
        arch = spaces.resolve_architecture(space, name)
        weights = _one_hot_weights(space, arch, 0.05, rng)
        derived = darts_alpha.derive_cnn(space, weights)
        assert space.format(derived) == space.format(arch)


def test_derive_rnn_keeps_one_edge_per_node():
    space = spaces.get_space("darts_rnn")
    arch = spaces.resolve_architecture(space, "DARTS_V2_RNN")
    dag = space.decode(arch)
    weights = np.zeros((36, 5))
    weights[:, 0] = 1.0
    offset = 0
    for i, (pred, act) in enumerate(dag.nodes, start=1):
        weights[offset + pred, 1 + space.activations.index(act)] = 0.8
        offset += i
    assert space.format(darts_alpha.derive_rnn(space, weights)) == \
        space.format(arch)


@pytest.mark.parametrize("eigenvalues,largest", [
    ([5.0, 2.0, -1.0, 0.5], 5.0),
    # The largest in magnitude is negative: the largest is still found.
    ([-6.0, 2.0, -1.0, 0.5], 2.0),
])
def test_largest_eigenvalue_of_a_known_quadratic(eigenvalues, largest):
    matrix = np.diag(eigenvalues)

    def gradient(values):
        return [matrix @ values[0]]

    assert darts_architect.dominant_eigenvalue(
        gradient, [np.ones(4)], iterations=80) == pytest.approx(largest,
                                                                rel=1e-5)


def test_eigenvalue_early_stop_follows_robustdarts_rule():
    config = darts_config.DartsConfig(
        train=image_trainer.ImageTrainConfig(epochs=50), hessian_every=2,
        early_stop="eigenvalue")
    flat = [(e, 1.0) for e in range(0, 40, 2)]
    assert darts_run.eigenvalue_stop(flat, config) is None
    # Growth from epoch 30: the average over 5 at the centre epoch e - 4,
    # compared with the one 4 computations (8 epochs) earlier.
    rising = [(e, 1.0 if e < 30 else 10.0) for e in range(0, 40, 2)]
    stops = [darts_run.eigenvalue_stop(rising[:k], config)
             for k in range(1, len(rising) + 1)]
    first = next(i for i, s in enumerate(stops) if s is not None)
    assert rising[first][0] == 30  # the first large value triggers it
    assert stops[first] == 30 - 4 - 8  # the centre of the earlier window
    # Not before es_start_epoch.
    early = [(e, 1.0 if e < 12 else 10.0) for e in range(0, 40, 2)]
    for k in range(1, 9):
        stop = darts_run.eigenvalue_stop(early[:k], config)
        assert stop is None or stop >= 10
