"""The recurrent spaces: exact sizes counted by hand, token layouts,
published cells, genotype text and errors."""

import dataclasses
import math
import random

import pytest

from nas_tf import spaces
from nas_tf.spaces import SpaceError


def _published(name):
    entry = spaces.PUBLISHED[name]
    space = spaces.get_space(entry.space, **entry.params)
    return space, spaces.resolve_architecture(space, name)


def test_enas_code_layout_size_is_4_pow_12_times_11_factorial():
    # 12 nodes, node 0 included: 12 activations (4 choices each, node 0's
    # sampled too) and node i = 1..11 picks one of its i earlier nodes, so
    # 1 * 2 * ... * 11 = 11! predecessor choices.
    space = spaces.get_space("enas_rnn")
    assert space.num_tokens == 23  # f_0 + 11 x (p_i, f_i), as ptb_final.sh
    by_hand = 4 ** 12 * math.prod(range(1, 12))
    assert by_hand == 4 ** 12 * math.factorial(11) == 669_692_775_628_800
    assert space.size() == space.size_formula() == by_hand
    assert 1e14 < space.size() < 1e15  # the paper rounds to about 10^15


def test_enas_lm_and_darts_layout_sizes():
    # Node 0 is always tanh; nodes 1..N each pick an activation (4) and one
    # of i earlier nodes: 4^N * N!.
    lm = spaces.get_space("enas_rnn", layout="enas_lm", num_nodes=9)
    assert lm.size() == 4 ** 9 * math.factorial(9)
    darts = spaces.get_space("darts_rnn")
    assert darts.size() == darts.size_formula() == 4 ** 8 * math.factorial(8)


def test_nasrl_tree_size_matches_the_papers_6e16():
    # Base 8: 8 + 4 + 2 + 1 = 15 nodes, each (2 combinations x 4
    # activations), the cell inject another such pair, and the two cell
    # indices one of 15 nodes each.
    space = spaces.get_space("nasrl_rnn")
    assert space.size() == 8 ** 16 * 15 ** 2 == space.size_formula()
    assert round(space.size() / 1e16) == 6
    extended = spaces.get_space("nasrl_rnn", extended=True)
    assert extended.size() == 15 ** 16 * 15 ** 2


@pytest.mark.parametrize("name,params", [
    ("nasrl_rnn", {"base": 4}), ("nasrl_rnn", {"extended": True}),
    ("enas_rnn", {}), ("enas_rnn", {"layout": "enas_lm"}),
    ("darts_rnn", {}), ("darts_rnn", {"average": "loose_ends"})])
def test_sample_format_parse_round_trip(name, params):
    space = spaces.get_space(name, **params)
    for seed in range(20):
        arch = space.sample(random.Random(seed))
        assert space.parse(space.format(arch)) == arch
    assert space.sample(3) == space.sample(3)
    assert len({space.sample(s).tokens for s in range(20)}) > 15


def test_the_two_enas_layouts_read_the_same_digits_differently():
    code = spaces.get_space("enas_rnn", num_nodes=3)
    lm = spaces.get_space("enas_rnn", layout="enas_lm", num_nodes=2)
    # enas_code: f_0=2 (identity), node1=(0, sigmoid), node2=(1, tanh).
    dag = code.decode(code.parse("2 0 3 1 0"))
    assert dag.node0_activation == "identity"
    assert dag.nodes == ((0, "sigmoid"), (1, "tanh"))
    # enas_lm: node 0 is tanh; node1=(0, sigmoid), node2=(1, tanh).
    dag = lm.decode(lm.parse("0 2 1 0"))
    assert dag.node0_activation == "tanh"
    assert dag.nodes == ((0, "sigmoid"), (1, "tanh"))
    assert dag.average == (1, 2)


def test_enas_ptb_is_the_darts_genotype_of_the_enas_cell():
    space, arch = _published("ENAS_PTB")
    darts = spaces.get_space("darts_rnn", steps=11, average="loose_ends")
    genotype = darts.parse(
        "Genotype(recurrent=[('tanh', 0), ('tanh', 1), ('relu', 1), "
        "('tanh', 3), ('tanh', 3), ('relu', 3), ('relu', 4), ('relu', 7), "
        "('relu', 8), ('relu', 8), ('relu', 8)], "
        "concat=[2, 5, 6, 9, 10, 11])")
    assert space.decode(arch) == darts.decode(genotype)
    assert space.decode(arch).average == (2, 5, 6, 9, 10, 11)


def test_enas_script_cell_decodes_as_published():
    space, arch = _published("ENAS_PTB_SCRIPT")
    dag = space.decode(arch)
    assert dag.nodes == (
        (0, "tanh"), (1, "relu"), (2, "relu"), (2, "tanh"), (2, "tanh"),
        (5, "relu"), (1, "tanh"), (6, "relu"), (8, "relu"), (8, "relu"),
        (8, "relu"))
    assert dag.average == (3, 4, 7, 9, 10, 11)


def test_enas_lm_readme_encoding_of_darts_v2_is_darts_v2():
    lm = spaces.get_space("enas_rnn", layout="enas_lm", num_nodes=8)
    arch = lm.parse("0 2 1 1 1 1 1 3 2 0 5 2 3 0 5 1")
    darts, darts_v2 = _published("DARTS_V2_RNN")
    assert lm.decode(arch) == darts.decode(darts_v2)


def test_nascell_decodes_to_the_tf_addons_equations():
    space, arch = _published("NASCell")
    tree = space.decode(arch)
    leaves = [("add", "sigmoid"), ("add", "relu"), ("add", "sigmoid"),
              ("elem_mult", "relu"), ("add", "tanh"), ("add", "sigmoid"),
              ("add", "tanh"), ("add", "sigmoid")]
    assert list(tree.nodes[:8]) == leaves
    assert tree.nodes[8:] == (
        ("elem_mult", "tanh"), ("add", "tanh"), ("elem_mult", "tanh"),
        ("add", "sigmoid"), ("elem_mult", "identity"), ("add", "tanh"),
        ("elem_mult", "tanh"))
    assert tree.inject == ("add", "tanh")
    assert (tree.cell_node, tree.inject_node) == (12, 8)
    assert tree.children(8) == (0, 1) and tree.children(11) == (6, 7)
    assert tree.children(12) == (8, 9) and tree.children(14) == (12, 13)


def test_darts_genotypes_paste_in_and_format_back():
    space, arch = _published("DARTS_V1_RNN")
    text = spaces.PUBLISHED["DARTS_V1_RNN"].text
    assert space.format(arch) == text
    assert space.decode(arch).average == tuple(range(1, 9))


@pytest.mark.parametrize("name,params,text,expected", [
    ("darts_rnn", {}, "Genotype(recurrent=[('swish', 0)] + [], concat=[1])",
     "not a literal"),
    ("darts_rnn", {"steps": 2},
     "Genotype(recurrent=[('swish', 0), ('relu', 1)], concat=range(1, 3))",
     "unknown op 'swish'; allowed: tanh, relu, sigmoid, identity"),
    ("darts_rnn", {"steps": 2},
     "Genotype(recurrent=[('tanh', 0), ('relu', 2)], concat=range(1, 3))",
     "node index pointing forward; node 2 may read nodes 0..1"),
    ("darts_rnn", {"steps": 2},
     "Genotype(recurrent=[('tanh', 0), ('relu', 0)], concat=[1, 2, 3])",
     "with average='all' the cell averages [1, 2]"),
    ("darts_rnn", {"steps": 2},
     "Genotype(recurrent=[('tanh', 0), ('relu', 0)], concat=[1, 2])",
     None),
    ("darts_rnn", {"steps": 2},
     "Genotype(recurrent=[('tanh', 0), ('relu', 1)], concat=[2])",
     "this genotype needs average='loose_ends'"),
    ("enas_rnn", {"num_nodes": 3}, "0 0 9 1 0",
     "token 2 (node1/activation) = 9: value not allowed; allowed: 0..3 "
     "(0=tanh, 1=relu, 2=identity, 3=sigmoid)"),
    ("enas_rnn", {"num_nodes": 3}, "0 0 0 2 0",
     "token 3 (node2/input) = 2: node index pointing forward"),
    ("enas_rnn", {"layout": "enas_lm", "num_nodes": 2}, "0 0 0",
     "expects 4 tokens (layout enas_lm: [p_i, f_i] for nodes 1..2)"),
    ("nasrl_rnn", {"base": 2}, "0 0 0 0 0 0 0 0 3 0",
     "token 8 (cell_indices/c_t) = 3: value not allowed"),
])
def test_bad_recurrent_architectures_say_what_is_wrong(name, params, text,
                                                       expected):
    space = spaces.get_space(name, **params)
    if expected is None:
        space.parse(text)
        return
    with pytest.raises(SpaceError) as error:
        space.parse(text)
    assert expected in str(error.value)


@pytest.mark.parametrize("name,params,expected", [
    ("enas_rnn", {"layout": "enas_v2"},
     "layout='enas_v2'; allowed: enas_code, enas_lm"),
    ("enas_rnn", {"average": "last"},
     "average='last'; allowed: loose_ends, all"),
    ("enas_rnn", {"num_nodes": 1}, "needs at least 2"),
    ("nasrl_rnn", {"base": 6}, "base=6; a tree cell's base is a power of two"),
    ("darts_rnn", {"steps": 0}, "steps=0; it must be an integer, at least 1"),
])
def test_bad_recurrent_space_parameters(name, params, expected):
    with pytest.raises(SpaceError) as error:
        spaces.get_space(name, **params)
    assert expected in str(error.value)


def test_unknown_activation_by_name():
    space = spaces.get_space("darts_rnn", steps=1)
    with pytest.raises(SpaceError, match="node1 has unknown activation "
                       "'gelu'; allowed: tanh, relu, sigmoid, identity"):
        space.from_nodes([(0, "gelu")])


def test_tree_cells_convert_from_names_and_back():
    space, arch = _published("NASCell")
    tree = space.decode(arch)
    assert space.from_cell(tree) == arch
    bad = dataclasses.replace(tree, inject=("max", "tanh"))
    with pytest.raises(SpaceError, match="inject has unknown combination "
                       "'max'; allowed: add, elem_mult"):
        space.from_cell(bad)
    extended = spaces.get_space("nasrl_rnn", extended=True)
    assert extended.decode(extended.from_cell(bad)).inject == ("max", "tanh")
