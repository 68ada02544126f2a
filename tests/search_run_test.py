"""A search run: its directory, TensorBoard, resume, failures, devices."""

import dataclasses
import json
import os

import pytest
from tensorboard.backend.event_processing import event_accumulator

from nas_tf import children
from nas_tf import config as config_lib
from nas_tf import reinforce
from nas_tf import run
from nas_tf import search_config
from nas_tf.data import dominoes
from nas_tf.data import synthetic_text
from nas_tf.training import child_trainer


@pytest.fixture(scope="module")
def data():
    return dominoes.generate_dominoes(seed=0, num_train=128, num_valid=64,
                                      num_test=8)


def _config(**changes):
    base = search_config.SearchConfig(
        space="nasrl_cnn", space_params={"num_layers": 2}, num_children=4,
        dataset="dominoes",
        reinforce=reinforce.ReinforceConfig(num_aggregate=2,
                                            learning_rate=0.05),
        child_train=child_trainer.ChildTrainConfig(
            epochs=2, batch_size=32, learning_rate=0.05, steps_per_epoch=2,
            reward_epochs=1))
    return dataclasses.replace(base, **changes)


def _comparable(records):
    """History without wall-clock figures."""
    out = []
    for r in records:
        r = dict(r)
        r.pop("wall_time")
        r["metrics"] = {k: v for k, v in r["metrics"].items()
                        if not k.endswith("seconds")}
        out.append(r)
    return out


def test_run_directory_history_and_tensorboard(tmp_path, data):
    lines = []
    result = run.run_search(_config(), str(tmp_path), data, lines.append)
    names = set(os.listdir(tmp_path))
    assert {"best_arch.txt", "checkpoints", "config.json",
            "history.jsonl"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    records = [json.loads(line) for line in open(tmp_path / "history.jsonl")]
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    for r in records:
        assert {"tokens", "reward", "metrics", "wall_time", "status"} <= set(r)
        assert r["reward"] == pytest.approx(r["metrics"]["valid_accuracy"]
                                            ** 3)
    best = max(records, key=lambda r: r["reward"])
    assert (tmp_path / "best_arch.txt").read_text().strip() == best["tokens"]
    assert result.best_tokens == best["tokens"]
    progress = [line for line in lines if line.startswith("[child")]
    assert len(progress) == 4
    assert all(k in progress[-1] for k in ("reward", "baseline", "best",
                                           "s/child", "ETA"))
    events = event_accumulator.EventAccumulator(
        str(tmp_path), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"controller/reward", "controller/baseline", "controller/entropy",
            "controller/loss", "child/valid_accuracy", "architecture",
            "decisions/layer1/inputs"} <= tags
    assert len(events.Tensors("controller/reward")) == 4


class _Killed(Exception):
    pass


def test_interrupted_run_resumes_to_the_uninterrupted_history(tmp_path,
                                                              data):
    config = _config(num_children=6)
    whole = run.run_search(config, str(tmp_path / "whole"), data,
                           lambda line: None)

    trained = []

    def die_after_three(line):
        if line.startswith("[child"):
            trained.append(line)
            if len(trained) == 3:  # in the middle of the second batch
                raise _Killed()

    with pytest.raises(_Killed):
        run.run_search(config, str(tmp_path / "cut"), data, die_after_three)
    resumed = run.run_search(config, str(tmp_path / "cut"), data,
                             lambda line: trained.append(line)
                             if line.startswith("[child") else None)
    assert len(trained) == 6  # no child trained twice
    assert _comparable(resumed.history) == _comparable(whole.history)


def test_resume_refuses_a_different_config(tmp_path, data):
    run.run_search(_config(num_children=2), str(tmp_path), data,
                   lambda line: None)
    with pytest.raises(ValueError, match="changed: seed"):
        run.SearchRun(_config(num_children=2, seed=5), str(tmp_path), data)


def test_failed_builds_and_diverged_children_do_not_stop_the_search(
        tmp_path, data, monkeypatch):
    real_build = children.builders.build_model
    calls = []

    def build_or_fail(space, arch, config, seed=None):
        calls.append(arch)
        if len(calls) == 2:
            raise ValueError("spatial size collapsed to 0")
        return real_build(space, arch, config, seed=seed)

    monkeypatch.setattr(children.builders, "build_model", build_or_fail)
    lines = []
    result = run.run_search(_config(strategy="random", failed_reward=-1.0),
                            str(tmp_path / "build"), data, lines.append)
    statuses = [r["status"] for r in result.history]
    assert statuses == ["ok", "build_failed", "ok", "ok"]
    assert result.history[1]["reward"] == -1.0
    assert any("cannot be built (spatial size collapsed" in line
               for line in lines)
    monkeypatch.undo()

    exploding = _config(strategy="random", num_children=2, child_train=(
        child_trainer.ChildTrainConfig(epochs=2, batch_size=32,
                                       learning_rate=1e30,
                                       steps_per_epoch=2)))
    lines = []
    result = run.run_search(exploding, str(tmp_path / "nan"), data,
                            lines.append)
    assert [r["status"] for r in result.history] == ["diverged"] * 2
    assert [r["reward"] for r in result.history] == [0.0, 0.0]
    assert any("became NaN" in line for line in lines)


def test_children_train_under_mirrored_strategy(tmp_path, data):
    config = _config(strategy="evolution", population_size=2, sample_size=2,
                     num_children=3, distribute="mirrored")
    searcher = run.SearchRun(config, str(tmp_path), data, lambda line: None)
    assert searcher.device_strategy.num_replicas_in_sync == 2
    result = searcher.run()
    assert [r["status"] for r in result.history] == ["ok"] * 3
    # The third child is a one-decision mutation of one of the first two.
    assert result.history[2]["tokens"] not in [
        r["tokens"] for r in result.history[:2]]


def test_language_model_search_rewards_80_over_ppl_squared(tmp_path):
    corpus = synthetic_text.synthetic_corpus(0, 3000, 600, 100)
    config = search_config.SearchConfig(
        space="darts_rnn", space_params={"steps": 2}, strategy="random",
        num_children=2, dataset="synthetic_text",
        reinforce=reinforce.ReinforceConfig(num_aggregate=2),
        lm=config_lib.LmConfig(
            vocab_size=len(corpus.vocab), hidden_size=16),
        lm_train=config_lib.LmTrainConfig(
            epochs=1, batch_size=8, bptt=10, max_steps=5, log_every=1000))
    result = run.run_search(config, str(tmp_path), corpus, lambda line: None)
    for record in result.history:
        ppl = record["metrics"]["valid_ppl"]
        assert record["reward"] == pytest.approx(80 / ppl ** 2)


def test_config_checks_happen_before_any_data(tmp_path):
    with pytest.raises(ValueError, match="dataset 'synthetic_text' does not "
                       "fit"):
        run.SearchRun(_config(dataset="synthetic_text"), str(tmp_path))
    with pytest.raises(ValueError, match="strategy='annealing'"):
        run.SearchRun(_config(strategy="annealing"), str(tmp_path))
    with pytest.raises(ValueError, match="'loss' is not allowed"):
        run.SearchRun(_config(reward="loss**2"), str(tmp_path))
    assert not os.listdir(tmp_path)


def test_depth_schedule_grows_the_children(tmp_path, data):
    # NAS-RL's schedule, scaled down: 1 layer, then 2, then 3.
    config = _config(depth_schedule=True, depth_start=1, depth_step=1,
                     depth_every=2, num_children=6)
    assert [s.num_layers for s in config.all_spaces()] == [1, 2, 3]
    result = run.run_search(config, str(tmp_path), data, lambda line: None)
    lengths = [len(r["tokens"]) for r in result.history]
    assert lengths[0] == lengths[1] < lengths[2] == lengths[3] < lengths[4]
    assert [r["status"] for r in result.history] == ["ok"] * 6
