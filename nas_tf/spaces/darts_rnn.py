"""The DARTS recurrent cell space in genotype form (Liu et al. 2018).

A derived DARTS recurrent cell keeps, for each of its ``steps`` nodes (8 in
``rnn/model_search.py``), the single strongest incoming edge and its
strongest op other than ``none`` (k = 1, paper sec. 2.4): one predecessor
and one of tanh, relu, sigmoid, identity. Node 0 is always tanh of
``[x_t, h_{t-1}]``.

Text is the DARTS ``Genotype(recurrent=[('op', predecessor), ...],
concat=...)`` of ``rnn/genotypes.py``, so published genotypes paste in
unchanged. ``concat`` must be the space's averaging rule: ``range(1,
steps + 1)`` for ``average="all"`` (every DARTS cell), the loose ends for
``average="loose_ends"`` (the ENAS cell as DARTS writes it). Plain integer
tokens ``[p_1, f_1, ...]`` are read too.
"""

import math

from nas_tf.spaces import genotype_text
from nas_tf.spaces import recurrent_dag
from nas_tf.spaces import schema

# rnn/genotypes.py PRIMITIVES, in order; derived cells never hold 'none'.
PRIMITIVES = ("none", "tanh", "relu", "sigmoid", "identity")
ACTIVATIONS = PRIMITIVES[1:]


class DartsRnnSpace(recurrent_dag.RecurrentDagSpace):
    """DARTS recurrent cells with ``steps`` nodes after node 0."""

    name = "darts_rnn"

    def __init__(self, steps: int = 8, average: str = "all"):
        schema.check_count("darts_rnn", "steps", steps)
        self.steps = steps
        super().__init__(steps, ACTIVATIONS, False, average,
                         {"steps": steps, "average": average})

    def layout_help(self):
        return f"[p_i, f_i] for nodes 1..{self.steps}"

    def size_formula(self) -> int:
        return len(ACTIVATIONS) ** self.steps * math.factorial(self.steps)

    def format(self, arch):
        dag = self.decode(arch)
        edges = [(act, pred) for pred, act in dag.nodes]
        if self.average == "all":
            concat = f"range(1, {self.steps + 1})"
        else:
            concat = repr(list(dag.average))
        return f"Genotype(recurrent={edges!r}, concat={concat})"

    def parse(self, text: str):
        if not text.strip().startswith("Genotype"):
            return self.from_storage(schema.parse_ints(text, self.name))
        fields = genotype_text.genotype_fields(text, self.name,
                                               ("recurrent", "concat"))
        edges = fields["recurrent"]
        if not isinstance(edges, (list, tuple)) or len(edges) != self.steps:
            raise schema.SpaceError(
                f"darts_rnn: recurrent = {edges!r}; expected a list of "
                f"{self.steps} ('activation', predecessor) pairs, one per "
                f"node (steps={self.steps})")
        nodes = []
        for i, entry in enumerate(edges, start=1):
            act, pred = genotype_text.check_edge(
                self.name, f"recurrent[{i - 1}]", entry, ACTIVATIONS)
            if not 0 <= pred < i:
                raise schema.SpaceError(
                    f"darts_rnn: recurrent[{i - 1}] = {entry!r}: node index "
                    f"pointing forward; node {i} may read nodes 0..{i - 1}")
            nodes.append((pred, act))
        arch = self.from_nodes(nodes)
        concat = genotype_text.check_index_list(self.name, "concat",
                                                fields["concat"])
        expected = self.decode(arch).average
        if concat != expected:
            other = [a for a in recurrent_dag.AVERAGES if a != self.average]
            hint = ""
            if concat == recurrent_dag.averaged_nodes(
                    [p for p, _ in nodes], other[0]):
                hint = f"; this genotype needs average={other[0]!r}"
            raise schema.SpaceError(
                f"darts_rnn: concat={list(concat)}; with average="
                f"{self.average!r} the cell averages {list(expected)}{hint}")
        return arch
