"""Malformed architectures raise errors naming position, value and what is
allowed (library and CLI)."""

import pytest

from nas_tf import spaces
from nas_tf.spaces.published import PUBLISHED


def _error(space_name, text, **params):
    space = spaces.get_space(space_name, **params)
    with pytest.raises(spaces.SpaceError) as info:
        spaces.resolve_architecture(space, text)
    return str(info.value)


def test_wrong_length_names_expected_count_and_layout():
    message = _error("enas_micro", "0 2 0 0")
    assert "expects 40 tokens" in message and "got 4" in message
    assert "[index1, op1, index2, op2]" in message


def test_out_of_range_choice_names_position_value_and_choices():
    text = PUBLISHED["ENAS_micro"].text.split()
    text[3] = "7"  # normal node 2, op2 (stored position 3)
    message = _error("enas_micro", " ".join(text))
    assert "token 3 (normal/node2/op2) = 7" in message
    assert "0..4" in message and "4=identity" in message


def test_node_index_pointing_forward():
    text = PUBLISHED["ENAS_micro"].text.split()
    text[4] = "3"  # normal node 3, index1: may read nodes 0..2
    message = _error("enas_micro", " ".join(text))
    assert "token 4 (normal/node3/index1) = 3" in message
    assert "node index pointing forward" in message
    assert "0..2" in message


def test_negative_and_non_integer_tokens():
    assert "= -1" in _error("enas_macro", "-1", num_layers=1)
    message = _error("enas_macro", "0 x 1", num_layers=2)
    assert "token 1 = 'x' is not an integer" in message


def test_skip_bits_must_be_bits():
    message = _error("enas_macro", "0 1 2", num_layers=2)
    assert "token 2 (layer1/skips[stem]) = 2" in message
    assert "0 or 1" in message


def test_unknown_architecture_name_lists_known_names():
    message = _error("darts_cnn", "DARTS_V3")
    assert "unknown architecture name 'DARTS_V3'" in message
    assert "DARTS_V2" in message and "NASNet-A" in message


def test_published_name_in_the_wrong_space():
    message = _error("nasnet", "DARTS_V2")
    assert "space 'darts_cnn', not 'nasnet'" in message
    message = _error("enas_macro", "ENAS_macro", num_layers=12)
    assert "num_layers=24" in message


_V2 = PUBLISHED["DARTS_V2"].text
_V2_NORMAL = _V2[_V2.index("["):_V2.index("]") + 1]


@pytest.mark.parametrize("old, new, expected", [
    ("('dil_conv_3x3', 2)", "('sep_conv_9x9', 2)",
     ["normal[7] has unknown op 'sep_conv_9x9'", "sep_conv_3x3"]),
    ("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)",
     ["normal[7]", "pointing forward", "0..4"]),
    ("('skip_connect', 0), ('dil_conv_3x3', 2)",
     "('skip_connect', 2), ('dil_conv_3x3', 2)", ["both read state 2"]),
    ("('dil_conv_3x3', 2)", "('none', 2)", ["unknown op 'none'"]),
    ("('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ", "",
     ["normal has 6 entries"]),
    ("normal_concat=[2, 3, 4, 5]", "normal_concat=[2]",
     ["normal_concat=[2]"]),
    (_V2, "Genotype(normal=[", ["does not parse"]),
    (_V2_NORMAL, "5", ["'normal' = 5", "list of ('op_name'"]),
    ("normal_concat=[2, 3, 4, 5]", "normal_concat=5",
     ["'normal_concat' = 5"]),
    ("[2, 3, 4, 5]", "range(2, x)", ["not a literal", "range(...)"]),
    ("('dil_conv_3x3', 2)", "('dil_conv_3x3', True)",
     ["normal[7] = ('dil_conv_3x3', True)"]),
], ids=["unknown_op", "forward", "same_input", "none_op", "short",
        "concat", "syntax", "normal_type", "concat_type", "range_args",
        "bool_index"])
def test_darts_genotype_errors(old, new, expected):
    assert old in _V2
    message = _error("darts_cnn", _V2.replace(old, new, 1))
    for text in expected:
        assert text in message


def test_nasnet_explicit_outputs_are_checked():
    tokens = PUBLISHED["NASNet-A"].text.split(";")[0]
    message = _error("nasnet", tokens + "; normal_concat=1,9 "
                     "reduce_concat=3")
    assert "normal_concat names state 9" in message and "0..6" in message
    assert "missing reduce_concat" in _error(
        "nasnet", tokens + "; normal_concat=1")


def test_bad_space_name_and_parameters():
    with pytest.raises(spaces.SpaceError, match="unknown search space 'x'"):
        spaces.get_space("x")
    with pytest.raises(spaces.SpaceError, match="num_layers=0"):
        spaces.get_space("enas_macro", num_layers=0)
    with pytest.raises(spaces.SpaceError,
                       match="num_blocks='3'; it must be an integer"):
        spaces.get_space("nasnet", num_blocks="3")
    with pytest.raises(spaces.SpaceError, match="num_branches=7"):
        spaces.get_space("enas_macro", num_branches=7)
    with pytest.raises(spaces.SpaceError,
                       match="takes no parameter num_layers; it takes: steps"):
        spaces.get_space("darts_cnn", num_layers=3)
    with pytest.raises(spaces.SpaceError, match="repeats a layer"):
        spaces.get_space("nasrl_cnn", pool_layers=(1, 1))
    with pytest.raises(spaces.SpaceError, match="layer 0 is always a conv"):
        spaces.get_space("nasrl_cnn", pool_layers=(0, 2))


def test_tokens_must_be_integers_not_floats_or_bools():
    space = spaces.get_space("enas_macro", num_layers=2)
    with pytest.raises(spaces.SpaceError, match=r"token 1 = 1\.7"):
        space.from_tokens([0, 1.7, 0])
    with pytest.raises(spaces.SpaceError, match="token 2 = True"):
        space.from_tokens([0, 1, True])


def test_nasnet_explicit_output_given_twice():
    tokens = PUBLISHED["NASNet-A"].text.split(";")[0]
    message = _error("nasnet", tokens + "; normal_concat=1 normal_concat=2 "
                     "reduce_concat=3")
    assert "normal_concat is given twice" in message
