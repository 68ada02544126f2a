"""The ENAS macro supernet: the search child of melodyguan/enas
``src/cifar10/general_child.py`` (``_model`` and ``_enas_layer`` with
``whole_channels``, as every released macro script sets it).

* Stem: 3x3 conv to ``filters`` -> BN (``stem_conv``).
* Layer k: one branch per op of the space, all on the previous output
  (``_conv_branch``, ``_pool_branch``), and only the one the arc names runs
  (``tf.switch_case``):

  - conv kxk: 1x1 conv -> BN -> ReLU -> kxk conv -> BN -> ReLU;
  - sep conv kxk: the same with a depthwise-separable kxk conv (the search
    child builds true separable convs; only the fixed child turns them into
    ordinary convs, so ``ChildConfig.macro_separable_as_conv`` is not read
    here);
  - avg / max pool: 1x1 conv -> BN -> ReLU -> 3x3 stride-1 pool.

  The kxk BN is the code's ``batch_norm_with_mask`` (whole channels: every
  channel kept), whose epsilon is 1e-3; every other BN uses
  ``config.bn_epsilon`` (``batch_norm``: 1e-5).
* Skips (k > 0): the earlier outputs the layer's bits select are added to
  the op output, then BN; layer 0 has no BN after its op.
* After layers ``pool_layers(L)`` every output so far, stem included, goes
  through its own factorized reduction to the same width: the search child
  never doubles ``out_filters`` (only the fixed child does).
* Top: global average pool -> dropout (training only) -> FC without bias.

Not reproduced: ``_enas_layer`` registers each ``tf.case`` branch as
``lambda: y`` while ``y`` is rebound by the next branch, so every branch
returns the last one built (max pool with six branches) and the sampled op
never changes the network. Here branch j is op j.

Only the sampled branch of a layer runs, its BNs included, so only its
moving statistics move. In a compiled step (``tf.function``) the other
branches' weights get zero gradients, as in the code's TF1 graph; run
eagerly, their gradients are None (the other branches are never called).

Weights follow ``common_ops.create_weight``: He-normal convs and FC, BN
scale 1 and offset 0. BN uses TF's fused kernel (``FusedBatchNorm``), as
``image_ops.batch_norm`` does; its moving variance averages the unbiased
batch variance. Variables are named after their place:
``layer3_sep_conv_5x5/out_conv/depthwise_kernel``, ``layer3_skip_bn/gamma``,
``pool_at_3_from_0/...``, ``stem/...``, ``fc/kernel``.
"""

import dataclasses
import functools

import keras
import tensorflow as tf

from nas_tf import config as config_lib
from nas_tf.builders import enas_macro_network
from nas_tf.builders import recurrent_cells
from nas_tf.ops import conv_ops
from nas_tf.ops import layers as nas_layers
from nas_tf.spaces import enas_macro as enas_macro_space
from nas_tf.spaces import schema

# general_child.py ``_conv_branch``: the kxk conv's BN is
# image_ops.batch_norm_with_mask, whose default epsilon is 1e-3.
MASKED_BN_EPSILON = 1e-3


def _branch(op, shape, filters, settings, kxk_settings):
    """One op of one layer as a small functional model (image ->
    image of ``filters`` channels, same size)."""
    inputs = keras.Input(shape)
    # inp_conv_1 (conv branches) / conv_1 (pool branches).
    x = conv_ops.conv(inputs, filters, 1, settings, name="inp_conv")
    x = conv_ops.relu(conv_ops.bn(x, settings, name="inp_bn"))
    kernel = enas_macro_network.KERNELS.get(op)
    if kernel:
        x = conv_ops.conv(x, filters, kernel, kxk_settings,
                          separable=op.startswith("sep_"), name="out_conv")
        x = conv_ops.relu(conv_ops.bn(x, kxk_settings, name="out_bn"))
    elif op == "max_pool_3x3":
        x = nas_layers.MaxPool3x3InBranch(name="pool")(x)  # fast gradient
    else:  # avg_pool_3x3
        x = conv_ops.pool(x, "avg", 3)
    return keras.Model(inputs, x, name=op)


def _reduction(shape, filters, settings):
    """general_child.py ``_factorized_reduction`` at stride 2 (no ReLU)."""
    inputs = keras.Input(shape)
    return keras.Model(inputs, conv_ops.factorized_reduce(
        inputs, filters, settings, relu_first=False))


def _check_config(config):
    if not isinstance(config, config_lib.ChildConfig):
        raise ValueError(f"enas_macro supernet: config must be a ChildConfig, "
                         f"got {type(config).__name__}")
    wrong = [f"{name}={value!r}" for name, value, allowed in (
        ("stem", config.stem, "cifar"), ("auxiliary", config.auxiliary, False),
        ("drop_path_rate", config.drop_path_rate, 0.0)) if value != allowed]
    if config.stem_filters not in (0, config.filters):
        wrong.append(f"stem_filters={config.stem_filters}")
    if wrong:
        # general_child.py has no ImageNet stem, aux head or drop path (the
        # scripts' --child_use_aux_heads and drop path flags go unread), and
        # its skips add the stem to layer outputs, so both are out_filters.
        raise ValueError(
            f"the enas_macro supernet supports only stem='cifar', "
            f"auxiliary=False, drop_path_rate=0 and stem_filters 0 or "
            f"filters ({config.filters}); got {', '.join(wrong)}")


class EnasMacroSupernet(keras.Model):
    """Every op of every layer of an ``EnasMacroSpace``, sharing weights.

    Called as ``model(images, arc, training=False)`` with ``arc`` int32
    ``[space.num_tokens]`` in decision order (see ``nas_tf.supernets``);
    returns logits. ``training`` is a Python bool: True uses batch
    statistics in BN, updates the moving statistics of the BNs that ran
    (the selected branches' and the always-run ones) and applies dropout.

    Attributes:
      space: The ``EnasMacroSpace``.
      child_config: The ``ChildConfig``.
      reward_training: False: the macro reward is computed with moving
        statistics (general_child.py ``build_valid_rl`` calls ``_model``
        with ``is_training=False``).
      branches: ``branches[k][j]`` is op j of layer k, a Keras model; its
        variables are the ones the arc uses when layer k's op is j.
      op_positions: ``op_positions[k]`` is the index in ``arc`` of layer
        k's op token; its skip bits follow it.
      stem, skip_bns, reductions, fc: The layers every architecture runs:
        ``skip_bns[k - 1]`` is layer k's BN after the skips and
        ``reductions[k]`` the factorized reductions after pool layer k
        (one per output so far, stem first).
    """

    reward_training = False

    def __init__(self, space, config, seed=None, **kwargs):
        kwargs.setdefault("name", "enas_macro_supernet")
        super().__init__(**kwargs)
        if not isinstance(space, enas_macro_space.EnasMacroSpace):
            raise ValueError(f"the enas_macro supernet takes an enas_macro "
                             f"space, got {space!r}")
        _check_config(config)
        self.space = space
        self.child_config = config
        self.seed = seed
        self.op_positions = tuple(
            offset for offset, d in _offsets(space) if d.name.endswith("/op"))
        self._pool_layers = enas_macro_network.pool_layers(space.num_layers)
        self._build_layers(config, seed)

    def _build_layers(self, config, seed):
        # One generator for every initialiser: Keras initialisers given an
        # int seed repeat the same numbers weight after weight.
        init = ("he_normal" if seed is None else keras.initializers.HeNormal(
            keras.random.SeedGenerator(recurrent_cells.derived_seed(seed, 0))))
        # Fused BN: the moving variance averages the unbiased batch
        # variance, as image_ops.batch_norm's fused_batch_norm does.
        settings = conv_ops.OpSettings(config.bn_momentum, config.bn_epsilon,
                                       kernel_initializer=init, fused_bn=True)
        kxk_settings = dataclasses.replace(settings,
                                           bn_epsilon=MASKED_BN_EPSILON)
        filters, size = config.filters, config.image_size
        with keras.name_scope("stem"):
            images = keras.Input((size, size, config.image_channels))
            x = conv_ops.conv(images, filters, 3, settings, name="stem_conv")
            self.stem = keras.Model(
                images, conv_ops.bn(x, settings, name="stem_bn"), name="stem")
        self.branches, self.skip_bns, self.reductions = [], [], {}
        num_outputs = 1
        for k in range(self.space.num_layers):
            shape = (size, size, filters)
            row = []
            for op in self.space.ops:
                with keras.name_scope(f"layer{k}_{op}"):
                    row.append(_branch(op, shape, filters, settings,
                                       kxk_settings))
            self.branches.append(row)
            if k > 0:
                bn = nas_layers.FusedBatchNorm(
                    momentum=config.bn_momentum, epsilon=config.bn_epsilon,
                    name=f"layer{k}_skip_bn")
                bn.build((None,) + shape)
                self.skip_bns.append(bn)
            num_outputs += 1
            if k in self._pool_layers:
                reductions = []
                for i in range(num_outputs):
                    with keras.name_scope(f"pool_at_{k}_from_{i}"):
                        reductions.append(_reduction(shape, filters, settings))
                self.reductions[k] = reductions
                size = -(-size // 2)
        self.dropout = (keras.layers.Dropout(
            config.dropout, seed=recurrent_cells.derived_seed(seed, 1))
            if config.dropout > 0 else None)
        self.fc = keras.layers.Dense(config.num_classes, use_bias=False,
                                     kernel_initializer=init, name="fc")
        self.fc.build((None, filters))
        bounds = []
        for d in self.space.decisions:
            bounds += [len(d.choices)] if d.kind == schema.CHOICE else \
                [2] * d.num_tokens
        self._token_bounds = tf.constant(bounds, tf.int32)
        self.built = True

    def call(self, images, arc, training=False):
        arc = self._checked_arc(arc)
        outputs = [self.stem(images, training=training)]
        for k, position in enumerate(self.op_positions):
            # partial binds the current input now; a lambda over a loop
            # variable would see only its last value (the original's bug).
            x = tf.switch_case(arc[position], [
                functools.partial(branch, outputs[-1], training=training)
                for branch in self.branches[k]])
            if k > 0:
                # Bits are 0 or 1, so bit * out_i is out_i or exactly zero,
                # with gradient bit * upstream: the value and gradient of
                # the code's tf.cond(bit == 1, out_i, zeros) before add_n,
                # with no control flow.
                bits = tf.cast(arc[position + 1:position + 1 + k], x.dtype)
                x = tf.add_n([x] + [bits[i] * outputs[i] for i in range(k)])
                x = self.skip_bns[k - 1](x, training=training)
            outputs.append(x)
            if k in self.reductions:
                outputs = [reduce(o, training=training) for reduce, o
                           in zip(self.reductions[k], outputs)]
        x = tf.reduce_mean(outputs[-1], axis=[1, 2])
        if self.dropout is not None:
            x = self.dropout(x, training=training)
        return self.fc(x)

    def _checked_arc(self, arc):
        arc = tf.convert_to_tensor(arc)
        n = self.space.num_tokens
        if not arc.dtype.is_integer:
            raise ValueError(f"enas_macro supernet: arc must hold integer "
                             f"tokens, got dtype {arc.dtype.name}")
        if not arc.shape.is_compatible_with([n]):
            raise ValueError(
                f"enas_macro supernet: arc must have shape [{n}] "
                f"({self.space.layout_help()}), got {arc.shape}")
        arc = tf.cast(arc, tf.int32)
        if tf.executing_eagerly():
            # Raises a SpaceError naming the bad token.
            self.space.from_tokens(arc.numpy().tolist())
        else:
            tf.debugging.assert_non_negative(
                arc, message="enas_macro arc: tokens must be >= 0")
            tf.debugging.assert_less(
                arc, self._token_bounds,
                message=f"enas_macro arc: op tokens must be < "
                        f"{len(self.space.ops)} and skip bits 0 or 1")
        return arc


def _offsets(space):
    """(index of its first token in the arc, decision) for each decision."""
    offset = 0
    for decision in space.decisions:
        yield offset, decision
        offset += decision.num_tokens


def build(space, config, seed=None) -> EnasMacroSupernet:
    """The supernet of ``space`` (an ``EnasMacroSpace``) with every weight
    created. ``config`` is a ``ChildConfig``: ``filters`` is
    ``--child_out_filters``, ``dropout`` is ``1 - --child_keep_prob``.
    ``seed`` seeds the initialisers and the dropout masks."""
    return EnasMacroSupernet(space, config, seed=seed)
