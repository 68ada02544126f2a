"""The ENAS micro (cell) space (Pham et al. 2018; authors' ``micro_*.py``).

A cell has two input nodes (0 = cell k-2, 1 = cell k-1) and ``num_nodes``
further nodes (``child_num_cells=5`` in the scripts). Node j (j = 2, 3, ..)
reads two of the nodes 0..j-1, the same one twice allowed, and applies one of
five ops to each; the two results are added. The cell output is the depth
concat of the nodes no node reads, the inputs included.

The controller samples each node as index1, index2, op1, op2; the authors'
arcs (``--child_fixed_arc``) store it as ``index1 op1 index2 op2``. Token
strings use the stored layout, normal cell then reduction cell, so the
published arc pastes in unchanged.
"""

import math

from nas_tf.spaces import cells
from nas_tf.spaces import schema

# Op ids of micro_child.py: 0 sep3x3, 1 sep5x5, 2 avg3x3, 3 max3x3, 4 identity.
OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3",
       "identity")
CELLS = ("normal", "reduce")
SAMPLED = ("index1", "index2", "op1", "op2")
# Position of each sampled decision within the stored [idx1, op1, idx2, op2].
_STORED = (0, 2, 1, 3)


class EnasMicroSpace(schema.SearchSpace):
    """ENAS micro cells: normal then reduction, ``num_nodes`` nodes each."""

    name = "enas_micro"
    family = "enas"

    def __init__(self, num_nodes: int = 5):
        schema.check_count("enas_micro", "num_nodes", num_nodes)
        self.num_nodes = num_nodes
        decisions = []
        for cell in CELLS:
            for j in range(2, num_nodes + 2):
                earlier = tuple(range(j))
                prefix = f"{cell}/node{j}"
                decisions += [
                    schema.Decision(f"{prefix}/index1", schema.NODE, earlier),
                    schema.Decision(f"{prefix}/index2", schema.NODE, earlier),
                    schema.Decision(f"{prefix}/op1", schema.CHOICE, OPS),
                    schema.Decision(f"{prefix}/op2", schema.CHOICE, OPS),
                ]
        super().__init__(decisions, {"num_nodes": num_nodes})

    def storage_order(self):
        # Token position p of node n holds sampled decision _STORED[p % 4].
        order = []
        for node in range(2 * self.num_nodes):
            order += [4 * node + s for s in _STORED]
        return order

    def layout_help(self):
        return (f"2 cells x {self.num_nodes} nodes x [index1, op1, index2, "
                f"op2]")

    def size_formula(self) -> int:
        """prod over nodes j of (j inputs x 5 ops)^2, per cell, both cells."""
        per_cell = math.prod((j * len(OPS)) ** 2
                             for j in range(2, self.num_nodes + 2))
        return per_cell ** 2

    def decode(self, arch) -> cells.CellPair:
        values = self.values(arch)
        decoded = []
        for cell in CELLS:
            nodes = []
            for j in range(2, self.num_nodes + 2):
                v = {k: values[f"{cell}/node{j}/{k}"] for k in SAMPLED}
                nodes.append(cells.Node((v["index1"], v["index2"]),
                                        (OPS[v["op1"]], OPS[v["op2"]])))
            decoded.append(cells.Cell(tuple(nodes),
                                      cells.unused_states(nodes)))
        return cells.CellPair(*decoded)
