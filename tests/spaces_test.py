"""Search spaces: exact sizes, token layouts, sampling, published strings."""

import itertools
import math
import random

import pytest

from nas_tf import spaces
from nas_tf.spaces import darts_cnn
from nas_tf.spaces import enas_micro
from nas_tf.spaces import nasnet
from nas_tf.spaces.published import PUBLISHED


def test_enas_macro_size_is_6_pow_12_times_2_pow_66():
    # ORIGINALS 3.1: 6 ops per layer, layer k has k skip bits:
    # 0 + 1 + ... + 11 = 66 bits for 12 layers.
    space = spaces.get_space("enas_macro", num_layers=12)
    assert space.size() == 6 ** 12 * 2 ** 66
    assert space.num_tokens == 12 + 66


def test_enas_micro_size_counts_the_code_sampling_space():
    # ORIGINALS 3.1: node j (2..6) picks 2 of j inputs and 2 of 5 ops:
    # prod_j (5j)^2 = (5^5 * 6!)^2 per cell, squared for two cells.
    space = spaces.get_space("enas_micro")
    per_cell = math.prod((5 * j) ** 2 for j in range(2, 7))
    assert per_cell == (5 ** 5 * math.factorial(6)) ** 2
    assert space.size() == per_cell ** 2
    assert space.num_tokens == 40


def test_darts_size_counts_unordered_input_pairs():
    # ORIGINALS 4.1: per cell prod_{i=0..3} C(i+2, 2) * 7^2, both cells.
    space = spaces.get_space("darts_cnn")
    per_cell = math.prod(math.comb(i + 2, 2) * 7 ** 2 for i in range(4))
    assert space.size() == per_cell ** 2
    assert round(space.size() / 1e18, 2) == 1.08


def test_darts_size_equals_count_of_distinct_genotypes():
    # One node per cell: enumerate every token string, format it as a
    # genotype and count distinct genotypes.
    space = spaces.get_space("darts_cnn", steps=1)
    sizes = [d.size for d in space.decisions]
    texts = {space.format(space.from_tokens(t))
             for t in itertools.product(*map(range, sizes))}
    assert len(texts) == space.size() == 49 ** 2


def test_nasnet_size():
    space = spaces.get_space("nasnet")
    per_cell = math.prod((b + 2) ** 2 * 13 ** 2 * 2 for b in range(5))
    assert space.size() == per_cell ** 2
    assert space.num_tokens == 50


def test_nasrl_size_and_layout():
    space = spaces.get_space("nasrl_cnn", num_layers=4, predict_strides=True)
    # Per layer 4 * 4 * 3 * 3 * 4 choices; anchors 0 + 1 + 2 + 3 bits.
    assert space.size() == (4 * 4 * 3 * 3 * 4) ** 4 * 2 ** 6
    assert space.num_tokens == 4 * 5 + 6
    pooled = spaces.get_space("nasrl_cnn", num_layers=4, pool_layers=(2,))
    assert pooled.size() == (4 * 4 * 4) ** 3 * 2 ** 6


@pytest.mark.parametrize("name", spaces.SPACES.names())
def test_sampling_is_seeded_and_round_trips(name):
    space = spaces.get_space(name)
    a, b = space.sample(7), space.sample(7)
    assert a == b
    assert any(space.sample(s) != a for s in range(8, 12))
    assert space.parse(space.format(a)) == a


def test_sampling_is_uniform_per_decision():
    space = spaces.get_space("enas_micro")
    rng = random.Random(0)
    counts = [0] * 5
    for _ in range(5000):
        counts[space.sample(rng).tokens[2]] += 1  # normal/node2/op1
    # Each of 5 ops has p = 0.2; 5 standard deviations is about 0.028.
    assert all(abs(c / 5000 - 0.2) < 0.03 for c in counts)


def test_enas_micro_tokens_are_stored_as_idx_op_idx_op():
    space = spaces.get_space("enas_micro", num_nodes=1)
    arch = space.parse("1 3 0 4  0 2 1 0")
    values = space.values(arch)
    assert (values["normal/node2/index1"], values["normal/node2/op1"],
            values["normal/node2/index2"], values["normal/node2/op2"]) == (
                1, 3, 0, 4)
    # The sampling order index1, index2, op1, op2 is the decision order.
    assert arch.tokens[:4] == (1, 0, 3, 4)
    pair = space.decode(arch)
    assert pair.normal.nodes[0].ops == ("max_pool_3x3", "identity")
    # Node 2 reads both inputs, so its output is node 2 alone.
    assert pair.normal.concat == (2,)


@pytest.mark.parametrize("name", ["ENAS_micro", "ENAS_macro"])
def test_enas_arcs_format_back_to_the_scripts_text(name):
    entry = PUBLISHED[name]
    space = spaces.get_space(entry.space, **entry.params)
    arch = spaces.resolve_architecture(space, name)
    assert space.format(arch) == " ".join(entry.text.split())


def test_enas_macro_final_arc_facts():
    space = spaces.get_space("enas_macro", num_layers=24, num_branches=4)
    arch = spaces.resolve_architecture(space, "ENAS_macro")
    layers = space.decode(arch)
    assert len(arch.tokens) == 300
    assert sum(sum(bits) for _, bits in layers) == 98  # ORIGINALS 3.6
    assert layers[1] == ("sep_conv_5x5", (0,))
    assert layers[2] == ("conv_3x3", (1, 0))  # bit 0 = the stem


def test_enas_micro_final_cells_match_the_published_reading():
    space = spaces.get_space("enas_micro")
    pair = space.decode(spaces.resolve_architecture(space, "ENAS_micro"))
    # ORIGINALS 3.6: normal output concat(n2..n6) = 5F; reduce drops n3.
    assert pair.normal.concat == (2, 3, 4, 5, 6)
    assert pair.reduce.concat == (2, 4, 5, 6)
    assert pair.reduce.nodes[2].inputs == (1, 3)
    assert pair.reduce.nodes[2].ops == ("sep_conv_5x5", "sep_conv_5x5")


def test_darts_genotype_pastes_in_and_keeps_its_edges():
    space = spaces.get_space("darts_cnn")
    arch = spaces.resolve_architecture(space, "DARTS_V2")
    pair = space.decode(arch)
    # normal node 2 of DARTS_V2: ('sep_conv_3x3', 1), ('skip_connect', 0).
    node = pair.normal.nodes[2]
    assert sorted(zip(node.inputs, node.ops)) == [(0, "skip_connect"),
                                                  (1, "sep_conv_3x3")]
    assert pair.reduce.concat == (2, 3, 4, 5)
    assert space.parse(space.format(arch)) == arch
    # `range(2, 6)` as the DARTS code sometimes writes it.
    text = PUBLISHED["DARTS_V2"].text.replace("[2, 3, 4, 5]", "range(2, 6)")
    assert space.parse(text) == arch


def test_nasnet_a_uses_slim_outputs_and_numbering():
    space = spaces.get_space("nasnet")
    arch = spaces.resolve_architecture(space, "NASNet-A")
    pair = space.decode(arch)
    # slim state 1 (h_{i-1}) is common state 0 (cell k-2); the normal cell
    # concatenates it although block 1 reads it (slim used_hiddenstates).
    assert pair.normal.concat == (0, 2, 3, 4, 5, 6)
    assert pair.reduce.concat == (3, 4, 5, 6)
    assert pair.normal.nodes[0].inputs == (1, 0)
    assert pair.normal.nodes[0].ops == ("sep_conv_5x5", "sep_conv_3x3")
    assert space.parse(space.format(arch)) == arch
    # Without the explicit outputs the paper's rule applies.
    plain = space.from_tokens(arch.tokens)
    assert space.decode(plain).normal.concat == (2, 3, 4, 5, 6)


def test_choice_lists_in_the_originals_order():
    # ORIGINALS 2.1 (paper listing), 3.1 (ENAS ids), 4.1 (genotypes.py).
    assert nasnet.OPS == (
        "identity", "conv_1x3_3x1", "conv_1x7_7x1", "dil_conv_3x3",
        "avg_pool_3x3", "max_pool_3x3", "max_pool_5x5", "max_pool_7x7",
        "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5",
        "sep_conv_7x7")
    assert enas_micro.OPS == ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3",
                              "max_pool_3x3", "identity")
    macro = spaces.get_space("enas_macro", num_layers=2)
    assert macro.decisions[0].choices == (
        "conv_3x3", "sep_conv_3x3", "conv_5x5", "sep_conv_5x5",
        "avg_pool_3x3", "max_pool_3x3")
    four = spaces.get_space("enas_macro", num_layers=2, num_branches=4)
    assert four.decisions[0].choices == macro.decisions[0].choices[:4]
    assert darts_cnn.PRIMITIVES == (
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
    assert darts_cnn.OPS == darts_cnn.PRIMITIVES[1:]
    nasrl = spaces.get_space("nasrl_cnn", num_layers=1, predict_strides=True)
    assert [d.choices for d in nasrl.decisions] == [
        ("1", "3", "5", "7"), ("1", "3", "5", "7"), ("1", "2", "3"),
        ("1", "2", "3"), ("24", "36", "48", "64")]


@pytest.mark.parametrize("space_name, params", [
    ("enas_macro", dict(num_layers=1)), ("enas_macro", dict(num_layers=7)),
    ("enas_macro", dict(num_layers=5, num_branches=4)),
    ("enas_micro", dict(num_nodes=2)), ("enas_micro", dict(num_nodes=5)),
    ("nasnet", dict(num_blocks=1)), ("nasnet", dict(num_blocks=5)),
    ("darts_cnn", dict(steps=2)), ("darts_cnn", dict(steps=4)),
])
def test_size_counts_agree_with_the_closed_forms(space_name, params):
    # size() multiplies the decisions' choice counts; size_formula() is the
    # closed form of ORIGINALS; they must agree for every parameter.
    space = spaces.get_space(space_name, **params)
    assert space.size() == space.size_formula()
