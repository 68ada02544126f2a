"""Random search, regularized evolution and the NAS-RL strategy."""

import random

import numpy as np
import pytest

from nas_tf import controller
from nas_tf.controller import reinforce
from nas_tf import spaces
from nas_tf import strategies
from nas_tf.spaces import schema


def test_random_search_is_uniform_and_repeatable():
    space = spaces.get_space("enas_micro", num_nodes=2)
    search = strategies.RandomSearch(seed=3)
    batch = search.propose(space, 4, 0, [])
    assert batch == search.propose(space, 4, 0, [])
    assert batch != search.propose(space, 4, 1, [])
    for tokens in batch:
        space.from_tokens(tokens)
    # Every value of a 5-way choice shows up about equally often.
    many = np.array(search.propose(space, 2000, 5, []))
    position = [d.name for d in space.decisions].index("normal/node2/op1")
    counts = np.bincount(many[:, position], minlength=5)
    assert counts.min() > 330 and counts.max() < 470


def _changed_decisions(space, a, b):
    va = space.values(space.from_tokens(a))
    vb = space.values(space.from_tokens(b))
    return [name for name in va if va[name] != vb[name]]


@pytest.mark.parametrize("name,params", [
    ("nasnet", {"num_blocks": 2}), ("enas_macro", {"num_layers": 5}),
    ("darts_rnn", {"steps": 4})])
def test_mutation_changes_exactly_one_decision(name, params):
    space = spaces.get_space(name, **params)
    rng = random.Random(0)
    for i in range(50):
        parent = space.sample(i).tokens
        child = strategies.mutate(space, parent, rng)
        changed = _changed_decisions(space, parent, child)
        assert len(changed) == 1
        decision = {d.name: d for d in space.decisions}[changed[0]]
        if decision.kind == schema.SKIPS:
            diff = np.abs(np.array(parent) - np.array(child)).sum()
            assert diff == 1  # one bit flipped


def test_evolution_starts_random_then_mutates_the_tournament_winner():
    space = spaces.get_space("nasrl_cnn", num_layers=3)
    evolution = strategies.RegularizedEvolution(seed=1, population_size=4,
                                                sample_size=4)
    first = evolution.propose(space, 4, 0, [])
    history = [{"decision_values": t, "reward": r} for t, r in
               zip(first, [0.1, 0.9, 0.2, 0.3])]
    # S = P = 4 draws with replacement: the winner is almost surely the
    # best; every child differs from one member of the population by one
    # decision.
    children = evolution.propose(space, 3, 1, history)
    for child in children:
        parents = [h["decision_values"] for h in history
                   if len(_changed_decisions(space, h["decision_values"], child)) == 1]
        assert parents
    # Aging: with a longer history only the last P individuals are parents.
    old = [{"decision_values": space.sample(100 + i).tokens,
            "reward": 1.0}
           for i in range(4)]
    children = evolution.propose(space, 5, 2, old + history)
    for child in children:
        assert not any(
            len(_changed_decisions(space, h["decision_values"], child)) == 1
            for h in old if h["decision_values"] not in [x["decision_values"] for x in history])
    assert evolution.propose(space, 3, 1, history) == \
        evolution.propose(space, 3, 1, history)


def test_evolution_rejects_empty_population():
    with pytest.raises(ValueError, match="population_size >= 1"):
        strategies.RegularizedEvolution(seed=0, population_size=0)


def test_nasrl_strategy_refuses_a_space_it_was_not_given():
    # Skip connections need attention weights a one-layer space lacks; Adam
    # could not update weights created after it was built.
    one_layer = spaces.get_space("nasrl_cnn", num_layers=1)
    three_layers = spaces.get_space("nasrl_cnn", num_layers=3)
    search = strategies.NasrlStrategy(
        0, one_layer, controller.CONTROLLER_PRESETS["nasrl"],
        reinforce.ReinforceConfig(num_aggregate=2))
    with pytest.raises(ValueError, match="pass every space"):
        search.propose(three_layers, 2, 0, [])
    both = strategies.NasrlStrategy(
        0, [one_layer, three_layers], controller.CONTROLLER_PRESETS["nasrl"],
        reinforce.ReinforceConfig(num_aggregate=2))
    for space in (one_layer, three_layers):
        tokens = both.propose(space, 2, 0, [])
        both.learn(space, tokens, [0.5, 0.7])
