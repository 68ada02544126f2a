"""The NAS-RL recurrent tree cell space (Zoph & Le 2016, sec. 3.4).

A cell is a full binary tree. Its ``base`` leaves each combine ``W_k x_t``
and ``U_k h_{t-1}``; every inner node combines its two children; the root is
``h_t``. Each node gets a combination (add, elem_mult) and an activation
(identity, tanh, sigmoid, relu). Two more blocks place the memory cell:

* cell inject (a combination and an activation): the output ``a`` of one
  node becomes ``act(a (+) c_{t-1})`` before its parent reads it;
* cell indices: the node whose pre-activation value becomes ``c_t``, then
  the node that receives ``c_{t-1}``.

Nodes are numbered leaves first (0..base-1), then each level up to the root
(``2 * base - 2``). Token string: per node ``[combination, activation]``,
then ``[inject combination, inject activation]``, then ``[c_t node, inject
node]``, as ints. With base 8 the space has ``8^16 * 15^2`` (about
``6 * 10^16``, the paper's figure) cells.

``extended=True`` adds the paper's larger set (sec. 4.2): ``max`` as a
combination and ``sin`` as an activation.
"""

import dataclasses
from typing import Tuple

from nas_tf.spaces import schema

COMBINATIONS = ("add", "elem_mult")
ACTIVATIONS = ("identity", "tanh", "sigmoid", "relu")
EXTRA_COMBINATIONS = ("max",)
EXTRA_ACTIVATIONS = ("sin",)


@dataclasses.dataclass(frozen=True)
class TreeCell:
    """A decoded tree cell.

    Attributes:
      base: Number of leaves.
      nodes: ``(combination, activation)`` of every node, leaves first.
      inject: ``(combination, activation)`` merging ``c_{t-1}``.
      cell_node: The node whose pre-activation value is ``c_t``.
      inject_node: The node whose output receives ``c_{t-1}``.
    """

    base: int
    nodes: Tuple[Tuple[str, str], ...]
    inject: Tuple[str, str]
    cell_node: int
    inject_node: int

    def children(self, node: int) -> Tuple[int, int]:
        """The two nodes an inner node combines."""
        return tree_children(self.base, node)


def tree_children(base: int, node: int) -> Tuple[int, int]:
    if node < base:
        raise ValueError(f"node {node} is a leaf of a base-{base} tree")
    level_start, width = 0, base
    while node >= level_start + width:
        level_start += width
        width //= 2
    j = node - level_start
    child_start = level_start - 2 * width
    return child_start + 2 * j, child_start + 2 * j + 1


class NasrlRnnSpace(schema.SearchSpace):
    """Tree cells with ``base`` leaves (8 in the paper's PTB search)."""

    name = "nasrl_rnn"
    family = "recurrent"

    def __init__(self, base: int = 8, extended: bool = False):
        schema.check_count("nasrl_rnn", "base", base)
        if base < 2 or base & (base - 1):
            raise schema.SpaceError(
                f"nasrl_rnn: base={base}; a tree cell's base is a power of "
                f"two, at least 2 (the paper uses 8)")
        self.base = base
        self.extended = bool(extended)
        self.combinations = COMBINATIONS + (
            EXTRA_COMBINATIONS if self.extended else ())
        self.activations = ACTIVATIONS + (
            EXTRA_ACTIVATIONS if self.extended else ())
        self.num_nodes = 2 * base - 1
        node_labels = tuple(f"node{k}" for k in range(self.num_nodes))
        decisions = []
        for prefix in [*node_labels, "inject"]:
            decisions += [
                schema.Decision(f"{prefix}/combination", schema.CHOICE,
                                self.combinations),
                schema.Decision(f"{prefix}/activation", schema.CHOICE,
                                self.activations),
            ]
        decisions += [
            schema.Decision("cell_indices/c_t", schema.CHOICE, node_labels),
            schema.Decision("cell_indices/inject", schema.CHOICE,
                            node_labels),
        ]
        super().__init__(decisions, {"base": base, "extended": self.extended})

    def layout_help(self):
        return (f"{self.num_nodes} nodes x [combination, activation], "
                f"inject [combination, activation], [c_t node, inject node]")

    def size_formula(self) -> int:
        per_node = len(self.combinations) * len(self.activations)
        return per_node ** (self.num_nodes + 1) * self.num_nodes ** 2

    def decode(self, arch) -> TreeCell:
        v = self.values(arch)

        def pair(prefix):
            return (self.combinations[v[f"{prefix}/combination"]],
                    self.activations[v[f"{prefix}/activation"]])

        return TreeCell(
            self.base,
            tuple(pair(f"node{k}") for k in range(self.num_nodes)),
            pair("inject"), v["cell_indices/c_t"], v["cell_indices/inject"])

    def from_cell(self, cell: TreeCell):
        """The architecture of a decoded cell (names to tokens)."""
        tokens = []
        for where, (comb, act) in [
                *((f"node{k}", n) for k, n in enumerate(cell.nodes)),
                ("inject", cell.inject)]:
            tokens += [
                schema.label_index(self.name, "combination", where,
                                   self.combinations, comb),
                schema.label_index(self.name, "activation", where,
                                   self.activations, act)]
        return self.from_tokens(tokens + [cell.cell_node, cell.inject_node])
