"""Regularized (aging) evolution (Real, Aggarwal, Huang, Le, "Regularized
Evolution for Image Classifier Architecture Search", AAAI 2019, arXiv
1802.01548), as the paper's sections "Evolutionary Algorithm" and "Methods
Details" and the authors' colab (google-research
``evolution/regularized_evolution_algorithm/regularized_evolution.ipynb``)
describe it.

Selection. The first ``population_size`` (P) children are uniform samples.
Afterwards each child is a mutation of the best of ``sample_size`` (S)
individuals drawn uniformly *with replacement* from the population, and the
oldest individual dies. Because exactly one dies per child born, the
population is always the last P children of the history; that is how this
class keeps it, so a resumed run needs no extra state.

Batches. The colab is sequential: a child is trained and joins the
population (and the oldest leaves) before the next tournament. A run does
that with batches of one child, the default
(``SearchConfig.evolution_batch`` = 1). The paper distributes the loop over
many workers (section "Evolutionary Algorithm"): each worker proposes from
the population it sees while the others' children are still training. A
batch of ``b`` > 1 children all proposed from the history before the batch
is that asynchronous form, with ``b`` workers.

Mutations (paper, "Evolutionary Algorithm"). Each child gets exactly one of
three mutations, chosen at random: the identity (no change) with probability
``identity_probability`` (0.05, a small value the authors fixed without
tuning, "Methods Details"), otherwise, with equal probabilities (ibid.), a
hidden-state mutation or an op mutation. Both first pick the normal or the
reduction cell, then one of the cell's pairwise combinations, then one of
its two elements, uniformly; the hidden-state mutation replaces that
element's input by another hidden state of the cell, the op mutation
replaces its op.

How the rule reads every space here. A decision named ``"cell/unit/x"``
belongs to pairwise combination ``unit`` of ``cell`` (``normal/block2/op1``:
NASNet's normal cell, block 2); a name ``"unit/x"`` belongs to ``unit`` of
the space's only cell. A layer-wise space (``layer3/...``) thus has one cell
whose combinations are its layers, and a recurrent cell's combinations are
its nodes. A decision is a *hidden-state* decision when it says where inputs
come from: node picks, skip connections (a mutation flips one bit, adding or
removing one input), DARTS's choice of a node's input pair (``inputs``, one
decision, so its mutation draws another pair) and the NAS-RL cell's
``cell_indices``. Every other choice (ops, filter sizes, activations, the
NAS-RL cell's add or multiply) is an *op* decision, except NASNet's
``combine`` (add or concat): the paper's cells always add, so it is kept
from the parent unless ``mutate_combine`` makes it one more op decision of
its block. Choosing an element of a pair and then its hidden state (or op)
is choosing uniformly among the combination's hidden-state (or op)
decisions, which is what this module does, skipping decisions with a single
value. A mutation kind that no decision of the space has (no skip
connections in a one-layer NAS-RL network) is not drawn; cells and
combinations without a decision of the drawn kind are not picked. The new
value is drawn among the values other than the current one (the paper
replaces a hidden state by another one; for ops it does not say whether the
current op may be drawn again, here it may not, so only the identity
mutation copies its parent). Inputs are always earlier states, so no
mutation makes a loop.
"""

import dataclasses

from nas_tf.spaces import schema
from nas_tf.strategies import base

# Tries before giving up on finding a valid mutation of a parent (spaces
# with cross-decision constraints may reject a mutation).
_MAX_MUTATION_TRIES = 100

HIDDEN_STATE = "hidden_state"
OP = "op"

# Choice decisions (by the last part of their name) that pick inputs, not
# ops: DARTS's input pair of a node, the NAS-RL cell's c_t and c_{t-1} nodes.
_HIDDEN_STATE_CHOICES = ("inputs", "c_t", "inject")
_COMBINE = "combine"


def check_settings(population_size: int, sample_size: int,
                   identity_probability: float = 0.05) -> None:
    if population_size < 1 or sample_size < 1:
        raise ValueError(
            f"evolution needs population_size >= 1 and sample_size >= 1; "
            f"got {population_size} and {sample_size}")
    if not 0.0 <= identity_probability <= 1.0:
        raise ValueError(
            f"identity_mutation_probability={identity_probability}; it is a "
            f"probability, allowed: 0 to 1")


class RegularizedEvolution(base.SearchStrategy):
    """Aging evolution with population ``P`` and tournament size ``S``.

    Defaults are the paper's ("Methods Details": evolved with P = 100,
    S = 25, the best of the five P/S settings it tried; identity mutation
    0.05); the colab's toy run uses S = 10.
    """

    name = "evolution"

    def __init__(self, seed, population_size=100, sample_size=25,
                 identity_probability=0.05, mutate_combine=False):
        super().__init__(seed)
        check_settings(population_size, sample_size, identity_probability)
        self.population_size = population_size
        self.sample_size = sample_size
        self.identity_probability = identity_probability
        self.mutate_combine = mutate_combine

    def propose(self, space, count, batch_index, history):
        """``count`` children from one view of the population: the history
        before this batch (see the module docstring on batches)."""
        rng = self.rng(batch_index)
        population = list(history[-self.population_size:])
        out = []
        for i in range(count):
            if len(history) + i < self.population_size:
                out.append(space.sample(rng).tokens)
                continue
            contenders = [rng.choice(population)
                          for _ in range(self.sample_size)]
            parent = max(contenders, key=lambda r: r["reward"])
            out.append(mutate(space, parent["decision_values"], rng,
                              self.identity_probability,
                              self.mutate_combine))
        return out


@dataclasses.dataclass(frozen=True)
class _Mutable:
    """A decision a mutation may change, and where it sits."""

    index: int  # in space.decisions
    offset: int  # of its first token
    kind: str  # HIDDEN_STATE or OP
    cell: str
    unit: str  # the pairwise combination (block, node, layer)


def mutable_decisions(space, mutate_combine=False) -> list:
    """The decisions of ``space`` a mutation may change, with their kind,
    cell and pairwise combination (see the module docstring)."""
    out = []
    offset = 0
    for index, d in enumerate(space.decisions):
        start, offset = offset, offset + d.num_tokens
        parts = d.name.split("/")
        last = parts[-1]
        if len(d.choices) < (1 if d.kind == schema.SKIPS else 2):
            continue
        if last == _COMBINE and not mutate_combine:
            continue
        picks_inputs = d.kind in (schema.NODE, schema.SKIPS) or (
            last in _HIDDEN_STATE_CHOICES)
        out.append(_Mutable(
            index, start, HIDDEN_STATE if picks_inputs else OP,
            cell=parts[0] if len(parts) > 2 else "",
            unit="/".join(parts[:-1])))
    return out


def _pick(rng, items, key):
    """A uniform choice of a ``key`` value among ``items``, then the items
    that have it."""
    value = rng.choice(sorted({key(m) for m in items}))
    return [m for m in items if key(m) == value]


def mutate(space, tokens, rng, identity_probability=0.05,
           mutate_combine=False) -> tuple:
    """A child of ``tokens``: the parent itself (the identity mutation), or
    the parent with one decision changed (see the module docstring)."""
    mutable = mutable_decisions(space, mutate_combine)
    if not mutable:
        raise ValueError(f"{space!r} has no decision with two values")
    if rng.random() < identity_probability:
        return space.from_tokens(tokens).tokens
    for _ in range(_MAX_MUTATION_TRIES):
        candidates = _pick(rng, mutable, lambda m: m.kind)
        candidates = _pick(rng, candidates, lambda m: m.cell)
        candidates = _pick(rng, candidates, lambda m: m.unit)
        chosen = rng.choice(candidates)
        d = space.decisions[chosen.index]
        child = list(tokens)
        if d.kind == schema.SKIPS:
            bit = chosen.offset + rng.randrange(len(d.choices))
            child[bit] = 1 - child[bit]
        else:
            pos = chosen.offset
            others = [v for v in range(len(d.choices)) if v != child[pos]]
            child[pos] = rng.choice(others)
        try:
            return space.from_tokens(child).tokens
        except schema.SpaceError:
            continue
    raise ValueError(f"no valid mutation of {tokens} found in "
                     f"{_MAX_MUTATION_TRIES} tries")
