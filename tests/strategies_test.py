"""Random search, regularized evolution and the NAS-RL strategy."""

import collections
import dataclasses
import math
import random

import numpy as np
import pytest

from nas_tf import controller
from nas_tf.controller import reinforce
from nas_tf import spaces
from nas_tf import strategies
from nas_tf.search import search_config
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


def changed_decisions(space, a, b):
    """Names of the decisions whose values differ between the token tuples
    ``a`` and ``b`` (decision order)."""
    va = space.values(space.from_tokens(a))
    vb = space.values(space.from_tokens(b))
    return [name for name in va if va[name] != vb[name]]


def _within(count, expected_share, total, sigmas=4.5):
    """``count`` of ``total`` draws is the binomial mean of
    ``expected_share`` within ``sigmas`` standard deviations."""
    mean = expected_share * total
    sd = math.sqrt(total * expected_share * (1 - expected_share))
    return abs(count - mean) <= sigmas * sd


def _tally(space, total, key, **options):
    """Mutates ``total`` random parents; counts ``key(name)`` of the one
    changed decision (``None`` for an unchanged child)."""
    rng = random.Random(0)
    counts = collections.Counter()
    for i in range(total):
        parent = space.sample(i).tokens
        child = strategies.mutate(space, parent, rng, **options)
        changed = changed_decisions(space, parent, child)
        assert len(changed) <= 1
        counts[key(changed[0]) if changed else None] += 1
    return counts


# -- mutations ---------------------------------------------------------------

def test_a_mutation_changes_exactly_one_decision(small_space):
    rng = random.Random(0)
    decisions = {d.name: d for d in small_space.decisions}
    for i in range(40):
        parent = small_space.sample(i).tokens
        child = strategies.mutate(small_space, parent, rng,
                                  identity_probability=0.0)
        changed = changed_decisions(small_space, parent, child)
        assert len(changed) == 1
        if decisions[changed[0]].kind == schema.SKIPS:
            diff = np.abs(np.array(parent) - np.array(child)).sum()
            assert diff == 1  # one bit flipped


def test_identity_mutation_leaves_the_parent():
    space = spaces.get_space("nasnet", num_blocks=2)
    rng = random.Random(0)
    for i in range(20):
        parent = space.sample(i).tokens
        assert strategies.mutate(space, parent, rng,
                                 identity_probability=1.0) == parent
    # The paper's 0.05 by default.
    counts = _tally(space, 2000, lambda name: "changed")
    assert _within(counts[None], 0.05, 2000)


def test_nasnet_mutations_follow_the_paper():
    # Real et al. 2019: hidden-state and op mutations equally likely; each
    # picks a cell, a pairwise combination, then one element of the pair,
    # uniformly. combine is NASNet's, not the paper's: never mutated.
    space = spaces.get_space("nasnet", num_blocks=2)
    total = 2000
    parts = _tally(space, total, lambda name: tuple(name.split("/")),
                   identity_probability=0.0)
    assert None not in parts

    def share(test):
        return sum(n for key, n in parts.items() if test(key))

    assert share(lambda k: k[2] == "combine") == 0
    assert _within(share(lambda k: k[2].startswith("input")), 1 / 2, total)
    assert _within(share(lambda k: k[0] == "normal"), 1 / 2, total)
    for cell in ("normal", "reduce"):
        for block in ("block0", "block1"):
            assert _within(share(lambda k: k[:2] == (cell, block)), 1 / 4,
                           total)
    for element in ("input1", "input2", "op1", "op2"):
        assert _within(share(lambda k: k[2] == element), 1 / 4, total)


def test_combine_is_mutated_only_when_asked():
    space = spaces.get_space("nasnet", num_blocks=2)
    total = 2000
    last = _tally(space, total, lambda name: name.split("/")[-1],
                  identity_probability=0.0, mutate_combine=True)
    # One more op decision of its block: half the mutations change an op,
    # a third of those the combination.
    assert _within(last["combine"], 1 / 6, total)
    assert _within(last["input1"] + last["input2"], 1 / 2, total)


def test_a_layer_plays_the_role_of_a_pairwise_combination():
    # Hidden state = the layer's skip connections, op = its filter height,
    # width or count: half the mutations flip a skip bit, spread over the
    # layers that have skips; op mutations pick a layer, then a decision.
    space = spaces.get_space("nasrl_cnn", num_layers=3)
    total = 2000
    names = _tally(space, total, lambda name: name, identity_probability=0.0)
    for layer in ("layer1", "layer2"):
        assert _within(names[f"{layer}/inputs"], 1 / 4, total)
    for layer in range(3):
        for what in ("filter_height", "filter_width", "num_filters"):
            assert _within(names[f"layer{layer}/{what}"], 1 / 18, total)
    # One layer has no skips: every mutation changes an op decision.
    one_layer = spaces.get_space("nasrl_cnn", num_layers=1)
    names = _tally(one_layer, 50, lambda name: name, identity_probability=0.0)
    assert None not in names and sum(names.values()) == 50


def test_evolution_rejects_bad_settings():
    with pytest.raises(ValueError, match="population_size >= 1"):
        strategies.RegularizedEvolution(seed=0, population_size=0)
    with pytest.raises(ValueError, match=r"identity_mutation_probability="
                       r"1.5; .* allowed: 0 to 1"):
        strategies.RegularizedEvolution(seed=0, identity_probability=1.5)
    evolution = search_config.SearchConfig(strategy="evolution",
                                           dataset="dominoes")
    assert evolution.batch_size == 1  # the authors' sequential algorithm
    with pytest.raises(ValueError, match="evolution_batch=0; it must be at "
                       "least 1"):
        search_config.check_search_config(
            dataclasses.replace(evolution, evolution_batch=0))
    with pytest.raises(ValueError, match="identity_mutation_probability=-0.1"):
        search_config.check_search_config(
            dataclasses.replace(evolution, identity_mutation_probability=-0.1))


# -- tournaments -------------------------------------------------------------

def _far_apart(space, count):
    """``count`` architectures of ``space`` that differ in every choice
    decision, so that a child, at most one decision from its parent, names
    it."""
    out = []
    for j in range(count):
        tokens = []
        for d in space.decisions:
            if d.kind == schema.SKIPS:
                tokens.extend([j % 2] * len(d.choices))
            else:
                tokens.append(j % len(d.choices))
        out.append(space.from_tokens(tokens).tokens)
    return out


def _parent_of(space, child, members):
    near = [j for j, m in enumerate(members)
            if len(changed_decisions(space, m, child)) <= 1]
    assert len(near) <= 1
    return near[0] if near else None


_SPACE = spaces.get_space("nasrl_cnn", num_layers=3)
_MEMBERS = _far_apart(_SPACE, 4)
# Member 1 is the best, member 2 the worst.
_REWARDS = [0.3, 0.9, 0.1, 0.5]
_HISTORY = [{"decision_values": m, "reward": r}
            for m, r in zip(_MEMBERS, _REWARDS)]


def test_the_parent_is_the_best_contender():
    evolution = strategies.RegularizedEvolution(seed=1, population_size=4,
                                                sample_size=60)
    # 60 draws with replacement from 4 individuals miss the best with
    # probability (3/4)**60 < 1e-7: every child must come from member 1.
    # Picking the worst or a random contender would not.
    children = evolution.propose(_SPACE, 20, 1, _HISTORY)
    assert [_parent_of(_SPACE, c, _MEMBERS) for c in children] == [1] * 20


def test_contenders_are_drawn_with_replacement():
    # S = 2 from P = 4 with replacement: the k-th worst individual is the
    # parent with probability (2k - 1) / 16 (1, 3, 5, 7 sixteenths). Without
    # replacement the best would win half the tournaments and the worst none.
    evolution = strategies.RegularizedEvolution(seed=2, population_size=4,
                                                sample_size=2)
    total = 2400
    children = evolution.propose(_SPACE, total, 0, _HISTORY)
    parents = collections.Counter(_parent_of(_SPACE, c, _MEMBERS)
                                  for c in children)
    ranked = sorted(range(4), key=lambda j: _REWARDS[j])
    for k, member in enumerate(ranked, start=1):
        assert _within(parents[member], (2 * k - 1) / 16, total)


def test_only_the_last_population_size_children_are_parents():
    # Aging: members 0 and 1 (the best rewards) have left a population of
    # two; member 3 is the best of the two that remain.
    evolution = strategies.RegularizedEvolution(seed=1, population_size=2,
                                                sample_size=60)
    history = [dict(h, reward=r) for h, r in
               zip(_HISTORY, [1.0, 0.95, 0.1, 0.2])]
    children = evolution.propose(_SPACE, 10, 7, history)
    assert [_parent_of(_SPACE, c, _MEMBERS) for c in children] == [3] * 10


def test_evolution_starts_with_uniform_samples_then_mutates():
    evolution = strategies.RegularizedEvolution(seed=1, population_size=4,
                                                sample_size=60)
    # Three individuals so far: child 3 completes the population with a
    # uniform sample, children 4 and 5 are mutations of the best one seen.
    children = evolution.propose(_SPACE, 3, 1, _HISTORY[:3])
    assert [_parent_of(_SPACE, c, _MEMBERS) for c in children] == [
        None, 1, 1]
    assert children == evolution.propose(_SPACE, 3, 1, _HISTORY[:3])
    assert children != evolution.propose(_SPACE, 3, 2, _HISTORY[:3])
    samples = np.array(strategies.RegularizedEvolution(
        seed=1, population_size=4000).propose(_SPACE, 2000, 0, []))
    position = [d.name for d in _SPACE.decisions].index("layer1/num_filters")
    counts = np.bincount(samples[:, position], minlength=4)
    assert counts.min() > 420 and counts.max() < 580


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
        before = both.controller.score(space, tokens).log_prob.numpy()
        both.learn(space, tokens, [0.5, 0.7])
        # Both advantages are positive (the baseline starts at 0): the
        # update makes both proposals likelier in either space.
        after = both.controller.score(space, tokens).log_prob.numpy()
        assert (after > before).all(), (before, after)
