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


def test_darts_genotype_errors():
    good = PUBLISHED["DARTS_V2"].text
    bad_op = good.replace("('dil_conv_3x3', 2)", "('sep_conv_9x9', 2)")
    message = _error("darts_cnn", bad_op)
    assert "normal[7] has unknown op 'sep_conv_9x9'" in message
    assert "sep_conv_3x3" in message
    forward = good.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)")
    message = _error("darts_cnn", forward)
    assert "normal[7]" in message and "pointing forward" in message
    assert "0..4" in message
    twice = good.replace("('skip_connect', 0), ('dil_conv_3x3', 2)",
                         "('skip_connect', 2), ('dil_conv_3x3', 2)")
    assert "both read state 2" in _error("darts_cnn", twice)
    none_op = good.replace("('dil_conv_3x3', 2)", "('none', 2)")
    assert "unknown op 'none'" in _error("darts_cnn", none_op)
    short = good.replace("('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ", "", 1)
    assert "normal has 6 entries" in _error("darts_cnn", short)
    concat = good.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2]")
    assert "normal_concat=[2]" in _error("darts_cnn", concat)
    assert "does not parse" in _error("darts_cnn", "Genotype(normal=[")


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
    with pytest.raises(spaces.SpaceError, match="num_branches=7"):
        spaces.get_space("enas_macro", num_branches=7)
    with pytest.raises(spaces.SpaceError, match="unexpected keyword"):
        spaces.get_space("darts_cnn", num_layers=3)
