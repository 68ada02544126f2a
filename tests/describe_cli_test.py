"""scripts/describe.py end to end, as a user runs it: printed figures, the
drawing, and one-line errors without tracebacks."""

import pytest

from conftest import run_script
from conftest import run_script_cases
from nas_tf.spaces.published import PUBLISHED

# Every test here runs describe.py in a subprocess.
pytestmark = pytest.mark.slow


def _describe(*args):
    return run_script("describe.py", *args, timeout=300)


def _fields(stdout):
    return dict(line.split(": ", 1) for line in stdout.splitlines())


def test_darts_v2_final_counts_and_drawing(tmp_path):
    png = tmp_path / "cells.png"
    code, out, err = _describe("--flagfile=configs/darts_cifar10_final.cfg",
                               "--arch=DARTS_V2", f"--draw={png}")
    assert code == 0, err
    fields = _fields(out)
    assert fields["trainable_params"] == "3349342"
    assert fields["total_params"] == "3389734"
    assert fields["mult_adds"] == "528359040"
    assert fields["space_size"] == str(1_076_746_950_455_072_400)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_enas_macro_space_size_with_12_layers():
    arch = " ".join(["0"] + ["1"] + ["0"] * 76)  # layer 1 skips to the stem
    code, out, err = _describe("--space=enas_macro", "--num_layers=12",
                               "--filters=4", f"--arch={arch}")
    assert code == 0, err
    assert _fields(out)["space_size"] == str(6 ** 12 * 2 ** 66)


@pytest.mark.parametrize("preset,arch,params,size", [
    # DARTS eval: hidden 850, vocab 10,000, tied, with the decoder bias.
    ("darts_ptb_final", "DARTS_V2_RNN", 22_960_000, 4 ** 8 * 40320),
    # ENAS ptb_final.sh: hidden 748, 12 nodes, no decoder bias.
    ("enas_ptb_final", "ENAS_PTB_SCRIPT", 22_027_104,
     4 ** 12 * 39_916_800),
    ("enas_lm_ptb_final", "ENAS_LM", 20_800_000, 4 ** 8 * 40320),
    ("nasrl_ptb_final", "NASCell", 25_011_216, 8 ** 16 * 15 ** 2),
])
def test_ptb_presets(preset, arch, params, size):
    code, out, err = _describe(f"--flagfile=configs/{preset}.cfg",
                               f"--arch={arch}")
    assert code == 0, err
    fields = _fields(out)
    assert fields["trainable_params"] == str(params)
    assert fields["space_size"] == str(size)


def _check_one_line_error(code, out, err):
    """The script's whole error output: one line, exit status 2 (the
    README's promise for bad input). Returns the line."""
    assert code == 2, err
    assert "Traceback" not in err and "Traceback" not in out
    errors = err.splitlines()
    assert len(errors) == 1 and errors[0].startswith("describe.py: error: "), \
        err
    return errors[0]


def _one_line_error(args):
    return _check_one_line_error(*_describe(*args))


def _one_line_errors(*cases):
    """``_one_line_error`` of each command line, all in one interpreter
    (TensorFlow starts once for them)."""
    return [_check_one_line_error(*result)
            for result in run_script_cases("describe.py", *cases,
                                           timeout=300)]


def _micro_tokens(position, value):
    tokens = PUBLISHED["ENAS_micro"].text.split()
    tokens[position] = value
    return " ".join(tokens)


# Each kind of bad input once: the messages themselves are the library's
# (tests/space_errors_test.py); here they must reach the user as one line
# with exit status 2.
def test_bad_architecture_is_one_line_error():
    bad_op, unknown_op = _one_line_errors(
        ["--space=enas_micro", f"--arch={_micro_tokens(3, '7')}"],
        ["--space=darts_rnn", "--steps=2", "--arch=Genotype("
         "recurrent=[('tanh', 0), ('gelu', 1)], concat=range(1, 3))"])
    # normal node 2, op2: ops are 0..4.
    assert "token 3 (normal/node2/op2) = 7" in bad_op and "0..4" in bad_op
    assert "unknown op 'gelu'; allowed: tanh, relu, sigmoid, identity" in \
        unknown_op


def test_bad_flag_value_is_one_line_error():
    # absl's own checks (an unknown value of an enum, a missing --arch), a
    # bad list and a drawing that cannot be written end the same way; the
    # first in a process of its own.
    line = _one_line_error(["--space=annealed", "--arch=0"])
    assert "--space=annealed" in line and "nasrl_cnn" in line
    bad_list, no_arch, unwritable = _one_line_errors(
        ["--space=nasrl_cnn", "--pool_layers=1,x", "--arch=0"],
        ["--space=nasrl_cnn"],
        # (A small network: it is built before the drawing fails.)
        ["--preset=darts_cifar10_final", "--num_cells=3", "--filters=4",
         "--arch=DARTS_V2", "--draw=/proc/no_such_dir/cells.png"])
    assert "--pool_layers" in bad_list and "'x'" in bad_list
    assert "--arch is required" in no_arch
    assert "--draw=/proc/no_such_dir/cells.png: cannot write it" in \
        unwritable


def test_darts_search_network_of_the_search_preset():
    """The issue's command: quark0/darts's search network at C = 16, 8
    cells counts 1,930,618 weights and 224 alphas."""
    code, out, err = _describe("--flagfile=configs/darts_cifar10_search.cfg",
                               "--supernet")
    assert code == 0, err
    fields = _fields(out)
    assert fields["trainable_params"] == "1930618"
    assert fields["architecture_params"] == "224"
