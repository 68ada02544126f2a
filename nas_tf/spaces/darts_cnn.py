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

import itertools
import math

from nas_tf.spaces import cells
from nas_tf.spaces import genotype_text
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
        fields = genotype_text.genotype_fields(
            text, self.name, ("normal", "normal_concat", "reduce",
                              "reduce_concat"))
        tokens = []
        for cell in CELLS:
            if not isinstance(fields[cell], (list, tuple)):
                raise schema.SpaceError(
                    f"darts_cnn: Genotype field {cell!r} = {fields[cell]!r}; "
                    f"expected a list of ('op_name', input_index) pairs")
            concat = genotype_text.check_index_list(
                self.name, f"{cell}_concat", fields[f"{cell}_concat"])
            tokens += self._cell_tokens(cell, fields[cell])
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
                op, src = genotype_text.check_edge(
                    self.name, f"{cell}[{e}]", edges[e], OPS)
                if not 0 <= src < i + 2:
                    raise schema.SpaceError(
                        f"darts_cnn: {cell}[{e}] = {edges[e]!r}: node index "
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
