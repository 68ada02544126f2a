"""One cell of a stacked-cell network, applied to Keras tensors."""

import keras

from nas_tf.ops import conv_ops
from nas_tf.ops import layers as nas_layers

# Ops a family treats as identity for drop path (never dropped).
_IDENTITY_OPS = ("identity", "skip_connect")


def adapt_inputs(states, filters, family, s):
    """Brings the two cell inputs to ``filters`` channels and one size.

    Input 1 (cell k-1) always gets ReLU-1x1-BN (slim ``_cell_base``, DARTS
    ``preprocess1``, ENAS layer base). Input 0 (cell k-2) gets a factorized
    reduction when its size differs; otherwise DARTS always applies
    ReLU-1x1-BN (``preprocess0``) and slim/ENAS only when the channels differ.
    A missing input 0 (slim's first cell) is input 1 unadapted. ENAS first
    calibrates input 1 (see ``Family.calibrate_cur``).
    """
    prev, cur = states
    if prev is None:
        prev = cur
    elif conv_ops.spatial(prev) != conv_ops.spatial(cur):
        prev = conv_ops.factorized_reduce(prev, filters, s)
    elif family.prev_input == "darts" or conv_ops.channels(prev) != filters:
        prev = conv_ops.relu_conv_bn(prev, filters, 1, s)
    if family.calibrate_cur and conv_ops.channels(cur) != filters:
        cur = conv_ops.relu_conv_bn(cur, filters, 1, s)
    cur = conv_ops.relu_conv_bn(cur, filters, 1, s)
    return [prev, cur]


def apply_cell(cell, states, filters, is_reduction, family, cell_ops, s,
               drop_rate, progress):
    """Applies ``cell`` (a ``spaces.cells.Cell``) to ``states``.

    Ops reading an input of a reduction cell run at stride 2. Each node adds
    (or depth-concatenates) its two op outputs; the output concatenates
    ``cell.concat``, with a factorized reduction on any state whose shape
    differs from the last node's (slim ``_combine_unused_states``, ENAS
    ``_fixed_combine``).
    """
    hidden = adapt_inputs(states, filters, family, s)
    for node in cell.nodes:
        outputs = []
        for source, op_name in zip(node.inputs, node.ops):
            stride = 2 if is_reduction and source < 2 else 1
            y = cell_ops.get(op_name)(hidden[source], filters, stride, s)
            if drop_rate > 0 and _droppable(op_name, stride, family):
                y = nas_layers.DropPath(drop_rate, progress)(y)
            outputs.append(y)
        if node.combine == "add":
            hidden.append(keras.layers.Add()(outputs))
        else:
            hidden.append(keras.layers.Concatenate()(outputs))
    final = hidden[-1]
    parts = []
    for index in cell.concat:
        state = hidden[index]
        if conv_ops.spatial(state) != conv_ops.spatial(final):
            state = conv_ops.factorized_reduce(
                state, conv_ops.channels(final), s, relu_first=False)
        elif conv_ops.channels(state) != conv_ops.channels(final):
            state = conv_ops.factorized_reduce(
                state, conv_ops.channels(final), s, stride=1,
                relu_first=False)
        parts.append(state)
    if len(parts) == 1:
        return parts[0]
    return keras.layers.Concatenate()(parts)


def _droppable(op_name, stride, family):
    if op_name not in _IDENTITY_OPS:
        return True
    return stride > 1 and family.drop_reduced_identity
