"""The decoded form shared by the cell spaces (NASNet, ENAS micro, DARTS).

States are numbered as in DARTS and ENAS: 0 is the output of cell k-2, 1 the
output of cell k-1, and 2.. the nodes of the cell in order. (NASNet's slim
code numbers the two inputs the other way round; ``spaces/nasnet.py``
translates.)
"""

import dataclasses
from typing import Tuple

NUM_INPUTS = 2


@dataclasses.dataclass(frozen=True)
class Node:
    """A node: two inputs, an op on each, and how the two are combined."""

    inputs: Tuple[int, int]
    ops: Tuple[str, str]
    combine: str = "add"


@dataclasses.dataclass(frozen=True)
class Cell:
    """A cell: its nodes and the states concatenated at its output."""

    nodes: Tuple[Node, ...]
    concat: Tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class CellPair:
    """A normal cell and a reduction cell."""

    normal: Cell
    reduce: Cell


def unused_states(nodes) -> Tuple[int, ...]:
    """States that no node reads, inputs included (NASNet paper sec. 3, ENAS
    micro code): the cell output concatenates exactly these."""
    used = {i for node in nodes for i in node.inputs}
    return tuple(i for i in range(NUM_INPUTS + len(nodes)) if i not in used)
