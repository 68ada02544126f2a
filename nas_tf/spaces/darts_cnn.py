"""The DARTS convolutional cell space in genotype form (Liu et al. 2018).

A cell has two inputs (0 = cell k-2, 1 = cell k-1) and ``steps`` nodes (4 in
``model_search.py``). A derived genotype keeps, for every node, its two
strongest incoming edges (two distinct earlier states) and on each the
strongest op other than ``none`` (paper sec. 2.4), so a node is: an unordered
pair of earlier states and one of 7 ops on each. The output concatenates all
nodes (``concat = range(2, 6)``).

Decisions per node: ``inputs`` (one of the C(i+2, 2) pairs), ``op_low`` (op on
the lower-numbered input), ``op_high``. Text is the DARTS ``Genotype(...)``
repr, so published genotypes paste in unchanged; the order of a node's two
edges is not part of the architecture (their sum is), and formatting writes
the lower-numbered input first.
"""

import ast
import itertools
import math

from nas_tf.spaces import cells
from nas_tf.spaces import schema

# cnn/genotypes.py PRIMITIVES, in order; derived cells never hold 'none'.
PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
              "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
OPS = PRIMITIVES[1:]
CELLS = ("normal", "reduce")


def _pairs(num_states):
    return tuple(itertools.combinations(range(num_states), 2))


class DartsCnnSpace(schema.SearchSpace):
    """DARTS normal and reduction cells with ``steps`` nodes."""

    name = "darts_cnn"
    family = "darts"

    def __init__(self, steps: int = 4):
        schema.check_count("darts_cnn", "steps", steps)
        self.steps = steps
        decisions = []
        for cell in CELLS:
            for i in range(steps):
                labels = tuple(f"{a}&{b}" for a, b in _pairs(i + 2))
                prefix = f"{cell}/node{i + 2}"
                decisions += [
                    schema.Decision(f"{prefix}/inputs", schema.CHOICE, labels),
                    schema.Decision(f"{prefix}/op_low", schema.CHOICE, OPS),
                    schema.Decision(f"{prefix}/op_high", schema.CHOICE, OPS),
                ]
        super().__init__(decisions, {"steps": steps})

    @property
    def concat(self):
        return tuple(range(2, self.steps + 2))

    def layout_help(self):
        return f"2 cells x {self.steps} nodes x [inputs, op_low, op_high]"

    def size_formula(self) -> int:
        per_cell = math.prod(math.comb(i + 2, 2) * len(OPS) ** 2
                             for i in range(self.steps))
        return per_cell ** 2

    # -- genotype text -------------------------------------------------------
    def format(self, arch):
        pair = self.decode(arch)
        parts = []
        for cell in CELLS:
            edges = [(op, i) for node in getattr(pair, cell).nodes
                     for op, i in zip(node.ops, node.inputs)]
            parts.append(f"{cell}={edges!r}")
            parts.append(f"{cell}_concat={list(self.concat)!r}")
        return f"Genotype({', '.join(parts)})"

    def parse(self, text: str):
        if not text.strip().startswith("Genotype"):
            # Plain tokens in decision order, as the controller emits them.
            return self.from_storage(schema.parse_ints(text, self.name))
        fields = _genotype_fields(text)
        tokens = []
        for cell in CELLS:
            tokens += self._cell_tokens(cell, fields[cell])
            concat = tuple(fields[f"{cell}_concat"])
            if concat != self.concat:
                raise schema.SpaceError(
                    f"darts_cnn: {cell}_concat={list(concat)}; a DARTS cell "
                    f"concatenates all its nodes: {list(self.concat)}")
        return self.from_tokens(tokens)

    def _cell_tokens(self, cell, edges):
        if len(edges) != 2 * self.steps:
            raise schema.SpaceError(
                f"darts_cnn: {cell} has {len(edges)} entries; a cell has "
                f"{2 * self.steps} (2 per node x {self.steps} nodes)")
        tokens = []
        for i in range(self.steps):
            pair = []
            for e in (2 * i, 2 * i + 1):
                entry = edges[e]
                if (not isinstance(entry, tuple) or len(entry) != 2
                        or not isinstance(entry[0], str)
                        or not schema.is_int(entry[1])):
                    raise schema.SpaceError(
                        f"darts_cnn: {cell}[{e}] = {entry!r}; each entry is "
                        f"('op_name', input_index)")
                op, src = entry
                if op not in OPS:
                    raise schema.SpaceError(
                        f"darts_cnn: {cell}[{e}] has unknown op {op!r}; "
                        f"allowed: {', '.join(OPS)}")
                if not 0 <= src < i + 2:
                    raise schema.SpaceError(
                        f"darts_cnn: {cell}[{e}] = {entry!r}: node index "
                        f"pointing forward; node {i + 2} may read states "
                        f"0..{i + 1}")
                pair.append((src, OPS.index(op)))
            (a, op_a), (b, op_b) = sorted(pair)
            if a == b:
                raise schema.SpaceError(
                    f"darts_cnn: {cell}[{2 * i}] and {cell}[{2 * i + 1}] "
                    f"both read state {a}; a DARTS node keeps two distinct "
                    f"edges")
            tokens += [_pairs(i + 2).index((a, b)), op_a, op_b]
        return tokens

    # -- decoding ------------------------------------------------------------
    def decode(self, arch) -> cells.CellPair:
        values = self.values(arch)
        decoded = []
        for cell in CELLS:
            nodes = []
            for i in range(self.steps):
                prefix = f"{cell}/node{i + 2}"
                a, b = _pairs(i + 2)[values[f"{prefix}/inputs"]]
                nodes.append(cells.Node(
                    (a, b), (OPS[values[f"{prefix}/op_low"]],
                             OPS[values[f"{prefix}/op_high"]])))
            decoded.append(cells.Cell(tuple(nodes), self.concat))
        return cells.CellPair(*decoded)


def _genotype_fields(text):
    """Reads ``Genotype(normal=[...], normal_concat=..., ...)`` safely."""
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise schema.SpaceError(
            f"darts_cnn: the genotype text does not parse ({e.msg} at "
            f"column {e.offset})") from None
    if not (isinstance(call, ast.Call) and getattr(call.func, "id", "")
            == "Genotype"):
        raise schema.SpaceError(
            "darts_cnn: expected Genotype(normal=[...], normal_concat=[...], "
            "reduce=[...], reduce_concat=[...])")
    fields = {}
    for kw in call.keywords:
        value = kw.value
        is_range = (isinstance(value, ast.Call)
                    and getattr(value.func, "id", "") == "range")
        try:
            if is_range:
                fields[kw.arg] = range(*[ast.literal_eval(a)
                                         for a in value.args])
            else:
                fields[kw.arg] = ast.literal_eval(value)
        except (ValueError, TypeError):
            raise schema.SpaceError(
                f"darts_cnn: Genotype field {kw.arg!r} is not a literal "
                f"list or range of integers") from None
    wanted = ("normal", "normal_concat", "reduce", "reduce_concat")
    missing = [k for k in wanted if k not in fields]
    unknown = [k for k in fields if k not in wanted]
    if missing or unknown:
        raise schema.SpaceError(
            f"darts_cnn: Genotype fields must be {', '.join(wanted)}; "
            f"missing {missing or 'none'}, unknown {unknown or 'none'}")
    for cell in CELLS:
        if not isinstance(fields[cell], (list, tuple)):
            raise schema.SpaceError(
                f"darts_cnn: Genotype field {cell!r} = {fields[cell]!r}; "
                f"expected a list of ('op_name', input_index) pairs")
        concat = fields[f"{cell}_concat"]
        if not (isinstance(concat, (list, tuple, range))
                and all(schema.is_int(i) for i in concat)):
            raise schema.SpaceError(
                f"darts_cnn: Genotype field '{cell}_concat' = {concat!r}; "
                f"expected a list of state indices")
    return fields
