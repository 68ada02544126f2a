"""Drawings of architectures in the style of the papers' figures.

Cells (NASNet, ENAS micro, DARTS) and recurrent cells (the NAS-RL tree, the
ENAS and DARTS highway DAGs) flow left to right: the inputs on the left, the
nodes, the output on the right, the op written on every edge (the tree
cell's ops belong to its nodes and are written in them). Layer-wise networks
(NAS-RL, ENAS macro) are a column of layers, input on top, as in the papers'
figures, with arcs for the connections that skip layers. Every drawing
carries a legend of its notation.

A drawing is data first (``diagram``: boxes, edges and legend lines), then a
layout in pixels (``layout_panel``), then a PNG rendered on a
``matplotlib.figure.Figure`` with the Agg canvas: pyplot, the global backend
and rcParams are never touched, so drawing from a notebook changes nothing
of the notebook's matplotlib.
"""

import dataclasses
import io
import math
from typing import Dict, List, Optional, Tuple

import numpy as np
from matplotlib import patches
from matplotlib import path as mpath
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nas_tf.spaces import cells
from nas_tf.spaces import nasrl_rnn
from nas_tf.spaces import recurrent_dag

INPUT, NODE, OUTPUT = "input", "node", "output"
# Panels either flow left to right (ranks are columns) or down (one box per
# rank, a column of layers).
RIGHT, DOWN = "right", "down"


@dataclasses.dataclass(frozen=True)
class Box:
    """A drawn state: ``key`` names it in edges, ``text`` is written in it
    (matplotlib mathtext allowed), ``rank`` is its column (flow right) or
    row (flow down)."""

    key: str
    text: str
    kind: str
    rank: int


@dataclasses.dataclass(frozen=True)
class Edge:
    """An arrow from box ``source`` to box ``target``, with an op label."""

    source: str
    target: str
    label: str = ""


@dataclasses.dataclass(frozen=True)
class Panel:
    """One drawing: boxes, edges and how they flow. Flowing right, a column
    lists its boxes top to bottom in the order of their sources' heights
    (fewer crossings), or in their order here if ``keep_order``."""

    title: str
    boxes: Tuple[Box, ...]
    edges: Tuple[Edge, ...]
    flow: str
    keep_order: bool = False


@dataclasses.dataclass(frozen=True)
class Diagram:
    """What a drawing shows: its panels and the legend of its notation."""

    panels: Tuple[Panel, ...]
    legend: Tuple[str, ...]


# -- diagrams: what is drawn --------------------------------------------------

CELL_INPUTS = ("c_{k-2}", "c_{k-1}")
CELL_OUTPUT = "c_{k}"


def _math(key: str) -> str:
    return f"${key}$"


def _state_key(state: int) -> str:
    """cells.py state numbers: 0, 1 the inputs, 2.. the nodes 0, 1, .."""
    if state < cells.NUM_INPUTS:
        return CELL_INPUTS[state]
    return str(state - cells.NUM_INPUTS)


def cell_panel(cell: cells.Cell, title: str) -> Panel:
    """A NASNet / ENAS / DARTS cell: every node one column right of its
    rightmost input, the output right of every node."""
    rank = {s: 0 for s in range(cells.NUM_INPUTS)}
    boxes = [Box(k, _math(k), INPUT, 0) for k in CELL_INPUTS]
    edges = []
    for i, node in enumerate(cell.nodes):
        state = i + cells.NUM_INPUTS
        rank[state] = 1 + max(rank[s] for s in node.inputs)
        text = str(i) if node.combine == "add" else f"{i}\nconcat"
        boxes.append(Box(str(i), text, NODE, rank[state]))
        edges += [Edge(_state_key(s), str(i), op)
                  for s, op in zip(node.inputs, node.ops)]
    boxes.append(Box(CELL_OUTPUT, _math(CELL_OUTPUT), OUTPUT,
                     1 + max(rank.values())))
    edges += [Edge(_state_key(s), CELL_OUTPUT) for s in cell.concat]
    return Panel(title, tuple(boxes), tuple(edges), RIGHT)


def _cell_diagram(name: str, pair: cells.CellPair) -> Diagram:
    concat = any(n.combine != "add" for c in (pair.normal, pair.reduce)
                 for n in c.nodes)
    node_line = "node: the sum of the ops on its two incoming edges"
    if concat:
        node_line += " ('concat': the ops' outputs concatenated in depth)"
    legend = (
        "$c_{k-2}$, $c_{k-1}$: the outputs of the two previous cells",
        node_line,
        "$c_k$: the states with an arrow to it, concatenated in depth",
        "reduction cell: the ops that read $c_{k-2}$ or $c_{k-1}$ have "
        "stride 2",
    )
    return Diagram((cell_panel(pair.normal, f"{name}: normal cell"),
                    cell_panel(pair.reduce, f"{name}: reduction cell")),
                   legend)


RNN_INPUT = "x_t, h_{t-1}"
RNN_OUTPUT = "h_t"
RNN_MEMORY_IN = "c_{t-1}"
RNN_MEMORY_OUT = "c_t"
_RNN_INPUT_TEXT = "$x_t$, $h_{t-1}$"
# NAS-RL tree combinations of two inputs x, y as written in node boxes.
_COMBINED = {"add": "{x}+{y}", "elem_mult": "{x}\u2299{y}",
             "max": "max({x},{y})"}


def _combined(combination: str, x: str = "a", y: str = "b") -> str:
    return _COMBINED[combination].format(x=x, y=y)


def _applied(activation: str, expression: str) -> str:
    return expression if activation == "identity" else (
        f"{activation}({expression})")


def tree_panel(tree: nasrl_rnn.TreeCell, title: str) -> Panel:
    """The NAS-RL tree cell: the leaves in the first column, each level of
    the tree one column further right, the root feeding h_t."""
    nodes, edges, rank = [], [], {}
    inject_comb, inject_act = tree.inject
    for k, (comb, act) in enumerate(tree.nodes):
        if k < tree.base:
            rank[k] = 1
            edges.append(Edge(RNN_INPUT, str(k)))
        else:
            children = tree.children(k)
            rank[k] = 1 + rank[children[0]]
            edges += [Edge(str(c), str(k)) for c in children]
        text = f"{k}: {_applied(act, _combined(comb))}"
        if k == tree.inject_node:
            joined = _combined(inject_comb, "o", "$c_{t-1}$")
            text += f"\nthen {_applied(inject_act, joined)}"
        nodes.append(Box(str(k), text, NODE, rank[k]))
    edges.append(Edge(RNN_MEMORY_IN, str(tree.inject_node)))

    def upper_half(node):
        column = [k for k in rank if rank[k] == rank[node]]
        return column.index(node) + 0.5 < len(column) / 2

    # Columns keep the tree's node order; c_{t-1} and c_t go above x_t and
    # h_t when the node they join is in the upper half of its column.
    inputs = [Box(RNN_INPUT, _RNN_INPUT_TEXT, INPUT, 0),
              Box(RNN_MEMORY_IN, _math(RNN_MEMORY_IN), INPUT, 0)]
    if upper_half(tree.inject_node):
        inputs.reverse()
    out_rank = 1 + max(rank.values())
    outputs = [Box(RNN_OUTPUT, _math(RNN_OUTPUT), OUTPUT, out_rank),
               Box(RNN_MEMORY_OUT, _math(RNN_MEMORY_OUT), OUTPUT, out_rank)]
    if upper_half(tree.cell_node):
        outputs.reverse()
    root = str(len(tree.nodes) - 1)
    edges += [Edge(root, RNN_OUTPUT),
              Edge(str(tree.cell_node), RNN_MEMORY_OUT)]
    return Panel(title, tuple(inputs + nodes + outputs), tuple(edges), RIGHT,
                 keep_order=True)


def _tree_diagram(name: str, tree: nasrl_rnn.TreeCell) -> Diagram:
    used = {comb for comb, _ in tree.nodes} | {tree.inject[0]}
    forms = " or ".join(f"f({_combined(c)})" for c in _COMBINED if c in used)
    legend = (
        f"node k: {forms}: its inputs a, b combined (+ sum, \u2299 "
        f"elementwise product), then its activation f",
        "leaf k: a = $W_k x_t$, b = $U_k h_{t-1}$; other nodes: a, b are "
        "the two nodes with an arrow to it",
        f"$c_{{t-1}}$ joins the output o of node {tree.inject_node} as "
        f"written in it; $c_t$ is node {tree.cell_node}'s combination before "
        f"its activation; $h_t$ is the root's output",
    )
    return Diagram((tree_panel(tree, f"{name}: tree cell"),), legend)


def dag_panel(dag: recurrent_dag.RecurrentDag, title: str) -> Panel:
    """An ENAS / DARTS recurrent cell: each node one column right of its
    predecessor (the cell is a tree rooted at node 0), h_t on the right."""
    boxes = [Box(RNN_INPUT, _RNN_INPUT_TEXT, INPUT, 0), Box("0", "0", NODE, 1)]
    edges = [Edge(RNN_INPUT, "0", dag.node0_activation)]
    rank = {0: 1}
    for i, (pred, act) in enumerate(dag.nodes, start=1):
        rank[i] = rank[pred] + 1
        boxes.append(Box(str(i), str(i), NODE, rank[i]))
        edges.append(Edge(str(pred), str(i), act))
    boxes.append(Box(RNN_OUTPUT, _math(RNN_OUTPUT), OUTPUT,
                     1 + max(rank.values())))
    edges += [Edge(str(i), RNN_OUTPUT) for i in dag.average]
    return Panel(title, tuple(boxes), tuple(edges), RIGHT)


def _dag_diagram(name: str, dag: recurrent_dag.RecurrentDag) -> Diagram:
    legend = (
        "edge label f: the activation of the node it enters, a highway "
        "on the state s at the arrow's tail: s + c\u2299(f(v) \u2212 s), "
        "c = sigmoid(g), with v and g linear in s",
        "node 0: s = $h_{t-1}$, v and g linear in [$x_t$, $h_{t-1}$]",
        "$h_t$: the mean of the nodes with an arrow to it",
    )
    return Diagram((dag_panel(dag, f"{name}: recurrent cell"),), legend)


IMAGE, STEM, CLASSIFIER = "image", "stem", "classifier"
# builders/nasrl_network.py: pooling layers are 3x3 stride-2 max pools.
_NASRL_POOL_TEXT = "max pool 3x3, stride 2"


def _sources_text(sources) -> str:
    return "  \u2190 " + ", ".join(sources) if sources else ""


def _nasrl_layer_text(k: int, layer: dict, with_strides: bool) -> str:
    if layer["kind"] == "pool":
        return f"{k}: {_NASRL_POOL_TEXT}"
    (fh, fw), (sh, sw) = layer["kernel"], layer["strides"]
    stride = f", stride {sh}x{sw}" if with_strides else ""
    return f"{k}: conv {fh}x{fw}{stride}, {layer['filters']} filters"


def nasrl_cnn_panel(layers, with_strides: bool, title: str) -> Panel:
    """A NAS-RL network (``NasrlCnnSpace.decode``): the image, the layers in
    order, the classifier, with the paper's connection rules (sec. 3.3).
    A layer's text ends with the layers it reads."""
    boxes = [Box(IMAGE, IMAGE, INPUT, 0)]
    edges = []
    for k, layer in enumerate(layers):
        sources = [str(i) for i in layer["inputs"]] or [IMAGE]
        text = (_nasrl_layer_text(k, layer, with_strides) +
                _sources_text(sources))
        boxes.append(Box(str(k), text, NODE, k + 1))
        edges += [Edge(s, str(k)) for s in sources]
    read = {i for layer in layers for i in layer["inputs"]}
    boxes.append(Box(CLASSIFIER, CLASSIFIER, OUTPUT, len(layers) + 1))
    edges += [Edge(str(k), CLASSIFIER) for k in range(len(layers))
              if k not in read]
    return Panel(title, tuple(boxes), tuple(edges), DOWN)


def _nasrl_cnn_diagram(space, layers) -> Diagram:
    conv = "conv FHxFW"
    meaning = "filter height x width"
    if space.predict_strides:
        conv += ", stride SHxSW"
        meaning += ", strides"
    legend = (
        f"{conv}, N filters: {meaning}, number of filters (each conv is "
        f"followed by batch norm and ReLU)",
        "\u2190 i, j: the layers it reads (the arrows), concatenated in "
        "depth, the smaller ones zero-padded",
        "a layer with no input reads the image",
        "the outputs no layer reads are concatenated and go to the "
        "classifier (global average pool, dense)",
    )
    return Diagram((nasrl_cnn_panel(layers, space.predict_strides,
                                    space.name),), legend)


def enas_macro_panel(layers, title: str) -> Panel:
    """An ENAS macro network (``EnasMacroSpace.decode``): each layer's op
    reads the layer above it; skip bit i is the stem (i = 0) or layer i-1.
    A layer's text ends with its skips."""
    boxes = [Box(STEM, "stem: conv 3x3", INPUT, 0)]
    edges = []
    for k, (op, bits) in enumerate(layers):
        above = STEM if k == 0 else str(k - 1)
        skips = [STEM if i == 0 else str(i - 1)
                 for i, bit in enumerate(bits) if bit]
        boxes.append(Box(str(k), f"{k}: {op}" + _sources_text(skips), NODE,
                         k + 1))
        edges += [Edge(s, str(k)) for s in [above] + skips]
    boxes.append(Box(CLASSIFIER, CLASSIFIER, OUTPUT, len(layers) + 1))
    edges.append(Edge(str(len(layers) - 1), CLASSIFIER))
    return Panel(title, tuple(boxes), tuple(edges), DOWN)


def _enas_macro_diagram(name: str, layers) -> Diagram:
    legend = (
        "each layer applies its op to the output of the layer above it",
        "\u2190 i, j: skip connections from layers i, j (the arcs), "
        "concatenated in depth with the op's output, then a 1x1 conv",
        "the last layer goes to the classifier (global average pool, "
        "dense)",
    )
    return Diagram((enas_macro_panel(layers, name),), legend)


def diagram(space, arch) -> Diagram:
    """What the drawing of ``arch`` (an Architecture of ``space``) shows."""
    decoded = space.decode(arch)
    if isinstance(decoded, cells.CellPair):
        return _cell_diagram(space.name, decoded)
    if isinstance(decoded, nasrl_rnn.TreeCell):
        return _tree_diagram(space.name, decoded)
    if isinstance(decoded, recurrent_dag.RecurrentDag):
        return _dag_diagram(space.name, decoded)
    if space.family == "enas_macro":
        return _enas_macro_diagram(space.name, decoded)
    if space.family == "nasrl":
        return _nasrl_cnn_diagram(space, decoded)
    raise ValueError(
        f"cannot draw architectures of space {space.name!r} (family "
        f"{space.family!r}); drawn: cell pairs, NAS-RL trees, recurrent "
        f"DAGs, enas_macro and nasrl layer-wise networks")


# -- layout: where it is drawn, in pixels (y up) ------------------------------

DPI = 100
BOX_FONT, LABEL_FONT, LEGEND_FONT, TITLE_FONT = 11, 10, 10, 12
_BOX_PAD = (8, 5)
_MIN_BOX = (34, 28)
_ROW_GAP = 40  # between boxes of one column (flow right)
_LAYER_GAP = 14  # between layers (flow down)
_MIN_COLUMN_GAP = 44
_LABEL_PAD = (4, 2)  # a label's white background around its text
_LABEL_ROOM = 12  # free space on each side of a label between columns
# Labels across a gap take this many times their summed height: more than
# that and they go side by side.
_LABEL_CROWDING = 2.5
_WIDENINGS = 3
_MARGIN = 14
# Candidate spots for an edge's label, as a fraction of the way along it;
# the middle first.
_LABEL_SPOTS = (0.5,) + tuple(0.5 + sign * 0.04 * k for k in range(1, 8)
                              for sign in (-1, 1))
# Candidate bends of an edge (control point offset / edge length).
_BENDS = (0.0, 0.14, -0.14, 0.28, -0.28, 0.42, -0.42)
# Arcs of a layer column bulge right by this much, more for longer spans.
_ARC_BASE, _ARC_STEP, _ARC_MAX = 16, 7, 130


class TextMeasure:
    """Pixel width and height of a text at a font size, as Agg renders it
    at ``DPI`` (multi-line and mathtext included)."""

    def __init__(self, figure: Optional[Figure] = None):
        if figure is None:
            figure = Figure(dpi=DPI)
            FigureCanvasAgg(figure)
        self._figure = figure
        self._cache = {}

    def __call__(self, text: str, size: float) -> Tuple[float, float]:
        if (text, size) not in self._cache:
            artist = self._figure.text(0, 0, text, fontsize=size)
            extent = artist.get_window_extent(
                self._figure.canvas.get_renderer())
            artist.remove()
            self._cache[text, size] = (float(extent.width),
                                       float(extent.height))
        return self._cache[text, size]


@dataclasses.dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle by its center and size."""

    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: "Rect", gap: float = 0.0) -> bool:
        return (abs(self.x - other.x) * 2 < self.w + other.w + 2 * gap and
                abs(self.y - other.y) * 2 < self.h + other.h + 2 * gap)


@dataclasses.dataclass
class PlacedEdge:
    edge: Edge
    points: Tuple[Tuple[float, float], ...]  # a Bezier: start, controls, end
    label: Optional[Rect] = None
    text: str = ""  # the label as drawn


@dataclasses.dataclass
class PlacedPanel:
    """A panel in pixels: its boxes, edges and the box around all of it
    (the title band included)."""

    panel: Panel
    boxes: Dict[str, Rect]
    edges: List[PlacedEdge]
    bounds: Tuple[float, float, float, float]  # x0, y0, x1, y1


def _bezier(points, t: float) -> Tuple[float, float]:
    """A point of the quadratic or cubic Bezier curve through ``points``."""
    n = len(points) - 1
    x = y = 0.0
    for i, (px, py) in enumerate(points):
        weight = math.comb(n, i) * t ** i * (1 - t) ** (n - i)
        x += weight * px
        y += weight * py
    return x, y


def _samples(points, count: int = 40):
    return [_bezier(points, (i + 0.5) / count) for i in range(count)]


def _box_sizes(panel, measure):
    sizes = {}
    for b in panel.boxes:
        w, h = measure(b.text, BOX_FONT)
        sizes[b.key] = (max(_MIN_BOX[0], w + 2 * _BOX_PAD[0]),
                        max(_MIN_BOX[1], h + 2 * _BOX_PAD[1]))
    return sizes


def shown_label(label: str, wrap: bool) -> str:
    """An op label as drawn; wrapped, a long name takes two lines, broken
    at its last underscore ("sep_conv" over "3x3")."""
    head, _, tail = label.rpartition("_")
    if wrap and head and len(label) > 8:
        return f"{head}\n{tail}"
    return label


def _label_size(label, wrap, measure):
    w, h = measure(shown_label(label, wrap), LABEL_FONT)
    return w + 2 * _LABEL_PAD[0], h + 2 * _LABEL_PAD[1]


def _place_right(panel: Panel, wrap: bool, measure):
    """Boxes in columns by rank, ordered as ``Panel`` says, sharing the
    column's height evenly. A gap between columns gives the labels of the
    edges across it lanes side by side: as many as their summed height asks
    for, and one more, up to ``_WIDENINGS`` times, while a label there
    still covers another label or a box."""
    sizes = _box_sizes(panel, measure)
    ranks = sorted({b.rank for b in panel.boxes})
    columns = [[b for b in panel.boxes if b.rank == r] for r in ranks]
    slot = max(h for _, h in sizes.values()) + _ROW_GAP
    height = slot * max(len(c) for c in columns)
    ys = {}
    for column in columns:
        def mean_source_height(box):
            heights = [ys[e.source] for e in panel.edges
                       if e.target == box.key and e.source in ys]
            return -sum(heights) / len(heights) if heights else 0.0
        ordered = (column if panel.keep_order else
                   sorted(column, key=mean_source_height))
        share = height / len(ordered)
        for i, b in enumerate(ordered):
            ys[b.key] = height / 2 - (i + 0.5) * share
    rank_of = {b.key: b.rank for b in panel.boxes}
    widest, lanes = [0.0], [0]
    for r in ranks[1:]:
        # An edge across several gaps counts in each for its share.
        across = [(e, rank_of[e.target] - rank_of[e.source])
                  for e in panel.edges if e.label and
                  rank_of[e.source] < r <= rank_of[e.target]]
        sized = [_label_size(e.label, wrap, measure) for e, _ in across]
        stacked = sum(h / span for (_, span), (_, h) in zip(across, sized))
        widest.append(max([w for w, _ in sized], default=0.0))
        lanes.append(math.ceil(_LABEL_CROWDING * stacked / height))
    for attempt in range(_WIDENINGS + 1):
        x, xs = 0.0, []
        for j, column in enumerate(columns):
            if j:
                x += max(_MIN_COLUMN_GAP, lanes[j] * widest[j] +
                         (lanes[j] + 1) * _LABEL_ROOM)
            width = max(sizes[b.key][0] for b in column)
            xs.append(x + width / 2)
            x += width
        rects = {b.key: Rect(xs[ranks.index(b.rank)], ys[b.key],
                             *sizes[b.key]) for b in panel.boxes}
        placed = _route_right(panel, rects, wrap, measure)
        crowded = _crowded_gaps(placed, rects, xs)
        if not crowded or attempt == _WIDENINGS:
            return rects, placed
        for j in crowded:
            lanes[j] += 1


def _crowded_gaps(placed, rects, column_xs) -> set:
    """The gaps (by the index of the column right of them) holding a label
    that covers another label or a box."""
    labels = [p.label for p in placed if p.label]
    crowded = set()
    for i, label in enumerate(labels):
        others = labels[:i] + labels[i + 1:] + list(rects.values())
        if any(label.overlaps(o) for o in others):
            right = [j for j, x in enumerate(column_xs) if x > label.x]
            crowded.add(right[0] if right else len(column_xs) - 1)
    return crowded


def _arrival_points(panel: Panel, rects: Dict[str, Rect]) -> dict:
    """Arrows into one box arrive spread over its left side, top to bottom
    in the order of their sources' heights. Returns id(edge) -> point."""
    arrivals = {}
    for e in panel.edges:
        arrivals.setdefault(e.target, []).append(e)
    ends = {}
    for target, incoming in arrivals.items():
        box = rects[target]
        order = sorted(range(len(incoming)),
                       key=lambda i: -rects[incoming[i].source].y)
        spread = max(0.0, box.h / 2 - 6)
        for slot, i in enumerate(order):
            offset = (spread * (1 - 2 * slot / (len(incoming) - 1))
                      if len(incoming) > 1 else 0.0)
            ends[id(incoming[i])] = (box.x - box.w / 2, box.y + offset)
    return ends


def _inside(points: np.ndarray, rects: List[Rect], gap: float = 0.0) -> int:
    """How many (point, rectangle) pairs have the point inside the
    rectangle grown by ``gap``."""
    if not len(points) or not rects:
        return 0
    r = np.array([(q.x, q.y, q.w / 2 + gap, q.h / 2 + gap) for q in rects])
    dx = np.abs(points[:, None, 0] - r[None, :, 0])
    dy = np.abs(points[:, None, 1] - r[None, :, 1])
    return int(np.sum((dx < r[None, :, 2]) & (dy < r[None, :, 3])))


def _route_right(panel: Panel, rects: Dict[str, Rect], wrap: bool,
                 measure) -> List[PlacedEdge]:
    """Quadratic curves from a box's right side to the left side of the box
    it feeds, each with its label on it. Labelled edges go first. An edge
    takes the bend and its label the spot that, in this order, cross no
    other box, cover no label, cross few placed edges and labels, and bend
    least. Two edges between the same boxes never take the same bend."""
    ends = _arrival_points(panel, rects)
    order = sorted(panel.edges, key=lambda e: not e.label)
    labels, paths, placed, bent = [], np.zeros((0, 2)), [], {}
    for e in order:
        src = rects[e.source]
        start, end = (src.x + src.w / 2, src.y), ends[id(e)]
        others = [r for k, r in rects.items()
                  if k not in (e.source, e.target)]
        twins = sum(o.source == e.source and o.target == e.target
                    for o in panel.edges) > 1
        taken = bent.setdefault((e.source, e.target), [])
        bends = [b for b in _BENDS
                 if b not in taken and not (twins and b == 0)]
        size = _label_size(e.label, wrap, measure) if e.label else None
        best = None
        for preference, bend in enumerate(bends):
            points = _bent(start, end, bend)
            samples = np.array(_samples(points))
            cost = (1000 * _inside(samples, others, gap=4) +
                    30 * _inside(samples, labels))
            label = None
            if size:
                spots = [Rect(*_bezier(points, t), *size)
                         for t in _LABEL_SPOTS]
                label_cost = [
                    1000 * sum(r.overlaps(o, gap=2)
                               for o in labels + list(rects.values())) +
                    _inside(paths, [r]) for r in spots]
                i = min(range(len(spots)), key=lambda i: (label_cost[i], i))
                label, cost = spots[i], cost + label_cost[i]
            cost += preference  # the least bend among equals
            if best is None or cost < best[0]:
                best = (cost, bend, points, label)
        _, bend, points, label = best
        taken.append(bend)
        placed.append(PlacedEdge(e, points, label,
                                 shown_label(e.label, wrap)))
        paths = np.concatenate([paths, np.array(_samples(points))])
        if label:
            labels.append(label)
    return sorted(placed, key=lambda p: panel.edges.index(p.edge))


def _bent(start, end, bend: float):
    """The quadratic Bezier from ``start`` to ``end`` whose control point
    sits ``bend`` times the edge's length off its middle (up when > 0)."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    return (start, (mid[0] - bend * dy, mid[1] + bend * dx), end)


def _place_down(panel: Panel, measure) -> Tuple[Dict[str, Rect], list]:
    """One box per rank, top to bottom, all of one width. An edge to the
    next box is a short arrow down; longer ones are arcs on the right,
    leaving a box low on its right side and entering high."""
    sizes = _box_sizes(panel, measure)
    width = max(w for w, _ in sizes.values())
    height = max(h for _, h in sizes.values())
    rows = sorted(panel.boxes, key=lambda b: b.rank)
    rects = {b.key: Rect(width / 2, -i * (height + _LAYER_GAP), width,
                         height) for i, b in enumerate(rows)}
    row = {b.key: i for i, b in enumerate(rows)}
    placed = []
    for e in panel.edges:
        src, dst = rects[e.source], rects[e.target]
        span = row[e.target] - row[e.source]
        if span == 1:
            points = ((src.x, src.y - src.h / 2), (dst.x, dst.y + dst.h / 2))
        else:
            bulge = min(_ARC_MAX, _ARC_BASE + _ARC_STEP * (span - 1))
            right = src.x + src.w / 2
            start = (right, src.y - src.h / 4)
            end = (right, dst.y + dst.h / 4)
            # A cubic's control points 4/3 out: its middle is ``bulge`` out.
            reach = right + bulge * 4 / 3
            points = (start, (reach, start[1]), (reach, end[1]), end)
        placed.append(PlacedEdge(e, points))
    return rects, placed


def layout_panel(panel: Panel, wrap_labels: bool = False,
                 measure: Optional[TextMeasure] = None) -> PlacedPanel:
    """Places ``panel`` in pixels (y up); ``wrap_labels`` writes long op
    labels in two lines (see ``shown_label``); ``measure`` sizes texts."""
    measure = measure or TextMeasure()
    if panel.flow == RIGHT:
        rects, placed = _place_right(panel, wrap_labels, measure)
    elif panel.flow == DOWN:
        rects, placed = _place_down(panel, measure)
    else:
        raise ValueError(f"panel flow {panel.flow!r}; allowed: {RIGHT}, "
                         f"{DOWN}")
    xs, ys = [], []
    for r in list(rects.values()) + [p.label for p in placed if p.label]:
        xs += [r.x - r.w / 2, r.x + r.w / 2]
        ys += [r.y - r.h / 2, r.y + r.h / 2]
    for p in placed:
        for x, y in _samples(p.points, 12) + [p.points[0], p.points[-1]]:
            xs.append(x)
            ys.append(y)
    title_h = measure(panel.title, TITLE_FONT)[1] + 12
    x0, x1 = min(xs), max(xs)
    title_w = measure(panel.title, TITLE_FONT)[0]
    if x1 - x0 < title_w:
        x1 = x0 + title_w
    return PlacedPanel(panel, rects, placed,
                       (x0, min(ys), x1, max(ys) + title_h))


# -- rendering ---------------------------------------------------------------

_COLORS = {INPUT: "#b5ddb0", NODE: "#bcd4f2", OUTPUT: "#f6dc9b"}
_LABEL_COLOR = "#a02020"
_ARC_COLOR = "#555555"
_LEGEND_COLOR = "#222222"
# Legend width beside a layer column; a legend below panels is as wide as
# the figure, which is at least this wide.
_SIDE_LEGEND_WIDTH = 300
_MIN_WIDTH = 620
# Panels wider than this with labels in one line get them in two.
_WRAP_WIDTH = 720


def _wrap(line: str, width: float, measure) -> List[str]:
    """``line`` broken at spaces into lines at most ``width`` pixels wide
    (continuations indented). Words are measured one by one: a line is as
    wide as its words and spaces."""
    space = (measure("x x", LEGEND_FONT)[0] -
             measure("xx", LEGEND_FONT)[0])
    words = line.split(" ")
    lines, used = [words[0]], measure(words[0], LEGEND_FONT)[0]
    for word in words[1:]:
        w = measure(word, LEGEND_FONT)[0]
        if used + space + w <= width:
            lines[-1] += " " + word
            used += space + w
        else:
            lines.append("   " + word)
            used = measure(lines[-1], LEGEND_FONT)[0]
    return lines


def _legend_text(legend, width, measure) -> str:
    lines = []
    for entry in legend:
        lines += _wrap("\u2022 " + entry, width, measure)
    return "\n".join(lines)


def _draw_panel(ax, placed: PlacedPanel, dx: float, dy: float) -> None:
    """Draws ``placed`` shifted by (dx, dy)."""
    x0, _, x1, y1 = placed.bounds
    ax.text((x0 + x1) / 2 + dx, y1 + dy - 4, placed.panel.title,
            ha="center", va="top", fontsize=TITLE_FONT, fontweight="bold")
    down = placed.panel.flow == DOWN
    for p in placed.edges:
        points = [(x + dx, y + dy) for x, y in p.points]
        codes = [mpath.Path.MOVETO] + [
            mpath.Path.CURVE3 if len(points) == 3 else
            mpath.Path.CURVE4 if len(points) == 4 else
            mpath.Path.LINETO] * (len(points) - 1)
        arc = down and len(points) > 2
        ax.add_patch(patches.FancyArrowPatch(
            path=mpath.Path(points, codes), arrowstyle="-|>",
            mutation_scale=11, shrinkA=0, shrinkB=0,
            lw=0.9 if arc else 1.1, color=_ARC_COLOR if arc else "black",
            zorder=1))
        if p.label:
            ax.text(p.label.x + dx, p.label.y + dy, p.text,
                    ha="center", va="center", fontsize=LABEL_FONT,
                    color=_LABEL_COLOR, zorder=3,
                    bbox=dict(boxstyle="square,pad=0.15", fc="white",
                              ec="none", alpha=0.9))
    for box in placed.panel.boxes:
        r = placed.boxes[box.key]
        ax.add_patch(patches.FancyBboxPatch(
            (r.x - r.w / 2 + dx, r.y - r.h / 2 + dy), r.w, r.h,
            boxstyle="round,pad=0,rounding_size=5", fc=_COLORS[box.kind],
            ec="black", lw=1, zorder=2))
        if down:  # texts of a column of layers start at one left edge
            ax.text(r.x - r.w / 2 + _BOX_PAD[0] + dx, r.y + dy, box.text,
                    ha="left", va="center", fontsize=BOX_FONT, zorder=4)
        else:
            ax.text(r.x + dx, r.y + dy, box.text, ha="center", va="center",
                    ma="center", fontsize=BOX_FONT, zorder=4)


def render(drawn: Diagram) -> bytes:
    """The PNG of a diagram: panels one above the other with the legend
    below, or a layer column with the legend at its right."""
    figure = Figure(dpi=DPI)
    FigureCanvasAgg(figure)
    measure = TextMeasure(figure)
    placed = [layout_panel(p, False, measure) for p in drawn.panels]
    if any(p.bounds[2] - p.bounds[0] > _WRAP_WIDTH for p in placed):
        placed = [layout_panel(p, True, measure) for p in drawn.panels]
    sizes = [(b[2] - b[0], b[3] - b[1]) for b in (p.bounds for p in placed)]
    beside = any(p.flow == DOWN for p in drawn.panels)
    if beside:
        legend_w = _SIDE_LEGEND_WIDTH
        panels_w = max(w for w, _ in sizes)
        width = 3 * _MARGIN + panels_w + legend_w
    else:
        width = max([_MIN_WIDTH] + [w + 2 * _MARGIN for w, _ in sizes])
        legend_w = width - 2 * _MARGIN
    legend = _legend_text(drawn.legend, legend_w, measure)
    legend_h = measure(legend, LEGEND_FONT)[1]
    panels_h = sum(h for _, h in sizes) + _MARGIN * (len(sizes) - 1)
    if beside:
        height = max(panels_h, legend_h) + 2 * _MARGIN
    else:
        height = panels_h + legend_h + 3 * _MARGIN
    width, height = math.ceil(width), math.ceil(height)
    figure.set_size_inches(width / DPI, height / DPI)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    top = height - _MARGIN
    for p, (w, h) in zip(placed, sizes):
        x0, y0, _, y1 = p.bounds
        left = _MARGIN if beside else (width - w) / 2
        _draw_panel(ax, p, left - x0, top - y1)
        top -= h + _MARGIN
    if beside:
        legend_xy = (2 * _MARGIN + max(w for w, _ in sizes),
                     height - _MARGIN)
    else:
        legend_xy = (_MARGIN, top)
    ax.text(*legend_xy, legend, ha="left", va="top", fontsize=LEGEND_FONT,
            color=_LEGEND_COLOR)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def draw_architecture(space, arch) -> bytes:
    """Returns a PNG drawing of ``arch`` (an Architecture of ``space``)."""
    return render(diagram(space, arch))
