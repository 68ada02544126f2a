"""Run directories: one process at a time, nothing left by a run that never
started, and best_arch.cfg naming the best child's own space."""

import dataclasses
import os

import pytest

from nas_tf import spaces
from nas_tf.controller import reinforce
from nas_tf.data import dominoes
from nas_tf.search import children
from nas_tf.search import run
from nas_tf.search import search_config
from nas_tf.training import child_trainer
from nas_tf.utils import run_lock


@pytest.fixture(scope="module")
def data():
    return dominoes.generate_dominoes(seed=0, num_train=64, num_valid=32,
                                      num_test=8)


def _config(**changes):
    base = search_config.SearchConfig(
        space="nasrl_cnn", space_params={"num_layers": 2}, strategy="random",
        num_children=2, dataset="dominoes",
        reinforce=reinforce.ReinforceConfig(num_aggregate=2),
        child_train=child_trainer.ChildTrainConfig(
            epochs=1, batch_size=32, steps_per_epoch=1, reward_epochs=1))
    return dataclasses.replace(base, **changes)


def _scripted_rewards(monkeypatch, rewards):
    def evaluate(self, space, arch, child_index):
        return {"reward": rewards[child_index], "status": "ok",
                "metrics": {"valid_accuracy": rewards[child_index]}}

    monkeypatch.setattr(children.ChildEvaluator, "evaluate", evaluate)


def test_a_second_process_on_a_run_directory_is_refused(tmp_path):
    held = run_lock.RunLock(str(tmp_path))
    # flock locks belong to the open file: a second opening conflicts as
    # a second process would.
    with pytest.raises(run_lock.RunDirectoryInUse,
                       match=f"in use by another process \\(pid {os.getpid()}"):
        run_lock.RunLock(str(tmp_path))
    held.release()
    run_lock.RunLock(str(tmp_path)).release()


def test_a_search_refuses_a_directory_in_use_and_writes_nothing(
        tmp_path, data, monkeypatch):
    _scripted_rewards(monkeypatch, [0.1, 0.2])
    held = run_lock.RunLock(str(tmp_path))
    with pytest.raises(run_lock.RunDirectoryInUse):
        run.SearchRun(_config(), str(tmp_path), data, relaunch_flags="--x\n")
    assert sorted(os.listdir(tmp_path)) == [run_lock.LOCK_FILE]
    held.release()
    run.run_search(_config(), str(tmp_path), data, lambda line: None)
    # The finished run released the directory.
    run_lock.RunLock(str(tmp_path)).release()


def test_a_run_that_fails_before_it_starts_leaves_no_directory(
        tmp_path, data, monkeypatch):
    logdir = tmp_path / "run"
    with pytest.raises(ValueError, match="unknown image dataset"):
        run.SearchRun(_config(dataset="no_such_images"), str(logdir))
    assert not logdir.exists()

    def broken(config):
        raise ValueError("no strategy today")

    monkeypatch.setattr(run, "make_strategy", broken)
    with pytest.raises(ValueError, match="no strategy today"):
        run.SearchRun(_config(), str(logdir), data, relaunch_flags="--x\n")
    assert not logdir.exists()


@pytest.mark.slow
def test_best_arch_cfg_names_the_space_of_the_best_child(
        tmp_path, data, monkeypatch):
    # Depth 1, then 2, then 3 layers; the best child is in the last space.
    _scripted_rewards(monkeypatch, [0.1, 0.2, 0.3, 0.4, 0.9, 0.5])
    config = _config(depth_schedule=True, depth_start=1, depth_step=1,
                     depth_every=2, num_children=6, strategy="nasrl")
    result = run.run_search(config, str(tmp_path), data, lambda line: None)
    assert result.best_space_params["num_layers"] == 3
    lines = (tmp_path / run.BEST_SPACE_FILE).read_text().splitlines()
    assert lines[0] == "--space=nasrl_cnn" and "--num_layers=3" in lines
    # The flags select a space that parses best_arch.txt.
    params = dict(line[2:].split("=", 1) for line in lines[1:] if "=" in line)
    space = spaces.get_space("nasrl_cnn", num_layers=int(params["num_layers"]))
    tokens = (tmp_path / run.BEST_FILE).read_text().strip()
    assert space.format(space.parse(tokens)) == tokens
    assert result.history[4]["tokens"] == tokens


@pytest.mark.parametrize("name,params", [
    ("nasrl_cnn", {"num_layers": 4, "pool_layers": (1, 3),
                   "predict_strides": True}),
    ("enas_rnn", {"layout": "enas_lm", "num_nodes": 6}),
    ("darts_cnn", {})])
def test_a_space_as_flags_names_every_parameter(name, params):
    space = spaces.get_space(name, **params)
    flags = space.as_flags()
    assert flags[0] == f"--space={name}"
    for key, value in space.params.items():
        if isinstance(value, bool):
            assert (f"--{key}" if value else f"--no{key}") in flags
        elif isinstance(value, tuple):
            assert f"--{key}={','.join(map(str, value))}" in flags
        else:
            assert f"--{key}={value}" in flags
    assert len(flags) == 1 + len(space.params)
