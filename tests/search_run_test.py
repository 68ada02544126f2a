"""A search run: its directory, TensorBoard, resume, failures, devices."""

import dataclasses
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from conftest import without_wall_clock
from strategies_test import changed_decisions

from nas_tf.search import children
from nas_tf import config as config_lib
from nas_tf.controller import reinforce
from nas_tf.search import run
from nas_tf.search import search_config
from nas_tf.search import review
from nas_tf.data import dominoes
from nas_tf.strategies import evolution
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


def _events(logdir):
    """The search's TensorBoard events (the run "search" of ``logdir``)."""
    events = event_accumulator.EventAccumulator(
        os.path.join(str(logdir), run.SUMMARY_DIR),
        size_guidance={"tensors": 0})
    events.Reload()
    return events


def _improvements(records):
    """Numbers (TensorBoard steps) of the children that raised the best
    reward: the ones to draw (a later child that only ties the best is not
    drawn)."""
    steps, best = [], None
    for r in records:
        if best is None or r["reward"] > best:
            steps.append(r["child"])
            best = r["reward"]
    return steps


def _best_architecture_images(events):
    """(step, height, width) of every ``best_architecture`` image, checking
    that each is a real PNG of the size its summary states."""
    shown = []
    for event in events.Tensors(review.IMAGE_TAG):
        width, height, png = tf.make_ndarray(event.tensor_proto)
        pixels = tf.io.decode_png(png).numpy()
        assert pixels.shape[:2] == (int(height), int(width))
        assert 100 < pixels.shape[0] < 3000 and 200 < pixels.shape[1] < 3000
        assert pixels.min() < 128  # something is drawn on the white canvas
        shown.append((event.step, pixels.shape[0], pixels.shape[1]))
    return sorted(shown)


_ROW = re.compile(r"^\| (\d+) \| (\d+) \| (\S+) \| (\S+) \| `(.*)` \|$")


def _table_rows(markdown):
    """(rank, step, reward, metric, tokens) of the rows of a top table."""
    rows = []
    for line in markdown.splitlines():
        match = _ROW.match(line)
        if match:
            rank, step, reward, metric, tokens = match.groups()
            rows.append((int(rank), int(step), float(reward), metric,
                         tokens.replace(r"\|", "|")))
    return rows


def _last_top_table(events):
    event = events.Tensors(review.TABLE_TAG)[-1]
    return tf.make_ndarray(event.tensor_proto).item().decode()


def _check_top_table(events, records, metric):
    """The last table lists the history's ten best, rewards descending."""
    rows = _table_rows(_last_top_table(events))
    expected = sorted(records, key=lambda r: -r["reward"])[:10]
    assert len(rows) == min(10, len(records))
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1))
    assert [row[1] for row in rows] == [r["child"] for r in expected]
    assert [row[4] for row in rows] == [r["tokens"] for r in expected]
    rewards = [row[2] for row in rows]
    assert rewards == sorted(rewards, reverse=True)
    for row, r in zip(rows, expected):
        assert row[2] == pytest.approx(r["reward"], rel=1e-3)
        assert float(row[3]) == pytest.approx(r["metrics"][metric],
                                              rel=1e-3)


def _scripted_rewards(monkeypatch, rewards, metric="valid_accuracy"):
    """Child ``i`` scores ``rewards[i]`` without training, so which children
    are drawn and listed is known in advance."""
    def evaluate(self, space, arch, child_index):
        reward = rewards[child_index]
        return {"reward": reward, "status": "ok",
                "metrics": {metric: reward ** (1 / 3)}}

    monkeypatch.setattr(children.ChildEvaluator, "evaluate", evaluate)


@pytest.fixture(scope="module")
def whole(data, tmp_path_factory):
    """An uninterrupted search of ``_config()``: (its directory, result,
    log lines)."""
    logdir = tmp_path_factory.mktemp("whole")
    lines = []
    result = run.run_search(_config(), str(logdir), data, lines.append)
    return logdir, result, lines


def test_run_directory_history_and_tensorboard(whole):
    logdir, result, lines = whole
    names = set(os.listdir(logdir))
    assert {"best_arch.txt", "checkpoints", "config.json",
            "history.jsonl", run.SUMMARY_DIR} <= names
    assert any(n.startswith("events.out.tfevents")
               for n in os.listdir(logdir / run.SUMMARY_DIR))
    # Drawings are made in memory: no image or temporary file is left.
    assert not [n for n in names if n.endswith(".png") or n.startswith(".")]
    records = [json.loads(line) for line in open(logdir / "history.jsonl")]
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    for r in records:
        assert {"tokens", "reward", "metrics", "wall_time", "status"} <= set(r)
        assert r["reward"] == pytest.approx(r["metrics"]["valid_accuracy"]
                                            ** 3)
    best = max(records, key=lambda r: r["reward"])
    assert (logdir / "best_arch.txt").read_text().strip() == best["tokens"]
    assert result.best_tokens == best["tokens"]
    progress = [line for line in lines if line.startswith("[child")]
    assert len(progress) == 4
    assert all(k in progress[-1] for k in ("reward", "baseline", "best",
                                           "s/child", "ETA"))
    events = _events(logdir)
    tags = set(events.Tags()["tensors"])
    assert {"controller/reward", "controller/baseline", "controller/entropy",
            "controller/loss", "child/valid_accuracy", "architecture",
            "decisions/layer1/inputs"} <= tags
    # Child k (1-based, as in the progress lines) at step k.
    assert [e.step for e in events.Tensors("controller/reward")] == [
        1, 2, 3, 4]
    # The group TensorBoard shows first: every reward and the best so far.
    rewards = [float(tf.make_ndarray(e.tensor_proto))
               for e in events.Tensors(review.REWARD_TAG)]
    best_so_far = [float(tf.make_ndarray(e.tensor_proto))
                   for e in events.Tensors(review.BEST_REWARD_TAG)]
    assert rewards == pytest.approx([r["reward"] for r in records])
    assert best_so_far == pytest.approx(list(np.maximum.accumulate(rewards)))
    assert [r["child"] for r in records] == [1, 2, 3, 4]
    assert [line.split("]")[0] for line in progress] == [
        "[child 1/4", "[child 2/4", "[child 3/4", "[child 4/4"]
    # The best architecture is drawn at every child that raised the best
    # reward, the last drawing at the child that first reached the best.
    images = _best_architecture_images(events)
    assert [step for step, _, _ in images] == _improvements(records)
    assert images[-1][0] == best["child"]
    # The top table after each batch of two, not again at the end.
    assert [e.step for e in events.Tensors(review.TABLE_TAG)] == [2, 4]
    _check_top_table(events, records, "valid_accuracy")


class _Killed(Exception):
    pass


def _dying_log(children, trained):
    """A log that records child lines in ``trained`` and stops the run
    (as a kill would) once ``children`` children have trained."""
    def log(line):
        if line.startswith("[child"):
            trained.append(line)
            if len(trained) == children:
                raise _Killed()
    return log


def _kill_and_resume(config, data, logdir, killed_after):
    """Runs ``config`` in ``logdir`` until ``killed_after`` children have
    trained, then resumes it to the end. Returns the resumed run's result
    and the log lines of both runs."""
    lines = []
    dying = _dying_log(killed_after, [])

    def log(line):
        lines.append(line)
        dying(line)

    with pytest.raises(_Killed):
        run.run_search(config, logdir, data, log)
    return run.run_search(config, logdir, data, lines.append), lines


def _final_checkpoint(logdir):
    """Every tensor of the run's last checkpoint, by name."""
    reader = tf.train.load_checkpoint(os.path.join(logdir, run.CHECKPOINT_DIR))
    return {name: reader.get_tensor(name)
            for name in reader.get_variable_to_shape_map()
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def _check_resumed(resumed, lines, whole, resumed_dir, whole_dir):
    """The resumed run trained no child twice, proposed again exactly the
    children it had recorded, and ends with the uninterrupted run's history
    and learned state (controller, optimizer, baseline)."""
    assert len([line for line in lines if line.startswith("[child")]) == len(
        whole.history)
    assert not any("differs" in line for line in lines)
    assert (without_wall_clock(resumed.history) ==
            without_wall_clock(whole.history))
    state, expected = _final_checkpoint(resumed_dir), _final_checkpoint(
        whole_dir)
    assert sorted(state) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(state[name], value, err_msg=name)


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_uninterrupted_history(tmp_path,
                                                              data, whole):
    # Children really train; killed in the middle of the second batch.
    whole_dir, whole_result, _ = whole
    resumed, lines = _kill_and_resume(_config(), data, str(tmp_path / "cut"),
                                      3)
    _check_resumed(resumed, lines, whole_result, tmp_path / "cut", whole_dir)


# Rewards that rarely raise the best (each new best is drawn, which is slow).
_REWARDS = [0.9, 0.2, 0.5, 0.1, 0.3, 0.45, 0.05, 0.4, 0.35]


@pytest.mark.parametrize("changes,killed_after", [
    ({"strategy": "random"}, 3),  # in the middle of the second batch
    # One child per batch: killed once the tournaments have begun.
    ({"strategy": "evolution", "population_size": 3, "sample_size": 4}, 5),
    # The asynchronous form: in the middle of batch 3..5, whose children
    # all come from the population of children 0..2.
    ({"strategy": "evolution", "population_size": 3, "sample_size": 4,
      "evolution_batch": 3}, 5),
], ids=["random", "evolution", "evolution_batch3"])
def test_interrupted_search_resumes_to_the_uninterrupted_proposals(
        tmp_path, data, monkeypatch, changes, killed_after):
    _scripted_rewards(monkeypatch, _REWARDS)
    config = _config(num_children=len(_REWARDS), **changes)
    whole = run.run_search(config, str(tmp_path / "whole"), data,
                           lambda line: None)
    resumed, lines = _kill_and_resume(config, data, str(tmp_path / "cut"),
                                      killed_after)
    _check_resumed(resumed, lines, whole, tmp_path / "cut", tmp_path / "whole")


@pytest.mark.slow
def test_resume_across_a_depth_schedule_boundary(tmp_path, data,
                                                 monkeypatch):
    # Depth 1 for children 0-3, 2 for 4-7, two children per controller
    # update. Killed in the first batch of depth 2 (the checkpoint holds the
    # controller after depth 1) and in the second one (after an update at
    # depth 2).
    _scripted_rewards(monkeypatch, _REWARDS)
    config = _config(depth_schedule=True, depth_start=1, depth_step=1,
                     depth_every=4, num_children=8)
    whole = run.run_search(config, str(tmp_path / "whole"), data,
                           lambda line: None)
    assert [len(r["decision_values"]) for r in whole.history] == [3] * 4 + [
        7] * 4
    for killed_after in (5, 7):
        cut = tmp_path / f"cut{killed_after}"
        resumed, lines = _kill_and_resume(config, data, str(cut),
                                          killed_after)
        _check_resumed(resumed, lines, whole, cut, tmp_path / "whole")


def test_resume_refuses_a_different_config(tmp_path, data, monkeypatch):
    _scripted_rewards(monkeypatch, [0.1, 0.2])  # what trains is not checked
    run.run_search(_config(num_children=2), str(tmp_path), data,
                   lambda line: None)
    with pytest.raises(ValueError, match="changed: seed"):
        run.SearchRun(_config(num_children=2, seed=5), str(tmp_path), data)


@pytest.mark.slow
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


@pytest.mark.slow
def test_children_train_under_mirrored_strategy(tmp_path, data):
    config = _config(strategy="evolution", population_size=2, sample_size=2,
                     num_children=3, distribute="mirrored",
                     identity_mutation_probability=0.0)
    searcher = run.SearchRun(config, str(tmp_path), data, lambda line: None)
    assert searcher.device_strategy.num_replicas_in_sync == 2
    result = searcher.run()
    assert [r["status"] for r in result.history] == ["ok"] * 3
    # The third child is a one-decision mutation of one of the first two.
    first, second, third = [r["decision_values"] for r in result.history]
    space = config.space_at(0)
    assert 1 in [len(changed_decisions(space, parent, third))
                 for parent in (first, second)]


@pytest.mark.parametrize("evolution_batch,parents", [
    # One child at a time (the default): child 3's tournament already sees
    # child 2, and child 0 has left the population when child 2 came.
    (1, [0, 2, 3]),
    # Batches of two: children 2 and 3 both come from children 0 and 1.
    (2, [0, 0, 3]),
])
def test_evolution_children_join_the_population_one_at_a_time(
        tmp_path, data, monkeypatch, evolution_batch, parents):
    _scripted_rewards(monkeypatch, [0.9, 0.1, 0.2, 0.5, 0.3])
    mutated = []
    real_mutate = evolution.mutate

    def recording_mutate(space, tokens, *args):
        mutated.append(list(tokens))
        return real_mutate(space, tokens, *args)

    monkeypatch.setattr(evolution, "mutate", recording_mutate)
    # P = 2 and S = 50: the best of the population is the parent (missed
    # with probability 2**-50).
    config = _config(strategy="evolution", population_size=2, sample_size=50,
                     num_children=5, evolution_batch=evolution_batch)
    result = run.run_search(config, str(tmp_path), data, lambda line: None)
    assert mutated == [result.history[i]["decision_values"] for i in parents]


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


@pytest.mark.slow
def test_depth_schedule_grows_the_children(tmp_path, data):
    # NAS-RL's schedule, scaled down: 1 layer, then 2, then 3 (batches of
    # two children; the last batch is child 4 alone).
    config = _config(depth_schedule=True, depth_start=1, depth_step=1,
                     depth_every=2, num_children=5,
                     child_train=child_trainer.ChildTrainConfig(
                         epochs=1, batch_size=32, learning_rate=0.05,
                         steps_per_epoch=1, reward_epochs=1))
    assert [s.num_layers for s in config.all_spaces()] == [1, 2, 3]
    result = run.run_search(config, str(tmp_path), data, lambda line: None)
    lengths = [len(r["tokens"]) for r in result.history]
    assert lengths[0] == lengths[1] < lengths[2] == lengths[3] < lengths[4]
    assert [r["status"] for r in result.history] == ["ok"] * 5


def test_review_follows_a_resumed_history(tmp_path, data, monkeypatch):
    # Best raised by children 1, 2, 5 and 11; children 3 and 7 only tie.
    rewards = [0.2, 0.5, 0.5, 0.1, 0.7, 0.3, 0.7, 0.05, 0.6, 0.65, 0.9, 0.4]
    _scripted_rewards(monkeypatch, rewards)
    config = _config(strategy="random", num_children=len(rewards))
    with pytest.raises(_Killed):  # in the middle of the third batch
        run.run_search(config, str(tmp_path), data, _dying_log(5, []))
    lines = []
    run.run_search(config, str(tmp_path), data, lines.append)
    records = [json.loads(line) for line in open(tmp_path / "history.jsonl")]
    events = _events(tmp_path)
    # The resumed run draws its loaded best (child 5) once more, then only
    # child 11: the best was recomputed from the history, so child 6 is not
    # taken for a new best.
    steps = [step for step, _, _ in _best_architecture_images(events)]
    assert steps == [1, 2, 5, 5, 11]
    assert [e.step for e in events.Tensors(review.TABLE_TAG)] == [
        2, 4, 6, 8, 10, 12]
    _check_top_table(events, records, "valid_accuracy")
    assert not any("cannot draw" in line for line in lines)


def test_depth_schedule_draws_each_child_in_its_own_space(tmp_path, data,
                                                          monkeypatch):
    _scripted_rewards(monkeypatch, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    config = _config(strategy="random", depth_schedule=True, depth_start=1,
                     depth_step=1, depth_every=2, num_children=6)
    lines = []
    run.run_search(config, str(tmp_path), data, lines.append)
    assert not any("cannot draw" in line for line in lines)
    images = _best_architecture_images(_events(tmp_path))
    assert [step for step, _, _ in images] == [1, 2, 3, 4, 5, 6]
    heights = [height for _, height, _ in images]
    # One layer more every two children: a taller column of layers.
    assert heights[0] == heights[1] < heights[2] == heights[3] < heights[4]


def test_a_failed_drawing_warns_once_and_the_search_goes_on(
        tmp_path, data, monkeypatch):
    _scripted_rewards(monkeypatch, [0.1, 0.2, 0.3, 0.4])
    calls = []

    def cannot_draw(space, arch):
        calls.append(arch)
        raise RuntimeError("no figure for this space")

    monkeypatch.setattr(review.drawing, "draw_architecture",
                        cannot_draw)
    lines = []
    result = run.run_search(_config(strategy="random"), str(tmp_path), data,
                            lines.append)
    assert len(result.history) == 4
    warnings = [line for line in lines if "cannot draw" in line]
    assert len(warnings) == 1 and "no figure for this space" in warnings[0]
    assert len(calls) == 1  # no retry for every new best
    events = _events(tmp_path)
    assert review.IMAGE_TAG not in events.Tags()["tensors"]
    _check_top_table(events, result.history, "valid_accuracy")


def test_language_model_search_draws_its_recurrent_cell(tmp_path,
                                                        monkeypatch):
    _scripted_rewards(monkeypatch, [0.004, 0.002, 0.009, 0.001], "valid_ppl")
    corpus = synthetic_text.synthetic_corpus(0, 3000, 600, 100)
    config = search_config.SearchConfig(
        space="darts_rnn", space_params={"steps": 2}, num_children=4,
        dataset="synthetic_text",
        reinforce=reinforce.ReinforceConfig(num_aggregate=2),
        lm=config_lib.LmConfig(vocab_size=len(corpus.vocab), hidden_size=16))
    lines = []
    result = run.run_search(config, str(tmp_path), corpus, lines.append)
    assert not any("cannot draw" in line for line in lines)
    events = _events(tmp_path)
    assert [step for step, _, _ in _best_architecture_images(events)] == [
        1, 3]
    table = _last_top_table(events)
    assert "| valid_ppl |" in table
    _check_top_table(events, result.history, "valid_ppl")


def test_top_table_ranks_by_reward_and_keeps_ten():
    records = [{"step": i, "reward": r, "tokens": f"t{i} | x",
                "metrics": {"valid_accuracy": r} if i != 3 else {}}
               for i, r in enumerate([0.5, 0.9, 0.1, 0.95, 0.9, 0.2, 0.3,
                                      0.4, 0.6, 0.7, 0.8, 0.05, 0.01])]
    table = review.top_table(records, "valid_accuracy")
    assert table.splitlines()[0] == "Top 10 of 13 children by reward"
    rows = _table_rows(table)
    # Children 2 and 5 tie: the first to reach 0.9 ranks first. Children
    # are numbered from 1 (step + 1).
    assert [row[1] for row in rows] == [4, 2, 5, 11, 10, 9, 1, 8, 7, 6]
    assert rows[0][3] == "-"  # child 4 has no accuracy (diverged)
    assert rows[1][4] == "t1 | x"  # the pipe is escaped, not a new column
    assert review.top_table([], "valid_ppl").splitlines()[0] == (
        "Top 0 of 0 children by reward")
