"""scripts/search.py as a user runs it: SIGKILL, Ctrl-C and resume, bad
flags, and the commands it prints for the next steps."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import ROOT, run_script, script_command, script_env
from conftest import run_script_cases
from conftest import without_wall_clock

# A tiny search: 6 children of 2 layers, one short epoch each.
TINY = ["--preset=quickstart", "--num_children=6", "--num_layers=2",
        "--controller_num_aggregate=2", "--epochs=1", "--steps_per_epoch=3"]


def _search(*args, timeout=600):
    return run_script("search.py", *args, timeout=timeout)


def _history(logdir):
    with open(os.path.join(logdir, "history.jsonl")) as f:
        return without_wall_clock([json.loads(line) for line in f])


def _lines(path):
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.endswith("\n"))


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """An uninterrupted TINY search: (its directory, what it printed)."""
    logdir = tmp_path_factory.mktemp("search") / "whole"
    code, out, err = _search(*TINY, f"--logdir={logdir}")
    assert code == 0, err
    return logdir, out


def _interrupt(logdir, sig, children):
    """Starts the TINY search in ``logdir`` and sends ``sig`` once
    ``children`` children are in its history; returns (exit status,
    stderr)."""
    # The default handler of SIGINT, as under a terminal (a shell may start
    # children with it ignored).
    process = subprocess.Popen(
        script_command("search.py", *TINY, f"--logdir={logdir}"), cwd=ROOT,
        env=script_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while (_lines(logdir / "history.jsonl") < children and
           process.poll() is None):
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(sig)
    _, err = process.communicate(timeout=300)
    return process.returncode, err


@pytest.mark.slow
def test_sigkilled_search_resumes_to_the_uninterrupted_history(tmp_path,
                                                               whole):
    whole_dir, out = whole
    assert "best architecture" in out and "scripts/train.py" in out
    assert (whole_dir / "best_arch.txt").exists()
    assert (whole_dir / "flags.cfg").exists()

    cut = tmp_path / "cut"
    code, _ = _interrupt(cut, signal.SIGKILL, 3)
    assert code == -signal.SIGKILL
    finished_before = _lines(cut / "history.jsonl")
    assert 3 <= finished_before < 6
    assert not (cut / "best_arch.txt").exists()

    code, out, err = _search(f"--flagfile={cut}/flags.cfg")
    assert code == 0, err
    assert "resuming" in out + err
    retrained = [line for line in out.splitlines()
                 if line.startswith("[child")]
    assert len(retrained) == 6 - finished_before
    assert _history(cut) == _history(whole_dir)
    assert (cut / "best_arch.txt").read_text() == \
        (whole_dir / "best_arch.txt").read_text()


@pytest.mark.slow
def test_ctrl_c_stops_with_one_line_and_the_same_command_resumes(tmp_path,
                                                                 whole):
    cut = tmp_path / "cut"
    code, err = _interrupt(cut, signal.SIGINT, 1)
    assert code == 130
    assert err.strip().splitlines() == [
        "search.py: interrupted; the same command resumes from the last "
        "finished child"]
    code, out, err = _search(*TINY, f"--logdir={cut}")
    assert code == 0, err
    assert "resuming" in out + err
    assert _history(cut) == _history(whole[0])


@pytest.mark.slow
def test_bad_flags_fail_at_once_with_a_clear_message(tmp_path, whole):
    whole_dir = whole[0]
    began = time.time()
    # One command line in a process of its own; the others in one
    # interpreter (TensorFlow starts once for them).
    code, _, err = _search("--strategy=annealing", f"--logdir={tmp_path}")
    assert code == 2 and "annealing" in err  # absl's enum check, one line
    (language_space, unknown_dataset, no_logdir, bad_bias, no_validation,
     train_only, other_seed, moved_data) = run_script_cases(
        "search.py",
        ["--space=darts_rnn", "--dataset=dominoes",
         f"--logdir={tmp_path / 'a'}"],
        ["--space=nasrl_cnn", "--dataset=no_such_images",
         f"--logdir={tmp_path / 'b'}"],
        ["--preset=quickstart"],
        ["--controller_op_bias_init=1,a", f"--logdir={tmp_path / 'c'}"],
        ["--dataset=dominoes", "--validation_size=0",
         f"--logdir={tmp_path / 'd'}"],
        ["--dataset=dominoes", "--cutout=16", f"--logdir={tmp_path / 'e'}"],
        [*TINY, "--seed=3", f"--logdir={whole_dir}"],
        # Where the data lives is not what the run is: a moved --data_dir
        # resumes (here the finished run has nothing left to do).
        [*TINY, f"--data_dir={tmp_path / 'moved'}", f"--logdir={whole_dir}"])
    code, _, err = language_space
    assert code == 2
    assert "space 'darts_rnn' builds language models; dataset 'dominoes' " \
        "does not fit" in err
    code, _, err = unknown_dataset
    assert code == 2 and "no_such_images" in err
    code, _, err = no_logdir
    assert code == 2 and "--logdir is required" in err
    code, _, err = bad_bias
    assert code == 2 and "--controller_op_bias_init=1,a" in err
    code, _, err = no_validation
    assert code == 2 and "validation_size=0" in err
    code, _, err = train_only
    assert code == 2 and "--cutout: scripts/train.py flags" in err
    # Generous: on a loaded machine.
    assert time.time() - began < 240
    assert not any((tmp_path / name).exists() for name in "abcde")

    code, _, err = other_seed
    assert code == 2
    assert "holds a run started with other flags (--seed: 0 -> 3)" in err
    code, out, err = moved_data
    assert code == 0, err


def _printed_commands(stdout):
    """The commands a finished search prints (indented lines naming a
    script or TensorBoard)."""
    return [line.strip() for line in stdout.splitlines()
            if line.startswith("  ") and ("scripts/" in line or
                                          "tensorboard" in line)]


@pytest.mark.slow
def test_printed_commands_run_as_printed_from_a_fresh_shell(whole):
    logdir, out = whole
    train, export, classify, tensorboard = _printed_commands(out)
    assert "--preset=quickstart_train" in train
    assert f"--flagfile={logdir}/best_arch.cfg" in train
    assert f"--export_dir={logdir}/final/export" in export
    assert tensorboard.endswith(f"--logdir {logdir}")
    # A fresh shell: nothing activated, so the commands name their Python.
    env = script_env()
    bin_dir = os.path.dirname(script_command("x")[0])
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if p != bin_dir)
    env.pop("VIRTUAL_ENV", None)
    short = " --epochs=1 --steps_per_epoch=2 --eval_every=1"
    for command in (train + short, export, classify):
        result = subprocess.run(command, shell=True, cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (command, result.stderr)
    assert "correct" in result.stdout
    assert (logdir / "final" / "export" / "saved_model.pb").exists()
