"""The ENAS macro supernet (melodyguan/enas general_child.py, search mode):
its weights, its wiring, that only the sampled op runs and that one compiled
step serves every architecture."""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf import config as config_lib
from nas_tf import spaces
from nas_tf import supernets
from nas_tf.builders import enas_macro_network
from nas_tf.supernets import enas_macro
from nas_tf.training import momentum_sgd

# Tiny sizes: 8x8 images, 4 filters. Three layers pool after layers 0 and 1.
TINY = config_lib.ChildConfig(image_size=8, filters=4, num_classes=3)


def _tiny(num_layers=3, config=TINY, seed=None):
    space = spaces.get_space("enas_macro", num_layers=num_layers)
    return space, supernets.build_supernet(space, config, seed=seed)


def _images(batch=2, size=8, seed=0):
    return tf.random.stateless_normal((batch, size, size, 3), (seed, 1))


def _arc(space, ops, bits=1):
    """Layer k takes ops[k]; every skip bit is ``bits``."""
    tokens = []
    for k, op in enumerate(ops):
        tokens += [op] + [bits] * k
    return supernets.arc_tensor(space.from_tokens(tokens))


@pytest.mark.slow
def test_search_size_parameters_match_general_child_wiring():
    # scripts/cifar10_macro_search.sh: 12 layers, out_filters 36, 6 branches.
    L, F, C, classes = 12, 36, 3, 10
    space = spaces.get_space("enas_macro", num_layers=L, num_branches=6)
    config = config_lib.ChildConfig(filters=F, num_classes=classes,
                                    image_size=32, image_channels=C)
    model = enas_macro.build(space, config)
    bn = 2 * F  # batch_norm / batch_norm_with_mask: scale and offset
    # general_child.py _conv_branch: inp_conv_1/w then out_conv_k/w (conv)
    # or out_conv_k/w_depth and w_point (separable), each with a BN.
    conv_branch = {k: F * F + bn + k * k * F * F + bn for k in (3, 5)}
    sep_branch = {k: F * F + bn + k * k * F + F * F + bn for k in (3, 5)}
    pool_branch = F * F + bn  # _pool_branch: conv_1/w and its BN
    layer = (conv_branch[3] + sep_branch[3] + conv_branch[5] + sep_branch[5]
             + 2 * pool_branch)
    # _model pool_at_{3,7}: from_i for the stem and every layer output so
    # far (5, then 9); _factorized_reduction: path1_conv/w, path2_conv/w
    # (F -> F/2 each; the search child keeps out_filters), BN.
    assert enas_macro_network.pool_layers(L) == (3, 7)
    reductions = (1 + 4) + (1 + 8)
    expected = (3 * 3 * C * F + bn      # stem_conv/w and its BN
                + L * layer             # layer_k/branch_0..5
                + (L - 1) * bn          # layer_k/skip BN (k > 0)
                + reductions * (2 * F * (F // 2) + bn)
                + F * classes)          # fc/w, no bias
    # Before any call: every weight exists from the constructor.
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == expected == 697_860
    # Moving mean and variance: one pair per BN (10 per layer, as branches
    # 0-3 have two BNs and the pools one).
    bns = 1 + L * 10 + (L - 1) + reductions
    moving = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert moving == bns * 2 * F
    assert model.count_params() == expected + moving
    assert model.reward_training is False and model.space is space


def test_branches_are_general_child_search_branches():
    config = config_lib.ChildConfig(**{**TINY.to_dict(), "bn_epsilon": 2e-5,
                                       "bn_momentum": 0.8})
    space, model = _tiny(num_layers=1, config=config)
    kinds = {}
    for op, branch in zip(space.ops, model.branches[0]):
        layers = {layer.name: layer for layer in branch.layers}
        kxk = layers.get("out_conv")
        kinds[op] = (type(kxk).__name__, kxk.kernel_size) if kxk else None
        # _conv_branch's kxk BN is batch_norm_with_mask (eps 1e-3); the 1x1
        # conv's is batch_norm (the config's).
        assert layers["inp_bn"].epsilon == 2e-5
        assert layers["inp_bn"].momentum == 0.8
        if kxk:
            assert layers["out_bn"].epsilon == 1e-3
            assert layers["out_bn"].momentum == 0.8
    # The search child's separable branches are separable convs.
    assert kinds == {
        "conv_3x3": ("Conv2D", (3, 3)),
        "sep_conv_3x3": ("SeparableConv2D", (3, 3)),
        "conv_5x5": ("Conv2D", (5, 5)),
        "sep_conv_5x5": ("SeparableConv2D", (5, 5)),
        "avg_pool_3x3": None, "max_pool_3x3": None}


def test_every_op_index_gives_a_different_output():
    # general_child.py's tf.case returned the last branch for every index.
    space, model = _tiny()
    images = _images()
    logits = [model(images, _arc(space, [op, 0, 0]), training=False).numpy()
              for op in range(len(space.ops))]
    for i in range(len(logits)):
        for j in range(i):
            assert not np.allclose(logits[i], logits[j], atol=1e-5), (
                f"ops {space.ops[i]} and {space.ops[j]} give the same output")


def _fixed_forward(model, images, tokens):
    """The network of one architecture from the supernet's own layers, with
    the original's Python-side selection of skips: a derived architecture
    evaluated on the shared weights."""
    outputs = [model.stem(images)]
    position = 0
    for k in range(model.space.num_layers):
        op, bits = tokens[position], tokens[position + 1:position + 1 + k]
        position += 1 + k
        x = model.branches[k][op](outputs[-1])
        if k > 0:
            # Bit i names element i of [stem, out_0, ..., out_{k-1}].
            x = model.skip_bns[k - 1](
                x + sum(o for o, bit in zip(outputs, bits) if bit))
        outputs.append(x)
        if k in enas_macro_network.pool_layers(model.space.num_layers):
            outputs = [r(o) for r, o in zip(model.reductions[k], outputs)]
    return model.fc(tf.reduce_mean(outputs[-1], axis=[1, 2]))


def test_a_fixed_arc_evaluates_that_architecture_on_the_shared_weights():
    space, model = _tiny(num_layers=6)  # pools after layers 1 and 3
    images = _images()
    rng = random.Random(3)
    for _ in range(4):
        arch = space.sample(rng)
        got = model(images, supernets.arc_tensor(arch), training=False)
        np.testing.assert_allclose(
            got, _fixed_forward(model, images, arch.tokens), rtol=1e-5,
            atol=1e-5)


def _train_step(model):
    """A compiled step returning the gradients of every trainable weight."""
    variables = model.trainable_variables

    @tf.function
    def step(images, labels, arc):
        with tf.GradientTape() as tape:
            logits = model(images, arc, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(
                    labels, logits, from_logits=True))
        return tape.gradient(loss, variables)

    return variables, step


@pytest.fixture(scope="module")
def one_training_step():
    """Two layers, every op present; layer 0 runs sep_conv_5x5, layer 1
    avg_pool_3x3. Returns (model, ops, gradients by variable id, moving
    means before and after)."""
    keras.utils.set_random_seed(0)
    space, model = _tiny(num_layers=2)
    ops = (3, 4)
    variables, step = _train_step(model)
    moving = [w for w in model.non_trainable_weights
              if "moving_mean" in w.path]
    before = [w.numpy() for w in moving]
    grads = step(_images(batch=4), tf.constant([0, 1, 2, 0]),
                 _arc(space, ops))
    after = {id(w): (b, w.numpy()) for w, b in zip(moving, before)}
    return model, ops, dict(zip(map(id, variables), grads)), after


def _branch_weights(model, ops, trainable):
    """(weight, layer, whether its branch is the layer's sampled op) for
    every branch weight of ``model``."""
    for k, row in enumerate(model.branches):
        for j, branch in enumerate(row):
            weights = (branch.trainable_variables if trainable
                       else branch.non_trainable_weights)
            for w in weights:
                yield w, k, j == ops[k]


def test_idle_branches_get_zero_gradients_and_the_sampled_ones_not(
        one_training_step):
    model, ops, grads, _ = one_training_step
    for w, _, sampled in _branch_weights(model, ops, trainable=True):
        g = grads[id(w)]
        assert g is not None, f"{w.path}: gradient is None"
        if sampled:
            assert np.any(g.numpy() != 0), f"{w.path}: zero gradient"
        else:
            assert not np.any(g.numpy()), f"{w.path}: non-zero"


def test_only_the_sampled_branches_update_their_moving_statistics(
        one_training_step):
    model, ops, _, moving = one_training_step
    for w, k, sampled in _branch_weights(model, ops, trainable=False):
        if "moving_mean" in w.path:
            before, after = moving[id(w)]
            assert sampled == (not np.array_equal(before, after)), (
                f"{w.path}, layer {k} running op {ops[k]}")
    # The BNs every architecture runs (stem, skips, reductions) moved too.
    for layer in [model.stem, *model.skip_bns,
                  *[r for rs in model.reductions.values() for r in rs]]:
        for w in layer.non_trainable_weights:
            if "moving_mean" in w.path:
                before, after = moving[id(w)]
                assert not np.array_equal(before, after), w.path


@pytest.mark.slow
def test_one_trace_serves_200_sampled_architectures():
    space, model = _tiny()
    variables = model.trainable_variables
    optimizer = momentum_sgd.MomentumSgd(variables, 0.05, weight_decay=1e-4)
    strategy = tf.distribute.get_strategy()
    traces = {"train": 0, "eval": 0}

    @tf.function
    def train_step(images, labels, arc):
        traces["train"] += 1
        with tf.GradientTape() as tape:
            logits = model(images, arc, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(
                    labels, logits, from_logits=True))
        optimizer.apply(strategy, tape.gradient(loss, variables))
        return loss

    @tf.function
    def eval_step(images, arc):
        traces["eval"] += 1
        return model(images, arc, training=False)

    rng = random.Random(0)
    images, labels = _images(), tf.constant([0, 2])
    archs = [space.sample(rng) for _ in range(200)]
    assert len({a.tokens for a in archs}) > 150  # of 6^3 * 2^3 = 1728
    for arch in archs:
        arc = supernets.arc_tensor(arch)
        loss = train_step(images, labels, arc)
        logits = eval_step(images, arc)
    assert traces == {"train": 1, "eval": 1}
    assert np.isfinite(loss.numpy()) and np.all(np.isfinite(logits.numpy()))


def test_bad_arcs_are_refused_with_what_is_allowed():
    space, model = _tiny(num_layers=2)
    images = _images()
    with pytest.raises(ValueError, match=r"shape \[3\].*got \(4,\)"):
        model(images, tf.constant([0, 0, 0, 0]))
    with pytest.raises(ValueError, match="integer tokens.*float32"):
        model(images, tf.constant([0.0, 0.0, 0.0]))
    with pytest.raises(spaces.SpaceError, match="7"):
        model(images, tf.constant([7, 0, 0]))

    @tf.function
    def forward(arc):
        return model(images, arc)

    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="op tokens must be < 6 and skip bits 0 or 1"):
        forward(tf.constant([0, 0, 2]))


@pytest.mark.parametrize("change, message", [
    ({"auxiliary": True}, "auxiliary=True"),
    ({"drop_path_rate": 0.4}, "drop_path_rate=0.4"),
    ({"stem": "imagenet"}, "stem='imagenet'"),
    ({"stem_filters": 12}, r"filters \(4\); got stem_filters=12"),
])
def test_settings_general_child_lacks_are_refused(change, message):
    space = spaces.get_space("enas_macro", num_layers=2)
    config = config_lib.ChildConfig(**{**TINY.to_dict(), **change})
    with pytest.raises(ValueError, match=message):
        enas_macro.build(space, config)


def test_other_spaces_and_configs_are_refused():
    space = spaces.get_space("enas_macro", num_layers=2)
    with pytest.raises(ValueError, match="takes an enas_macro space"):
        enas_macro.build(spaces.get_space("nasrl_cnn", num_layers=2), TINY)
    with pytest.raises(ValueError, match="must be a ChildConfig, got LmConfig"):
        enas_macro.build(space, config_lib.LmConfig())


def test_a_seed_makes_the_weights_repeat_and_each_weight_its_own():
    _, first = _tiny(num_layers=2, seed=5)
    _, second = _tiny(num_layers=2, seed=5)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a, b)
    # One initialiser stream, not one repeated draw per weight.
    kernels = [w.numpy() for w in first.weights if w.path.endswith(
        "inp_conv/kernel")]
    assert not np.array_equal(kernels[0], kernels[1])


def test_dropout_before_the_classifier_only_in_training():
    # The same weights (one seed) with and without dropout.
    space, plain = _tiny(num_layers=1, seed=2)
    dropped = enas_macro.build(
        space, config_lib.ChildConfig(**{**TINY.to_dict(), "dropout": 0.5}),
        seed=2)
    images, arc = _images(), _arc(space, [0])
    np.testing.assert_array_equal(dropped(images, arc, training=False),
                                  plain(images, arc, training=False))
    assert not np.allclose(dropped(images, arc, training=True),
                           plain(images, arc, training=True))
