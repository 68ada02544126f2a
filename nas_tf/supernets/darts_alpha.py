"""DARTS architecture parameters (alpha) and the genotypes derived from
them.

Alpha is kept apart from the network's weights, as in quark0/darts where
the alphas are plain tensors outside ``model.parameters()``: its own
variables (created in the strategy's scope, so mirrored like the weights
but updated by their own optimizer from all-reduced gradients), never
touched by the weights' decay or clipping.

``mixing()`` turns alpha into the weights the supernets take: a softmax
over each edge's ops (DARTS), or independent sigmoids (Fair DARTS), and
with PC-DARTS's edge normalisation a softmax of beta over each node's
incoming edges.
"""

import itertools

import numpy as np
import tensorflow as tf

MIXINGS = ("softmax", "sigmoid")


def node_edges(num_edges_per_node):
    """(start, end) row ranges of each node's incoming edges."""
    ranges, start = [], 0
    for n in num_edges_per_node:
        ranges.append((start, start + n))
        start += n
    return ranges


class ArchitectureWeights(tf.Module):
    """Alpha of each cell kind, and optionally PC-DARTS's beta.

    Args:
      kinds: Cell kinds, e.g. ("normal", "reduce") or ("recurrent",).
      num_ops: Ops per edge (columns of alpha).
      edges_per_node: Incoming edges of each node, in row order (CNN: 2, 3,
        4, 5; RNN: 1, 2, ..., 8).
      seed: Seed of the initial values.
      init_scale: Alpha starts as ``init_scale * N(0, 1)`` (1e-3,
        ``model_search.py`` ``_initialize_alphas``; the paper says zero).
      edge_normalization: PC-DARTS's beta, one per edge, also 1e-3 * N(0,
        1) (PC-DARTS ``model_search.py``).
      dtype: Of the variables.
    """

    def __init__(self, kinds, num_ops, edges_per_node, seed=0,
                 init_scale=1e-3, edge_normalization=False,
                 dtype=tf.float32):
        super().__init__(name="architecture")
        self.kinds = tuple(kinds)
        self.nodes = node_edges(edges_per_node)
        self.num_edges = sum(edges_per_node)
        rng = np.random.default_rng(seed)
        self.alphas = {}
        self.betas = {}
        for kind in self.kinds:
            self.alphas[kind] = tf.Variable(
                init_scale * rng.standard_normal((self.num_edges, num_ops)),
                dtype=dtype, name=f"alpha_{kind}")
            if edge_normalization:
                self.betas[kind] = tf.Variable(
                    init_scale * rng.standard_normal(self.num_edges),
                    dtype=dtype, name=f"beta_{kind}")

    @property
    def variables_list(self) -> list:
        """Alpha (and beta) in a fixed order: what the architecture's
        optimizer trains."""
        return ([self.alphas[k] for k in self.kinds] +
                [self.betas[k] for k in self.kinds if k in self.betas])

    def edge_weights(self, kind, beta=None):
        """Softmax of beta over each node's incoming edges, concatenated."""
        beta = self.betas[kind] if beta is None else beta
        return tf.concat([tf.nn.softmax(beta[a:b]) for a, b in self.nodes],
                         axis=0)

    def mixing(self, mode="softmax", values=None) -> dict:
        """The supernet's ``mixing`` dict; ``values`` (in
        ``variables_list`` order) replaces the variables, e.g. by tensors
        a tape watches."""
        if mode not in MIXINGS:
            raise ValueError(f"mixing mode {mode!r}; allowed: {MIXINGS}")
        values = list(self.variables_list if values is None else values)
        alphas = dict(zip(self.kinds, values[:len(self.kinds)]))
        betas = dict(zip([k for k in self.kinds if k in self.betas],
                         values[len(self.kinds):]))
        out = {}
        for kind in self.kinds:
            a = alphas[kind]
            out[kind] = (tf.nn.softmax(a, axis=-1) if mode == "softmax"
                         else tf.sigmoid(a))
            if kind in betas:
                out[f"{kind}_edges"] = self.edge_weights(kind, betas[kind])
        return out

    def numpy_weights(self, mode="softmax") -> dict:
        """Each kind's op weights, multiplied by its edge weights with edge
        normalisation (what PC-DARTS's ``genotype()`` ranks), as arrays."""
        mixing = self.mixing(mode)
        out = {}
        for kind in self.kinds:
            w = mixing[kind].numpy()
            if f"{kind}_edges" in mixing:
                w = w * mixing[f"{kind}_edges"].numpy()[:, None]
            out[kind] = w
        return out


def strongest_edges(weights, nodes, keep, none_column=0):
    """``model_search.py`` ``genotype()._parse``: for each node, its
    ``keep`` incoming edges whose strongest op other than ``none`` is
    strongest, each with that op: a list per node of (source, op column),
    strongest first. Ties go to the lower index, as Python's stable sort
    and the original's strict ``>`` do."""
    result = []
    for start, end in nodes:
        rows = weights[start:end]
        ops = [k for k in range(rows.shape[1]) if k != none_column]
        strength = [max(rows[j, k] for k in ops) for j in range(len(rows))]
        order = sorted(range(len(rows)), key=lambda j: -strength[j])[:keep]
        picked = []
        for j in order:
            best = ops[0]
            for k in ops:
                if rows[j, k] > rows[j, best]:
                    best = k
            picked.append((j, best))
        result.append(picked)
    return result


def derive_cnn(space, weights: dict):
    """The ``darts_cnn`` architecture of ``weights`` (kind -> [edges, 8]
    array): each node keeps its top-2 edges (k = 2), each with its
    strongest op other than ``none``."""
    nodes = node_edges([i + 2 for i in range(space.steps)])
    tokens = []
    for kind in ("normal", "reduce"):
        for i, picked in enumerate(strongest_edges(weights[kind], nodes, 2)):
            (a, op_a), (b, op_b) = sorted(picked)
            pairs = list(itertools.combinations(range(i + 2), 2))
            # Token values index the space's ops, which leave 'none' out.
            tokens += [pairs.index((a, b)), op_a - 1, op_b - 1]
    return space.from_tokens(tokens)


def derive_rnn(space, weights):
    """The ``darts_rnn`` architecture of ``weights`` ([edges, 5] array):
    each node keeps its single strongest edge (k = 1, ``rnn/model_search.py``
    ``genotype()``) and that edge's strongest op other than ``none``."""
    nodes = node_edges(range(1, space.steps + 1))
    picked = strongest_edges(weights, nodes, 1)
    # Activation tokens index the space's activations, which leave 'none'
    # out.
    return space.from_nodes([(j, space.activations[k - 1])
                             for [(j, k)] in picked])
