"""What a drawing shows: boxes, edges with their op labels, and a legend
of the notation, per kind of architecture (``diagram``). Nothing here
knows pixels; ``layout`` places it and ``render`` draws it."""

import dataclasses
from typing import Tuple

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


