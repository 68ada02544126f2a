"""Regularized (aging) evolution (Real et al. 2018; the authors' colab).

The first ``population_size`` children are uniform samples. Afterwards each
child is a mutation of the best of ``sample_size`` individuals drawn
uniformly *with replacement* from the population, and the oldest individual
dies. Because exactly one dies per child born, the population is always the
last ``population_size`` children of the history; that is how this class
keeps it, so a resumed run needs no extra state.

A mutation changes one decision: a choice or node decision gets a different
value, a skip-connection decision flips one bit (the paper's op and
hidden-state mutations, one per child).
"""

from nas_tf.spaces import schema
from nas_tf.strategies import base

# Tries before giving up on finding a valid mutation of a parent (spaces
# with cross-decision constraints may reject a mutation).
_MAX_MUTATION_TRIES = 100



def check_sizes(population_size: int, sample_size: int) -> None:
    if population_size < 1 or sample_size < 1:
        raise ValueError(
            f"evolution needs population_size >= 1 and sample_size >= 1; "
            f"got {population_size} and {sample_size}")


class RegularizedEvolution(base.SearchStrategy):
    """Aging evolution with population ``P`` and tournament size ``S``.

    Defaults are the paper's for the NASNet space as ORIGINALS records
    them (P = 100, S = 25, recalled); the colab's toy run uses S = 10.
    """

    name = "evolution"

    def __init__(self, seed, population_size=100, sample_size=25):
        super().__init__(seed)
        check_sizes(population_size, sample_size)
        self.population_size = population_size
        self.sample_size = sample_size

    def propose(self, space, count, batch_index, history):
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
            out.append(mutate(space, parent["decision_values"], rng))
        return out


def mutate(space, tokens, rng) -> tuple:
    """``tokens`` with one decision changed (see module docstring)."""
    mutable = [i for i, d in enumerate(space.decisions)
               if d.kind == schema.SKIPS or len(d.choices) > 1]
    if not mutable:
        raise ValueError(f"{space!r} has no decision with two values")
    offsets = []
    total = 0
    for d in space.decisions:
        offsets.append(total)
        total += d.num_tokens
    for _ in range(_MAX_MUTATION_TRIES):
        which = rng.choice(mutable)
        d = space.decisions[which]
        child = list(tokens)
        if d.kind == schema.SKIPS:
            bit = offsets[which] + rng.randrange(len(d.choices))
            child[bit] = 1 - child[bit]
        else:
            pos = offsets[which]
            others = [v for v in range(len(d.choices)) if v != child[pos]]
            child[pos] = rng.choice(others)
        try:
            return space.from_tokens(child).tokens
        except schema.SpaceError:
            continue
    raise ValueError(f"no valid mutation of {tokens} found in "
                     f"{_MAX_MUTATION_TRIES} tries")
