"""The ENAS macro space (Pham et al. 2018; authors' ``general_*.py``).

Layer k (0-based) takes an op, then k skip bits. The authors' flat arc
``[op_0, op_1, s, op_2, s, s, ...]`` has L + L(L-1)/2 integers; token strings
use it unchanged. Bit i of layer k refers to element i of the child's list
``[stem, out_0, .., out_{k-1}]``: bit 0 is the stem and bit i is layer i-1's
output. The immediately previous output is always the op's input and is not
among the bits (the controller attends over layers 0..k-1 instead: an index
offset of the original code, kept as is).
"""

from nas_tf.spaces import schema

# Op ids of general_child.py; ``num_branches`` keeps the first N (the final
# script uses 4: no pools).
OPS = ("conv_3x3", "sep_conv_3x3", "conv_5x5", "sep_conv_5x5", "avg_pool_3x3",
       "max_pool_3x3")


class EnasMacroSpace(schema.SearchSpace):
    """``num_layers`` layers, each an op among ``num_branches`` plus skips."""

    name = "enas_macro"
    family = "enas_macro"

    def __init__(self, num_layers: int = 12, num_branches: int = 6):
        # num_layers=12, num_branches=6: scripts/cifar10_macro_search.sh.
        schema.check_count("enas_macro", "num_layers", num_layers)
        if not 1 <= num_branches <= len(OPS):
            raise schema.SpaceError(
                f"enas_macro: num_branches={num_branches}; allowed: "
                f"1..{len(OPS)}")
        self.num_layers = num_layers
        self.ops = OPS[:num_branches]
        decisions = []
        for k in range(num_layers):
            decisions.append(
                schema.Decision(f"layer{k}/op", schema.CHOICE, self.ops))
            if k:
                sources = ("stem",) + tuple(f"layer{i}" for i in range(k - 1))
                decisions.append(
                    schema.Decision(f"layer{k}/skips", schema.SKIPS, sources))
        super().__init__(decisions, {"num_layers": num_layers,
                                     "num_branches": num_branches})

    def layout_help(self):
        return (f"{self.num_layers} layers x [op, k skip bits]: "
                f"L + L(L-1)/2 = {self.num_tokens}")

    def size_formula(self) -> int:
        n = self.num_layers
        return len(self.ops) ** n * 2 ** (n * (n - 1) // 2)

    def decode(self, arch):
        """Returns a list of (op name, skip bits) per layer."""
        values = self.values(arch)
        return [(self.ops[values[f"layer{k}/op"]],
                 values.get(f"layer{k}/skips", ()))
                for k in range(self.num_layers)]
