"""Drawings of architectures in the style of the papers' figures.

Cells (NASNet, ENAS micro, DARTS) are drawn as DAGs: the two inputs on the
left, the nodes in the middle, the output on the right, the op written on
every edge. Layer-wise spaces (NAS-RL, ENAS macro) and recurrent cells are
drawn as a column of layers or nodes with their connections as arcs.
"""

import io

import matplotlib

matplotlib.use("Agg")
from matplotlib import patches  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

_INPUT_COLOR = "#a8d5a2"
_NODE_COLOR = "#a9c8f0"
_OUTPUT_COLOR = "#f4d58d"


def _box(ax, xy, text, color):
    ax.add_patch(patches.FancyBboxPatch(
        (xy[0] - 0.42, xy[1] - 0.22), 0.84, 0.44,
        boxstyle="round,pad=0.04", fc=color, ec="black", lw=1))
    ax.text(xy[0], xy[1], text, ha="center", va="center", fontsize=9)


def _edge(ax, start, end, label=None, curve=0.0):
    ax.annotate("", xy=(end[0] - 0.45, end[1]), xytext=(start[0] + 0.45,
                                                          start[1]),
                arrowprops=dict(arrowstyle="->", lw=1,
                                connectionstyle=f"arc3,rad={curve}"))
    if label:
        mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.12)
        ax.text(mid[0], mid[1], label, ha="center", va="bottom", fontsize=7,
                color="#b03030",
                bbox=dict(fc="white", ec="none", alpha=0.8, pad=0.5))


def draw_cell(ax, cell, title):
    """Draws a ``spaces.cells.Cell`` on ``ax``."""
    n = len(cell.nodes)
    pos = {0: (0.0, 0.0), 1: (0.0, -1.6)}
    for i in range(n):
        pos[i + 2] = (2.0 + 1.6 * i, 0.8 - 1.2 * (i % 3))
    out = (3.2 + 1.6 * n, -0.8)
    _box(ax, pos[0], r"$c_{k-2}$", _INPUT_COLOR)
    _box(ax, pos[1], r"$c_{k-1}$", _INPUT_COLOR)
    for i, node in enumerate(cell.nodes):
        label = str(i) if node.combine == "add" else f"{i} (concat)"
        _box(ax, pos[i + 2], label, _NODE_COLOR)
        for k, (src, op) in enumerate(zip(node.inputs, node.ops)):
            curve = 0.25 if k and node.inputs[0] == src else 0.0
            _edge(ax, pos[src], pos[i + 2], op, curve)
    _box(ax, out, r"$c_{k}$", _OUTPUT_COLOR)
    for state in cell.concat:
        _edge(ax, pos[state], out)
    ax.set_title(title)
    ax.set_xlim(-0.8, out[0] + 0.8)
    ax.set_ylim(-2.4, 1.4)
    ax.axis("off")


def draw_layers(ax, rows, title):
    """Draws a layer-wise net: ``rows`` of (label, list of input rows)."""
    for i, (label, inputs) in enumerate(rows):
        y = -0.8 * i
        _box(ax, (0.0, y), label, _NODE_COLOR if i else _INPUT_COLOR)
        for src in inputs:
            if src == i - 1:
                ax.annotate("", xy=(0, y + 0.24), xytext=(0, y + 0.56),
                            arrowprops=dict(arrowstyle="->", lw=1))
            else:
                span = i - src
                ax.annotate("", xy=(0.45, y), xytext=(0.45, -0.8 * src),
                            arrowprops=dict(
                                arrowstyle="->", lw=0.7, color="#555555",
                                connectionstyle=f"arc3,rad={-0.15 - 0.02 * span}"))
    ax.set_title(title)
    ax.set_xlim(-1.0, 3.0)
    ax.set_ylim(-0.8 * len(rows), 0.6)
    ax.axis("off")


_COMBINE_SIGN = {"add": "+", "elem_mult": "*", "max": "max"}


def _recurrent_rows(decoded):
    """Rows of a recurrent cell: a DAG's nodes or a tree's, then h_t."""
    if hasattr(decoded, "average"):
        rows = [("x_t, h_{t-1}", []), (f"0: {decoded.node0_activation}", [0])]
        rows += [(f"{i}: {act}", [pred + 1])
                 for i, (pred, act) in enumerate(decoded.nodes, start=1)]
        rows.append(("mean -> h_t", [i + 1 for i in decoded.average]))
        return rows
    rows = [("x_t, h_{t-1}", [])]
    inj_comb, inj_act = decoded.inject
    for k, (comb, act) in enumerate(decoded.nodes):
        srcs = ([0] if k < decoded.base else
                [c + 1 for c in decoded.children(k)])
        label = f"{k}: {act}({_COMBINE_SIGN[comb]})"
        if k == decoded.cell_node:
            label += " c_t=pre"
        if k == decoded.inject_node:
            label += f" {inj_act}(.{_COMBINE_SIGN[inj_comb]}c)"
        rows.append((label, srcs))
    return rows


def _layer_rows(space, arch):
    decoded = space.decode(arch)
    if space.family == "recurrent":
        return _recurrent_rows(decoded)
    if space.family == "enas_macro":
        rows = [("stem", [])]
        for k, (op, bits) in enumerate(decoded):
            # Bit i is list element i: the stem (row 0) or layer i-1 (row i).
            skips = [i for i, b in enumerate(bits) if b]
            rows.append((f"{k}: {op}", [k] + skips))
        return rows
    rows = [("image", [])]
    for k, layer in enumerate(decoded):
        srcs = [i + 1 for i in layer["inputs"]] or [0]
        if layer["kind"] == "pool":
            label = f"{k}: max_pool"
        else:
            (fh, fw), (sh, sw) = layer["kernel"], layer["strides"]
            label = f"{k}: {fh}x{fw}/{sh}x{sw} {layer['filters']}"
        rows.append((label, srcs))
    return rows


def draw_architecture(space, arch) -> bytes:
    """Returns a PNG drawing of ``arch`` (an Architecture of ``space``)."""
    decoded = space.decode(arch)
    cells = hasattr(decoded, "normal")
    rows = None if cells else _layer_rows(space, arch)
    if cells:
        width = 3.0 + 1.6 * len(decoded.normal.nodes)
        fig, axes = plt.subplots(2, 1, figsize=(width, 6.5))
    else:
        fig, axes = plt.subplots(figsize=(5.5, 0.5 + 0.45 * len(rows)))
    buffer = io.BytesIO()
    try:  # a figure that fails to draw is closed all the same
        if cells:
            draw_cell(axes[0], decoded.normal, f"{space.name}: normal cell")
            draw_cell(axes[1], decoded.reduce,
                      f"{space.name}: reduction cell")
        else:
            draw_layers(axes, rows, space.name)
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    return buffer.getvalue()
