"""How the scripts read their command line: presets by name, flagfiles
expanded with nesting, the preset a run records, --deterministic, and the
commands they print for the next step."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_script, script_env

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import command_line  # noqa: E402


def _write(path, *lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_presets_are_found_by_name_and_expanded_in_place():
    args = command_line.expand_argv(["prog", "--preset=quickstart_train",
                                     "--epochs=1"])
    assert args[0] == "prog" and args[-1] == "--epochs=1"
    assert "--space=nasrl_cnn" in args and "--epochs=12" in args
    # Flags after the preset come later, so they win.
    assert args.index("--epochs=12") < args.index("--epochs=1")
    assert command_line.preset_path("quickstart") == os.path.join(
        ROOT, "configs", "quickstart.cfg")


def test_flagfiles_nest_and_the_preset_name_is_the_last_preset(tmp_path):
    inner = _write(tmp_path / "inner.cfg", "# a comment", "", "--b=2",
                   "// another comment")
    # A flagfile named inside a flagfile is found beside it.
    outer = _write(tmp_path / "outer.cfg", "--a=1", "--flagfile=inner.cfg",
                   "--preset", "quickstart_train")
    command_line._read_presets.clear()
    args = command_line.expand_argv(["prog", "--flagfile", outer, "--c=3"])
    assert args[:3] == ["prog", "--a=1", "--b=2"] and args[-1] == "--c=3"
    assert "--space=nasrl_cnn" in args
    assert command_line.preset_name() == "outer"  # no --preset on the line
    command_line._read_presets.clear()
    command_line.expand_argv(["prog", "--preset=quickstart_train",
                              f"--flagfile={inner}"])
    assert command_line.preset_name() == "quickstart_train"


def test_bad_presets_and_flagfiles_name_what_is_wrong(tmp_path):
    with pytest.raises(command_line.CommandLineError,
                       match=r"--preset=nope: no such preset; known: .*"
                             r"darts_cifar10_final.*quickstart"):
        command_line.expand_argv(["prog", "--preset=nope"])
    with pytest.raises(command_line.CommandLineError,
                       match="missing.cfg: No such file"):
        command_line.expand_argv(["prog", f"--flagfile={tmp_path}/missing.cfg"])
    loop = _write(tmp_path / "loop.cfg", f"--flagfile={tmp_path}/loop.cfg")
    with pytest.raises(command_line.CommandLineError, match="nest more than"):
        command_line.expand_argv(["prog", f"--flagfile={loop}"])
    with pytest.raises(command_line.CommandLineError, match="needs a value"):
        command_line.expand_argv(["prog", "--preset"])


def test_printed_commands_name_this_python_or_the_console_command(
        monkeypatch):
    monkeypatch.chdir(ROOT)
    python = os.path.relpath(sys.executable)
    shown = python if not python.startswith("..") else sys.executable
    assert command_line.command("train", "--logdir=a b") == (
        f"{shown} scripts/train.py '--logdir=a b'")
    monkeypatch.setitem(command_line.CONSOLE, "active", True)
    assert command_line.command("export", "--x=1") == (
        os.path.join(os.path.dirname(shown), "nas-export") + " --x=1")


@pytest.mark.slow
def test_deterministic_turns_on_op_determinism_and_the_remapper_goes_off():
    # Without a GPU every script runs without Grappler's remapper (see
    # nas_tf/utils/cpu_fusions.py).
    code = ("import sys; sys.path.insert(0, 'scripts'); import common_flags, "
            "command_line, tensorflow as tf; "
            "from tensorflow.python.framework import config; "
            "command_line.parse_flags(['x'] + sys.argv[1:]); "
            "print(config.is_op_determinism_enabled(), tf.config.optimizer"
            ".get_experimental_options().get('remapping'))")
    for flag, expected in (("--deterministic", "True False"),
                           ("--nodeterministic", "False False")):
        result = subprocess.run([sys.executable, "-c", code, flag], cwd=ROOT,
                                env=script_env(), capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected


@pytest.mark.slow
def test_help_lists_the_flags_each_script_reads():
    def help_text(script):
        code, out, err = run_script(script, "--help")
        return out + err

    search = help_text("search.py")
    for flag in ("--logdir", "--preset", "--num_layers", "--epochs",
                 "--reward_epochs", "--controller_preset", "--manual_dir",
                 "--mixed_precision", "--jit_compile"):
        assert flag + ":" in search or f"--[no]{flag[2:]}:" in search, flag
    assert "--cutout:" not in search  # train.py's recipe only
    train = help_text("train.py")
    for flag in ("--arch_file", "--cutout", "--lr_schedule", "--num_cells",
                 "--deterministic", "--mixed_precision", "--jit_compile"):
        assert flag + ":" in train or f"--[no]{flag[2:]}:" in train, flag
    assert "--reward_epochs:" not in train
