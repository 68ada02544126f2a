"""The NASNet cell space (Zoph et al. 2017, arXiv 1707.07012, sec. 3).

A cell has B blocks (B=5 in the paper). Each block takes five decisions in
this order: hidden state 1, hidden state 2, op for state 1, op for state 2,
combination (add or depth concat). The normal cell's 5B decisions come first,
then the reduction cell's.

Token string: ``2 x 5B`` integers in that order. Hidden-state indices follow
the slim code (``nasnet_utils.py``): 0 = h_i (output of the previous cell),
1 = h_{i-1} (the cell before), 2.. = earlier blocks. The cell output is the
depth concat of the states no block reads (paper sec. 3).

The published NASNet-A cells do not follow that output rule: slim hand-sets
``used_hiddenstates``, so the normal cell also concatenates h_{i-1} (6F
channels) and the reduction cell also concatenates state 3. Such an
architecture carries its outputs explicitly, written after the tokens as
``; normal_concat=1,2,3,4,5,6 reduce_concat=3,4,5,6`` (slim indices).
"""

import math

from nas_tf.spaces import cells
from nas_tf.spaces import schema

# The 13 ops in the paper's listing order (sec. 3); the token is the index.
OPS = (
    "identity",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)
COMBINE = ("add", "concat")
CELLS = ("normal", "reduce")
PER_BLOCK = ("input1", "input2", "op1", "op2", "combine")


def _to_common(slim_index: int) -> int:
    """slim numbers (0=h_i, 1=h_{i-1}) -> cells.py numbers (0=k-2, 1=k-1)."""
    return {0: 1, 1: 0}.get(slim_index, slim_index)


class NasnetSpace(schema.SearchSpace):
    """Normal + reduction cells of ``num_blocks`` blocks over the 13 ops."""

    name = "nasnet"
    family = "nasnet"

    def __init__(self, num_blocks: int = 5):
        schema.check_count("nasnet", "num_blocks", num_blocks)
        self.num_blocks = num_blocks
        decisions = []
        for cell in CELLS:
            for b in range(num_blocks):
                states = tuple(range(b + 2))
                prefix = f"{cell}/block{b}"
                decisions += [
                    schema.Decision(f"{prefix}/input1", schema.NODE, states),
                    schema.Decision(f"{prefix}/input2", schema.NODE, states),
                    schema.Decision(f"{prefix}/op1", schema.CHOICE, OPS),
                    schema.Decision(f"{prefix}/op2", schema.CHOICE, OPS),
                    schema.Decision(f"{prefix}/combine", schema.CHOICE,
                                    COMBINE),
                ]
        super().__init__(decisions, {"num_blocks": num_blocks})

    def layout_help(self):
        return (f"2 cells x {self.num_blocks} blocks x [input1, input2, op1, "
                f"op2, combine]")

    def size_formula(self) -> int:
        per_cell = math.prod((b + 2) ** 2 * len(OPS) ** 2 * len(COMBINE)
                             for b in range(self.num_blocks))
        return per_cell ** 2

    # -- text with optional explicit outputs --------------------------------
    def parse(self, text: str):
        tokens_text, _, concat_text = text.partition(";")
        values = schema.parse_ints(tokens_text, self.name)
        arch = self.from_storage(values)
        if not concat_text.strip():
            return arch
        return self.from_tokens(arch.tokens,
                                self._parse_concat(concat_text))

    def format(self, arch):
        text = super().format(arch)
        if arch.cell_concat is None:
            return text
        parts = [f"{cell}_concat={','.join(map(str, states))}"
                 for cell, states in zip(CELLS, arch.cell_concat)]
        return f"{text} ; {' '.join(parts)}"

    def _parse_concat(self, text):
        found = {}
        for item in text.split():
            key, sep, value = item.partition("=")
            if not sep or key not in ("normal_concat", "reduce_concat"):
                raise schema.SpaceError(
                    f"nasnet: {item!r} after ';' is not understood; write "
                    f"normal_concat=I,J,.. reduce_concat=I,J,..")
            if key in found:
                raise schema.SpaceError(f"nasnet: {key} is given twice")
            try:
                found[key] = tuple(int(v) for v in value.split(","))
            except ValueError:
                raise schema.SpaceError(
                    f"nasnet: {key}={value!r} must be comma-separated "
                    f"state indices") from None
        missing = {"normal_concat", "reduce_concat"} - set(found)
        if missing:
            raise schema.SpaceError(
                f"nasnet: explicit outputs need both normal_concat and "
                f"reduce_concat; missing {', '.join(sorted(missing))}")
        return (found["normal_concat"], found["reduce_concat"])

    def check_architecture(self, arch):
        if arch.cell_concat is None:
            return
        num_states = self.num_blocks + 2
        for cell, states in zip(CELLS, arch.cell_concat):
            if not states or len(set(states)) != len(states):
                raise schema.SpaceError(
                    f"nasnet: {cell}_concat={states} must list distinct "
                    f"states")
            for s in states:
                if not 0 <= s < num_states:
                    raise schema.SpaceError(
                        f"nasnet: {cell}_concat names state {s}; allowed: "
                        f"0..{num_states - 1}")

    # -- decoding ------------------------------------------------------------
    def decode(self, arch) -> cells.CellPair:
        values = self.values(arch)
        decoded = []
        for c, cell in enumerate(CELLS):
            nodes = []
            for b in range(self.num_blocks):
                v = {k: values[f"{cell}/block{b}/{k}"] for k in PER_BLOCK}
                nodes.append(cells.Node(
                    inputs=(_to_common(v["input1"]), _to_common(v["input2"])),
                    ops=(OPS[v["op1"]], OPS[v["op2"]]),
                    combine=COMBINE[v["combine"]]))
            if arch.cell_concat is None:
                concat = cells.unused_states(nodes)
            else:
                concat = tuple(_to_common(s) for s in arch.cell_concat[c])
            decoded.append(cells.Cell(tuple(nodes), concat))
        return cells.CellPair(*decoded)
