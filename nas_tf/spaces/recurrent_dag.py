"""The recurrent DAG cell shared by ENAS (PTB) and DARTS (RNN).

Node 0 reads the input x_t and the previous state h_{t-1}; every later node
i reads one earlier node and applies one activation inside a highway unit:
``s_i = s_p + sigmoid(c) * (f(h) - s_p)`` with ``[c, h]`` a linear map of
``s_p`` (ENAS paper sec. 2.1; DARTS sec. 3.1.2). The cell output averages
some nodes:

* ``"loose_ends"``: the nodes no node reads (the ENAS paper and the authors'
  first PTB code);
* ``"all"``: every node after node 0 (google-research ``enas_lm`` and
  DARTS ``rnn/model.py``, whose genotypes say ``concat=range(1, 9)``).

Spaces differ in their token layout and activation order; this module holds
what they share: the decisions, the decoded form and the averaging rule.
"""

import dataclasses
from typing import Tuple

from nas_tf.spaces import schema

AVERAGES = ("loose_ends", "all")


@dataclasses.dataclass(frozen=True)
class RecurrentDag:
    """A decoded recurrent DAG cell.

    Attributes:
      node0_activation: f of node 0, which reads x_t and h_{t-1}.
      nodes: ``(predecessor, activation)`` of nodes 1, 2, ...
      average: The nodes whose mean is the cell output.
    """

    node0_activation: str
    nodes: Tuple[Tuple[int, str], ...]
    average: Tuple[int, ...]

    @property
    def num_states(self) -> int:
        return len(self.nodes) + 1


def averaged_nodes(predecessors, rule: str) -> Tuple[int, ...]:
    """The node indices the output averages under ``rule``."""
    if rule == "all":
        return tuple(range(1, len(predecessors) + 1))
    used = set(predecessors)
    return tuple(i for i in range(len(predecessors) + 1) if i not in used)


def check_average(space_name: str, average: str) -> str:
    if average not in AVERAGES:
        raise schema.SpaceError(f"{space_name}: average={average!r}; "
                                f"allowed: {', '.join(AVERAGES)}")
    return average


class RecurrentDagSpace(schema.SearchSpace):
    """Decisions ``[node0/activation], node1/input, node1/activation, ...``.

    Subclasses set the activation order, whether node 0's activation is a
    decision, and the text format.
    """

    family = "recurrent"
    # The originals' highway split (see builders/recurrent_cells.py).
    highway_split = "gate_first"

    def __init__(self, num_picking: int, activations: Tuple[str, ...],
                 sample_node0: bool, average: str, params: dict):
        self.activations = tuple(activations)
        self.sample_node0 = sample_node0
        self.average = check_average(self.name, average)
        self.num_picking = num_picking
        decisions = []
        if sample_node0:
            decisions.append(schema.Decision("node0/activation",
                                             schema.CHOICE, self.activations))
        for i in range(1, num_picking + 1):
            decisions += [
                schema.Decision(f"node{i}/input", schema.NODE,
                                tuple(range(i))),
                schema.Decision(f"node{i}/activation", schema.CHOICE,
                                self.activations),
            ]
        super().__init__(decisions, params)

    def decode(self, arch) -> RecurrentDag:
        values = self.values(arch)
        node0 = (self.activations[values["node0/activation"]]
                 if self.sample_node0 else "tanh")
        nodes = tuple(
            (values[f"node{i}/input"],
             self.activations[values[f"node{i}/activation"]])
            for i in range(1, self.num_picking + 1))
        return RecurrentDag(node0, nodes,
                            averaged_nodes([p for p, _ in nodes],
                                           self.average))

    def from_nodes(self, nodes, node0_activation: str = "tanh"):
        """The architecture of ``(predecessor, activation_name)`` pairs."""
        if len(nodes) != self.num_picking:
            raise schema.SpaceError(
                f"{self!r} has {self.num_picking} nodes after node 0, got "
                f"{len(nodes)}")
        tokens = []
        if self.sample_node0:
            tokens.append(self.activation_index(node0_activation, "node0"))
        elif node0_activation != "tanh":
            raise schema.SpaceError(
                f"{self.name}: node 0 is always tanh here, got "
                f"{node0_activation!r}")
        for i, (pred, act) in enumerate(nodes, start=1):
            tokens += [pred, self.activation_index(act, f"node{i}")]
        return self.from_tokens(tokens)

    def activation_index(self, name, where: str) -> int:
        return schema.label_index(self.name, "activation", where,
                                  self.activations, name)
