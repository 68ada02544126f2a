"""The ENAS recurrent cell space (Pham et al. 2018, PTB), in both of the
authors' token layouts.

The two public ENAS PTB code bases encode a cell differently, and pasting an
arc into the wrong one silently builds another cell, so the layout is a named
parameter:

* ``"enas_code"``, melodyguan/enas ``src/ptb`` (``--child_rhn_depth=12``):
  ``num_nodes`` counts every node, node 0 included; the arc is
  ``[f_0, p_1, f_1, ..., p_{N-1}, f_{N-1}]`` (node 0's activation is
  sampled too), activations in the order tanh, relu, identity, sigmoid, and
  the output averages the loose ends. Size: ``4^N * (N-1)!``.
* ``"enas_lm"``, google-research ``enas_lm`` (the authors' corrected PTB
  code): ``num_nodes`` counts the nodes after node 0, which is always tanh;
  the arc is ``[p_1, f_1, ..., p_N, f_N]``, activations in the order tanh,
  relu, sigmoid, identity (DARTS's order without ``none``), and the output
  averages all nodes after node 0 (``fixed_lib.py``; its TPU variant
  averages the loose ends, ``average="loose_ends"``). Size: ``4^N * N!``.

Both codes split a node's projection as ``[value, gate]`` (``h, t =
tf.split(...)``), the reverse of DARTS.

``p_i`` is node i's predecessor (one of 0..i-1) and ``f_i`` its activation.

Two search settings differ from these defaults: melodyguan/enas at HEAD
samples only tanh and relu (``ptb_enas_controller.py`` ``num_funcs=2``,
which ``src/ptb/main.py`` does not override; its first release and the
paper use all four, as this space does), and enas_lm's search samples 9
nodes after node 0 (``controller_num_layers``), where 8 is its published
cell's size and this layout's default.
"""

import math

from nas_tf.spaces import recurrent_dag
from nas_tf.spaces import schema

# ptb_enas_child.py and enas_lm child.py / fixed_lib.py.
LAYOUTS = {
    "enas_code": dict(activations=("tanh", "relu", "identity", "sigmoid"),
                      sample_node0=True, num_nodes=12, average="loose_ends",
                      highway_split="gate_last"),
    "enas_lm": dict(activations=("tanh", "relu", "sigmoid", "identity"),
                    sample_node0=False, num_nodes=8, average="all",
                    highway_split="gate_last"),
}


class EnasRnnSpace(recurrent_dag.RecurrentDagSpace):
    """ENAS recurrent cells; see the module docstring for the layouts.

    Args:
      num_nodes: In the layout's own sense; default 12 (``enas_code``,
        ``ptb_search.sh``/``ptb_final.sh`` rhn_depth) or 8 (``enas_lm``,
        the fixed cell of its README).
      layout: ``"enas_code"`` or ``"enas_lm"``.
      average: ``"loose_ends"`` or ``"all"``; default the layout's own.
    """

    name = "enas_rnn"

    def __init__(self, num_nodes: int = None, layout: str = "enas_code",
                 average: str = None):
        if layout not in LAYOUTS:
            raise schema.SpaceError(
                f"enas_rnn: layout={layout!r}; allowed: "
                f"{', '.join(LAYOUTS)}")
        spec = LAYOUTS[layout]
        num_nodes = spec["num_nodes"] if num_nodes is None else num_nodes
        schema.check_count("enas_rnn", "num_nodes", num_nodes)
        if spec["sample_node0"] and num_nodes < 2:
            raise schema.SpaceError(
                f"enas_rnn: num_nodes={num_nodes}; the enas_code layout "
                f"counts node 0, so it needs at least 2")
        average = average or spec["average"]
        self.layout = layout
        self.highway_split = spec["highway_split"]
        self.num_nodes = num_nodes
        num_picking = num_nodes - 1 if spec["sample_node0"] else num_nodes
        super().__init__(num_picking, spec["activations"],
                         spec["sample_node0"], average,
                         {"num_nodes": num_nodes, "layout": layout,
                          "average": average})

    def layout_help(self):
        if self.sample_node0:
            return (f"layout enas_code: f_0 then [p_i, f_i] for nodes "
                    f"1..{self.num_picking}")
        return (f"layout enas_lm: [p_i, f_i] for nodes "
                f"1..{self.num_picking}")

    def size_formula(self) -> int:
        """4 activations per sampled node, i predecessors for node i."""
        sampled = self.num_picking + int(self.sample_node0)
        return len(self.activations) ** sampled * math.factorial(
            self.num_picking)
