"""Stacked-cell networks: reduction and auxiliary-head placement, drop-path
rates and which ops drop, as each original does them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf import config
from nas_tf import ops
from nas_tf import spaces
from nas_tf.builders import build_child
from nas_tf.builders import cell_network
from nas_tf.ops import conv_ops
from nas_tf.ops import layers as nas_layers


def test_reduction_and_aux_positions_of_the_final_networks():
    # DARTS model.py, 20 cells: reductions at 20//3 and 2*20//3, aux after
    # the second.
    plan, aux = cell_network.reduction_plan("darts", 20)
    assert [i for i, r in enumerate(plan) if r] == [6, 13] and aux == 13
    # slim, 18 normal cells: reductions before normal cells 6 and 12; aux
    # on normal cell 11, the one before the second reduction.
    plan, aux = cell_network.reduction_plan("nasnet", 18)
    assert len(plan) == 20
    assert [i for i, r in enumerate(plan) if r] == [6, 13] and aux == 12
    # ENAS micro_child.py, 15 layers: pool_layers [5, 11] of 17; aux on 12.
    plan, aux = cell_network.reduction_plan("enas", 15)
    assert len(plan) == 17
    assert [i for i, r in enumerate(plan) if r] == [5, 11] and aux == 12


def test_one_cell_is_rejected_where_the_layout_needs_two():
    for family in ("darts", "nasnet"):
        with pytest.raises(ValueError, match="num_cells=1"):
            cell_network.reduction_plan(family, 1)


def _drop_paths(space_name, arch_name, rate, num_cells=3, **child):
    space = spaces.get_space(space_name)
    arch = spaces.resolve_architecture(space, arch_name)
    model = build_child(space, arch, config.ChildConfig(
        num_cells=num_cells, filters=8, image_size=16, drop_path_rate=rate,
        **child))
    return [l.rate for l in model.layers
            if isinstance(l, nas_layers.DropPath)]


def test_nasnet_drop_rate_grows_with_depth_and_spares_identities():
    rates = _drop_paths("nasnet", "NASNet-A", 0.5, stem_filters=12)
    # Cells N R N R N: NASNet-A's normal cell has 2 identities among its 10
    # ops, its reduction cell 1.
    per_cell = [8, 9, 8, 9, 8]
    expected = [0.5 * (i + 1) / 5 for i, n in enumerate(per_cell)
                for _ in range(n)]
    assert sorted(rates) == pytest.approx(sorted(expected))


def test_enas_drop_rate_grows_with_depth_and_spares_identities():
    rates = _drop_paths("enas_micro", "ENAS_micro", 0.4)
    # Layers N R N R N; ENAS_micro: 2 identities in the normal cell, 1 (a
    # strided one, still spared) in the reduction cell.
    per_cell = [8, 9, 8, 9, 8]
    expected = [0.4 * (i + 1) / 5 for i, n in enumerate(per_cell)
                for _ in range(n)]
    assert sorted(rates) == pytest.approx(sorted(expected))


def test_darts_drops_every_op_but_identity_with_one_rate():
    # DARTS_V2, 5 cells N R N R N: 6 of 8 normal ops are not skips; all 5
    # non-skip reduce ops drop. A strided skip_connect (a factorized
    # reduction, not an Identity module) drops too.
    rates = _drop_paths("darts_cnn", "DARTS_V2", 0.2, num_cells=5)
    assert rates == [0.2] * (3 * 6 + 2 * 5)
    text = spaces.PUBLISHED["DARTS_V2"].text.replace(
        "reduce=[('max_pool_3x3', 0)", "reduce=[('skip_connect', 0)")
    assert len(_drop_paths("darts_cnn", text, 0.2, num_cells=5)) == (
        3 * 6 + 2 * 5)


def _strided_identity(registry, name, x):
    inputs = keras.Input(x.shape[1:])
    out = registry.get(name)(inputs, x.shape[-1], 2, conv_ops.OpSettings())
    return keras.Model(inputs, out)(x, training=False).numpy()


def test_strided_identity_relu_enas_none_darts_first():
    # On an all-negative input a leading ReLU zeroes everything.
    x = -tf.random.uniform((1, 8, 8, 4), 0.5, 1.5)
    enas = _strided_identity(ops.FAMILY_OPS["enas"], "identity", x)
    darts = _strided_identity(ops.FAMILY_OPS["darts"], "skip_connect", x)
    assert enas.shape == darts.shape == (1, 4, 4, 4)
    assert np.abs(enas).max() > 0.1
    assert np.abs(darts).max() < 1e-3


def test_layer_wise_networks_reject_cell_only_settings():
    space = spaces.get_space("enas_macro", num_layers=3)
    arch = space.sample(0)
    with pytest.raises(ValueError, match="auxiliary=True"):
        build_child(space, arch, config.ChildConfig(auxiliary=True))
    with pytest.raises(ValueError, match="stem='imagenet'"):
        build_child(space, arch, config.ChildConfig(stem="imagenet"))
