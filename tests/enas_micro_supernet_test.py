"""The ENAS micro supernet (micro_child.py in search mode): one compiled
step for every architecture, its parameter count from the original's
wiring, op and input selection, the cell output and idle-weight
gradients."""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf import config
from nas_tf import spaces
from nas_tf import supernets
from nas_tf.supernets import enas_micro
from nas_tf.supernets import enas_micro_cell
from nas_tf.training import image_trainer
from nas_tf.training import momentum_sgd

# Op ids of micro_child.py _enas_cell.
SEP3, SEP5, AVG, MAX, IDENTITY = range(5)

# Three layers (num_cells=1: pool_layers [0, 1], so two reduction layers
# and one normal layer, the aux head on the last), tiny sizes.
TINY = dict(num_cells=1, filters=4, image_size=8, auxiliary=True)


def _tiny(num_nodes=2, seed=0, **overrides):
    space = spaces.get_space("enas_micro", num_nodes=num_nodes)
    cfg = config.ChildConfig(**{**TINY, **overrides})
    return space, enas_micro.build(space, cfg, seed=seed)


def _images(batch=2, size=8, seed=0):
    return tf.random.stateless_normal((batch, size, size, 3), (seed, 1))


def _arc(normal, reduce):
    """Tokens in decision order from (index1, index2, op1, op2) per node."""
    return tf.constant([t for node in normal + reduce for t in node],
                       tf.int32)


def _loss(outputs, labels):
    """Cross-entropy of the logits plus 0.4 x the auxiliary head's
    (micro_child.py _build_train)."""
    logits, aux_logits = outputs

    def term(x):
        return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            labels, x, from_logits=True))
    return term(logits) + 0.4 * term(aux_logits)


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def test_search_size_parameter_count_matches_micro_child_wiring():
    # scripts/cifar10_micro_search.sh: --child_num_layers=6
    # --child_out_filters=20 --child_num_cells=5 --child_use_aux_heads.
    space = spaces.get_space("enas_micro", num_nodes=5)
    cfg = config.ChildConfig(num_cells=6, filters=20, auxiliary=True)
    model = enas_micro.build(space, cfg)
    B, F, classes, image_channels = 5, 20, 10, 3

    def bn(c):  # image_ops.batch_norm: offset, scale (moving stats untrained)
        return 2 * c

    def calibrate(c_in, c_out):  # _maybe_calibrate_size pool_x|pool_y/w + bn
        return c_in * c_out + bn(c_out)

    def factorized_reduction(c_in, c_out):  # path1_conv/w, path2_conv/w + bn
        return 2 * c_in * (c_out // 2) + bn(c_out)

    def enas_layer(f):
        total = 0
        for cell_id in range(B):
            inputs = cell_id + 2  # _enas_conv num_possible_inputs
            for _side in ("x", "y"):  # _enas_layer's x and y scopes
                for k in (3, 5):  # _enas_cell: conv_3x3, conv_5x5
                    for _stack in range(2):  # _enas_conv stack_conv=2
                        total += inputs * (
                            k * k * f  # stack_i/w_depth [inputs, k*k*f]
                            + f * f  # stack_i/w_point [inputs, f*f]
                            + 2 * f)  # stack_i/bn offset, scale [inputs, f]
        # final_conv/w [B + 2, f*f] + batch_norm; _enas_cell's pool and x
        # 1x1 convs are never built (channels already match).
        return total + (B + 2) * f * f + bn(f)

    # pool_layers = [6 // 3, 2 * (6 // 3) + 1] = [2, 5]; out_filters
    # doubles there: F for layers 0-1, 2F for 2-4, 4F for 5-7.
    expected = (
        3 * 3 * image_channels * 3 * F + bn(3 * F)  # stem_conv/w + bn
        + 2 * calibrate(3 * F, F)  # layer 0: pool_x, pool_y on the stem
        + enas_layer(F)
        + calibrate(3 * F, F)  # layer 1: pool_x on the stem
        + enas_layer(F)
        + factorized_reduction(F, 2 * F)  # layer 2: _model's reduction
        + factorized_reduction(F, 2 * F)  # layer 2: pool_x, twice the size
        + 3 * enas_layer(2 * F)  # layers 2, 3, 4
        + 2 * factorized_reduction(2 * F, 4 * F)  # layer 5, as layer 2
        + 3 * enas_layer(4 * F)  # layers 5, 6, 7
        + 4 * F * classes)  # fc/w (no bias)
    # aux_head after layer 6 on 8x8: 5x5/3 VALID pool leaves 2x2.
    aux_hw = (8 - 5) // 3 + 1
    expected_aux = (4 * F * 128 + bn(128)  # aux_head/proj/w + bn
                    + aux_hw * aux_hw * 128 * 768 + bn(768)  # avg_pool/w
                    + 768 * classes)  # aux_head/fc/w
    assert (expected, expected_aux) == (5_373_140, 412_928)

    aux = [v for layer in model.layers if layer.name.startswith("aux_")
           for v in layer.trainable_variables]
    total = _count(model.trainable_variables)  # before any call
    assert _count(aux) == expected_aux
    assert total - _count(aux) == expected
    trained = image_trainer.trained_variables(
        model, image_trainer.ImageTrainConfig(train_aux_head=False))
    assert _count(trained) == expected


def test_cell_output_is_the_unread_states_through_the_sliced_1x1_conv():
    # Weightless ops only, so the nodes are checked by hand:
    #   node2 = s0 + avg(s0), node3 = max(node2) + s0, node4 = avg(s0) + node2
    # Read: 0 and 2; the output concatenates states 1, 3 and 4.
    f = 3
    cell = enas_micro_cell.SharedCell(3, f, 1e-5,
                                      keras.random.SeedGenerator(0))
    cell.build()
    s0, s1 = (tf.random.stateless_normal((2, 4, 4, f), (i, 7))
              for i in range(2))
    cell_arc = tf.constant([[0, 0, IDENTITY, AVG], [2, 0, MAX, IDENTITY],
                            [0, 2, AVG, IDENTITY]], tf.int32)
    out = cell([s0, s1], cell_arc).numpy()

    def avg(x):
        return tf.nn.avg_pool2d(x, 3, 1, "SAME")

    def max_(x):
        return tf.nn.max_pool2d(x, 3, 1, "SAME")

    node2 = s0 + avg(s0)
    node3 = max_(node2) + s0
    node4 = avg(s0) + node2
    w = cell.out_kernel.numpy()  # [states, f, f]: final_conv/w slices
    y = sum(np.maximum(state.numpy(), 0) @ w[i]
            for i, state in ((1, s1), (3, node3), (4, node4)))
    mean, var = y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))
    expected = (y - mean) / np.sqrt(var + 1e-5)  # BN on batch statistics
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_every_op_gives_a_different_output():
    space, model = _tiny()
    images = _images()
    reduce = [(1, 0, SEP3, MAX), (2, 1, AVG, SEP3)]
    outputs = []
    for op in range(5):
        # Normal node3 is read by no node, so it reaches the output.
        normal = [(0, 1, SEP3, AVG), (2, 0, op, IDENTITY)]
        outputs.append(model(images, _arc(normal, reduce))[0].numpy())
    for a in range(5):
        for b in range(a):
            assert not np.allclose(outputs[a], outputs[b], atol=1e-5), (a, b)


def _check_gradients(cell, cell_arc, grads, idle_is_none=False):
    """The sep-conv weights of the ops ``cell_arc`` (rows of index1, index2,
    op1, op2) picks get a non-zero gradient in the chosen input's slice and
    zero elsewhere; the other ops' weights get zero (or, run eagerly, no
    gradient); the output conv's slices of the read states get zero."""
    read = set()
    for j, (index1, index2, op1, op2) in enumerate(cell_arc):
        node = j + 2
        for side, index, op in (("x", index1, op1), ("y", index2, op2)):
            read.add(index)
            for k_op, k in ((SEP3, 3), (SEP5, 5)):
                for stack in cell.sep[(node, side, k)]:
                    for name, w in stack.items():
                        where = (cell.name, node, side, k, name)
                        g = grads[id(w)]
                        if op != k_op and idle_is_none:
                            assert g is None, where
                            continue
                        g = tf.convert_to_tensor(g).numpy()
                        if op == k_op:
                            assert np.any(g[index] != 0), where
                            g = np.delete(g, index, axis=0)
                        assert not np.any(g), where
    out = tf.convert_to_tensor(grads[id(cell.out_kernel)]).numpy()
    for state in range(len(cell_arc) + 2):
        assert np.any(out[state] != 0) == (state not in read), (cell.name,
                                                                state)


def test_idle_weights_get_zero_gradients_and_used_ones_do_not():
    cell = enas_micro_cell.SharedCell(1, 4, 1e-5,
                                      keras.random.SeedGenerator(0))
    cell.build()
    s0, s1 = (tf.random.stateless_normal((2, 4, 4, 4), (i, 3))
              for i in range(2))
    target = tf.random.stateless_normal((2, 4, 4, 4), (9, 3))
    cell_arc = [(1, 0, SEP3, SEP5)]

    @tf.function  # as training runs (eagerly the idle weights get None)
    def gradients(arc):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum((cell([s0, s1], arc) - target) ** 2)
        return tape.gradient(loss, cell.trainable_variables)

    grads = gradients(tf.constant(cell_arc, tf.int32))
    assert all(g is not None for g in grads)  # one tape.gradient call
    _check_gradients(cell, cell_arc,
                     {id(v): g for v, g in zip(cell.trainable_variables,
                                               grads)})


def test_each_layer_runs_its_cell_type_arc():
    space, model = _tiny()
    normal = [(0, 1, SEP3, SEP5), (2, 0, AVG, SEP3)]
    reduce = [(1, 1, SEP5, MAX), (0, 2, SEP3, IDENTITY)]
    with tf.GradientTape() as tape:
        loss = _loss(model(_images(), _arc(normal, reduce), training=True),
                     tf.constant([1, 7]))
    grads = dict(zip(map(id, model.trainable_variables),
                     tape.gradient(loss, model.trainable_variables)))
    cells = [layer for layer in model.layers
             if isinstance(layer, enas_micro_cell.SharedCell)]
    # Layers 0 and 1 are reductions, layer 2 normal (pool_layers [0, 1]).
    for cell, cell_arc in zip(cells, (reduce, reduce, normal)):
        _check_gradients(cell, cell_arc, grads, idle_is_none=True)


def test_training_switches_only_the_dropout():
    space, model = _tiny(dropout=0.0)
    arc = supernets.arc_tensor(space.sample(random.Random(3)))
    images = _images()
    assert model.reward_training is True
    # BN on batch statistics either way: moving averages would differ.
    np.testing.assert_allclose(model(images, arc, training=False)[0],
                               model(images, arc, training=True)[0],
                               rtol=1e-5, atol=1e-5)
    space, model = _tiny(dropout=0.5)
    evaluate = model(images, arc, training=False)[0]
    np.testing.assert_allclose(evaluate, model(images, arc)[0])
    assert not np.allclose(evaluate, model(images, arc, training=True)[0])


def test_seed_fixes_the_weights():
    def weights(seed):
        return [v.numpy() for v in _tiny(seed=seed)[1].trainable_variables]

    first, again, other = weights(5), weights(5), weights(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_bad_arcs_and_configs_are_named():
    space, model = _tiny()
    images = _images()
    with pytest.raises(ValueError, match=r"shape \[16\].*got \(15,\)"):
        model(images, tf.zeros([15], tf.int32))
    with pytest.raises(ValueError, match="integer.*float32"):
        model(images, tf.zeros([16], tf.float32))
    tokens = [0] * 16
    tokens[6] = 9  # normal/node3/op1
    with pytest.raises(spaces.SpaceError,
                       match=r"normal/node3/op1\) = 9.*0=sep_conv_3x3"):
        model(images, tf.constant(tokens))
    with pytest.raises(ValueError, match="stem='imagenet'.*allowed: 'cifar'"):
        enas_micro.build(space, config.ChildConfig(stem="imagenet"))
    with pytest.raises(ValueError, match="enas_micro space, got 'darts_cnn'"):
        enas_micro.build(spaces.get_space("darts_cnn"), config.ChildConfig())


def test_build_supernet_finds_the_micro_supernet():
    space = spaces.get_space("enas_micro", num_nodes=1)
    model = supernets.build_supernet(
        space, config.ChildConfig(num_cells=1, filters=2, image_size=4))
    assert isinstance(model, enas_micro.EnasMicroSupernet)


@pytest.mark.slow
def test_one_trace_serves_200_sampled_architectures():
    # One node per cell keeps the compile short; what would retrace (an
    # arc value reaching Python) does not depend on the number of nodes.
    space, model = _tiny(num_nodes=1)
    strategy = tf.distribute.get_strategy()
    variables = model.trainable_variables
    optimizer = momentum_sgd.MomentumSgd(variables, 0.01, weight_decay=1e-4)
    traces = {"train": 0, "evaluate": 0}
    images, labels = _images(batch=4), tf.constant([0, 3, 5, 9])

    @tf.function
    def train_step(images, labels, arc):
        traces["train"] += 1
        with tf.GradientTape() as tape:
            loss = _loss(model(images, arc, training=True), labels)
        optimizer.apply(strategy, tape.gradient(loss, variables))
        return loss

    @tf.function
    def evaluate_step(images, arc):
        traces["evaluate"] += 1
        logits, _ = model(images, arc, training=model.reward_training)
        return tf.argmax(logits, -1)

    rng = random.Random(0)
    arcs = [space.sample(rng).tokens for _ in range(200)]
    assert len(set(arcs)) > 190
    before = [v.numpy() for v in variables]
    for tokens in arcs:
        arc = tf.constant(tokens, tf.int32)
        loss = train_step(images, labels, arc)
        evaluate_step(images, arc)
    assert np.isfinite(float(loss))
    assert traces == {"train": 1, "evaluate": 1}
    assert any(not np.array_equal(b, v.numpy())
               for b, v in zip(before, variables))
