"""Stacked-cell child networks: NASNet, ENAS micro and DARTS.

All three stack normal cells with two reduction cells where the filters
double; they differ in the stem, where the reductions go, how a cell adapts
its two inputs, what fixes shapes at its output, the head, and how drop path
scales with depth. ``FAMILIES`` names those differences; ``build`` does the
rest once.
"""

import dataclasses

import keras

from nas_tf import ops
from nas_tf.builders import cell as cells
from nas_tf.ops import conv_ops


@dataclasses.dataclass(frozen=True)
class Family:
    """What one original does differently.

    Attributes:
      name: "nasnet", "enas" or "darts".
      prev_input: How input 0 (cell k-2) is adapted: "darts" (FR if the size
        differs, else ReLU-1x1-BN always), "slim" (FR if the size differs,
        ReLU-1x1-BN if the channels differ, else as is).
      first_prev_is_none: slim's first cell has no k-2 input and reads its
        k-1 input, unadapted, in its place.
      calibrate_cur: ENAS quirk (micro_child.py ``_maybe_calibrate_size``
        then ``layer base``): input 1 gets a ReLU-1x1-BN to the cell's width
        when its channels differ, and then the layer-base ReLU-1x1-BN, so
        two 1x1 convs in a row.
      drop_path_depth_scaled: NASNet/ENAS scale the drop rate by
        (cell + 1) / total cells; DARTS uses one rate for all cells.
      drop_reduced_identity: DARTS drops the factorized-reduce skip (it is
        not an ``Identity`` module); NASNet/ENAS never drop identity ops.
      relu_before_pool: final ReLU before global pooling (NASNet, ENAS).
      classifier_bias: ENAS's final FC has no bias.
      symmetric_padding: strided ops pad like PyTorch (DARTS); see
        ``conv_ops.OpSettings``.
    """

    name: str
    prev_input: str
    first_prev_is_none: bool
    calibrate_cur: bool
    drop_path_depth_scaled: bool
    drop_reduced_identity: bool
    relu_before_pool: bool
    classifier_bias: bool
    symmetric_padding: bool


FAMILIES = {
    # slim nasnet.py / nasnet_utils.py (and keras applications nasnet.py).
    "nasnet": Family(
        "nasnet", prev_input="slim", first_prev_is_none=True,
        calibrate_cur=False, drop_path_depth_scaled=True,
        drop_reduced_identity=False, relu_before_pool=True,
        classifier_bias=True, symmetric_padding=False),
    # melodyguan/enas micro_child.py, fixed-arc path.
    "enas": Family(
        "enas", prev_input="slim", first_prev_is_none=False,
        calibrate_cur=True, drop_path_depth_scaled=True,
        drop_reduced_identity=False, relu_before_pool=True,
        classifier_bias=False, symmetric_padding=False),
    # quark0/darts cnn/model.py (PyTorch).
    "darts": Family(
        "darts", prev_input="darts", first_prev_is_none=False,
        calibrate_cur=False, drop_path_depth_scaled=False,
        drop_reduced_identity=True, relu_before_pool=False,
        classifier_bias=True, symmetric_padding=True),
}


def reduction_plan(family: str, num_cells: int):
    """Per cell position, whether it is a reduction cell, and the position
    after which the auxiliary head reads."""
    if num_cells < 2 and family != "enas":
        raise ValueError(
            f"num_cells={num_cells}: a {family} network has two reduction "
            f"cells among its cells and needs num_cells >= 2")
    if family == "darts":
        # model.py: layers//3 and 2*layers//3 are reductions; aux after 2nd.
        reductions = (num_cells // 3, 2 * num_cells // 3)
        plan = [i in reductions for i in range(num_cells)]
        return plan, reductions[1]
    if family == "enas":
        # micro_child.py: pool_layers over num_layers + 2 layers; aux head
        # after pool_layers[-1] + 1.
        reductions = (num_cells // 3, 2 * (num_cells // 3) + 1)
        plan = [i in reductions for i in range(num_cells + 2)]
        return plan, reductions[1] + 1
    # slim calc_reduction_layers: a reduction before normal cells
    # int(k/3 * num_cells), k = 1, 2; aux after the normal cell before the 2nd.
    before = {int(k / 3 * num_cells) for k in (1, 2)}
    plan = []
    for i in range(num_cells):
        if i in before:
            plan.append(True)
        plan.append(False)
    aux = [p for p, red in enumerate(plan) if red][-1] - 1
    return plan, aux


def _stem(x, family: Family, config, s):
    """Returns the first cell's inputs (k-2, k-1) after the stem."""
    if config.stem == "cifar":
        x = conv_ops.bn(conv_ops.conv(x, config.stem_width, 3, s), s)
        return (None if family.first_prev_is_none else x), x
    if family.name == "darts":
        # model.py NetworkImageNet: stem0 (two stride-2 convs), stem1.
        c = config.filters
        s0 = conv_ops.bn(conv_ops.conv(x, c // 2, 3, s, stride=2), s)
        s0 = conv_ops.relu_conv_bn(s0, c, 3, s, stride=2)
        s1 = conv_ops.relu_conv_bn(s0, c, 3, s, stride=2)
        return s0, s1
    raise ValueError(
        f"the {family.name} family has no ImageNet stem here; stem must be "
        f"'cifar'")


def build(inputs, pair, family_name: str, config, progress):
    """Builds the network on ``inputs`` for a ``cells.CellPair``.

    Returns:
      (logits, aux_logits or None).
    """
    family = FAMILIES[family_name]
    s = conv_ops.OpSettings(config.bn_momentum, config.bn_epsilon,
                            symmetric_padding=family.symmetric_padding)
    cell_ops = ops.FAMILY_OPS[family_name]
    plan, aux_after = reduction_plan(family_name, config.num_cells)
    filters = config.filters
    total = len(plan)
    if family.name == "nasnet" and config.stem == "imagenet":
        # slim _imagenet_stem / keras NASNet: 3x3 stride-2 VALID conv, then
        # two reduction cells at 1/4 and 1/2 of the filters, counted as cells.
        x = conv_ops.conv(inputs, config.stem_width, 3, s, stride=2,
                          padding="valid")
        states = (None, conv_ops.bn(x, s))
        total += 2
        cell_index = 0
        for scale in (4, 2):
            out = cells.apply_cell(
                pair.reduce, states, filters // scale, True, family, cell_ops,
                s, _drop_rate(config, family, cell_index, total), progress)
            states = (states[1], out)
            cell_index += 1
    else:
        states = _stem(inputs, family, config, s)
        cell_index = 0
    aux_logits = None
    for position, is_reduction in enumerate(plan):
        if is_reduction:
            filters *= 2
        cell = pair.reduce if is_reduction else pair.normal
        out = cells.apply_cell(
            cell, states, filters, is_reduction, family, cell_ops, s,
            _drop_rate(config, family, cell_index, total), progress)
        if is_reduction and config.skip_reduction_layer_input:
            states = (states[0], out)
        else:
            states = (states[1], out)
        cell_index += 1
        if config.auxiliary and position == aux_after:
            imagenet = config.stem == "imagenet" and family.name == "darts"
            aux_logits = conv_ops.auxiliary_head(
                out, config.num_classes, s, pool_stride=2 if imagenet else 3,
                final_bn=not imagenet, enas_style=family.name == "enas")
    x = states[1]
    if family.relu_before_pool:
        x = conv_ops.relu(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout)(x)
    logits = keras.layers.Dense(config.num_classes,
                                use_bias=family.classifier_bias,
                                name="logits")(x)
    return logits, aux_logits


def _drop_rate(config, family: Family, cell_index: int, total: int) -> float:
    if not family.drop_path_depth_scaled:
        return config.drop_path_rate
    return config.drop_path_rate * (cell_index + 1) / total
