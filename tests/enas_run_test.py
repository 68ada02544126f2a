"""The ENAS loop: its run directory, kill-and-resume, the frozen-controller
ablation."""

import dataclasses
import json
import os

import numpy as np
import pytest

from conftest import summary_tags

from nas_tf import config as config_lib
from nas_tf import controller as controller_lib
from nas_tf import spaces
from nas_tf.controller import reinforce
from nas_tf.data import dominoes
from nas_tf.search import enas_config
from nas_tf.search import enas_run
from nas_tf.search import policy_eval
from nas_tf.search import run
from nas_tf.search import search_config
from nas_tf.training import image_trainer
from nas_tf.training import replica_loop
from nas_tf.training import schedules

EPOCHS, STEPS, UPDATES, M = 2, 3, 2, 2


def _config(**enas_changes):
    train = image_trainer.ImageTrainConfig(
        epochs=EPOCHS, batch_size=16, steps_per_epoch=STEPS,
        schedule=schedules.LrSchedule(kind="sgdr", learning_rate=0.05,
                                      lr_min=0.0005, sgdr_t0=1),
        nesterov=True, weight_decay=2e-4, grad_clip=0.0, aux_weight=0.4,
        train_aux_head=False, drop_path_ramp="step")
    enas = enas_config.EnasConfig(train=train, controller_train_steps=UPDATES,
                                  derive_samples=3)
    # One node per cell: the loop's state and records do not depend on the
    # cell's size (the supernet's wiring is enas_micro_supernet_test's),
    # and every run compiles half as much.
    return search_config.SearchConfig(
        space="enas_micro", space_params={"num_nodes": 1}, strategy="enas",
        dataset="dominoes", seed=3,
        controller=controller_lib.CONTROLLER_PRESETS["enas_micro"],
        reinforce=dataclasses.replace(
            reinforce.REINFORCE_PRESETS["enas_micro"], num_aggregate=M),
        child=config_lib.ChildConfig(num_cells=1, filters=4, auxiliary=True,
                                     drop_path_rate=0.4, dropout=0.1),
        enas=dataclasses.replace(enas, **enas_changes), reward="acc")


@pytest.fixture(scope="module")
def data():
    return dominoes.generate_dominoes(seed=0, num_train=64, num_valid=32,
                                      num_test=8)


def _weights(searcher):
    return [v.numpy() for v in
            replica_loop.model_variables(searcher.supernet)]


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """An uninterrupted run: its directory, history and final weights."""
    logdir = tmp_path_factory.mktemp("enas")
    searcher = enas_run.EnasRun(_config(), str(logdir), data, lambda _: None)
    result = searcher.run()
    return logdir, result, _weights(searcher)


def test_history_has_one_line_per_controller_sample(finished):
    logdir, result, _ = finished
    lines = [json.loads(line) for line in
             open(os.path.join(logdir, run.HISTORY_FILE))]
    assert len(lines) == EPOCHS * UPDATES * M == len(result.history)
    assert [r["epoch"] for r in lines] == sorted(
        [e + 1 for e in range(EPOCHS)] * UPDATES * M)
    space = _config().space_at(0)
    for record in lines:
        space.parse(record["tokens"])
        accuracy = record["metrics"]["valid_accuracy"]
        # One validation minibatch of 16 images; the reward is "acc".
        assert record["reward"] == accuracy and (accuracy * 16).is_integer()
    best = open(os.path.join(logdir, run.BEST_FILE)).read().strip()
    assert best == result.best_tokens
    space.parse(best)
    assert "--space=enas_micro" in open(
        os.path.join(logdir, run.BEST_SPACE_FILE)).read()


def test_tensorboard_has_the_shared_controller_and_derived_tags(finished):
    tags = summary_tags(finished[0])
    assert {"shared/loss", "shared/accuracy", "shared/lr",
            "controller/baseline", "controller/entropy", "controller/loss",
            "derived/architecture", "derived/drawing",
            "derived/valid_accuracy"} <= tags


class _Killed(Exception):
    pass


def _kill_at(monkeypatch, method, when):
    """Makes ``EnasRun.method`` raise once ``when(args)`` holds (after
    running, for ``_record``; before, for a phase)."""
    original = getattr(enas_run.EnasRun, method)

    def dying(self, *args):
        if method != "_record" and when(args):
            raise _Killed
        out = original(self, *args)
        if method == "_record" and when(args):
            raise _Killed
        return out

    monkeypatch.setattr(enas_run.EnasRun, method, dying)


@pytest.mark.slow
def test_killed_run_resumes_as_if_uninterrupted(finished, data, tmp_path,
                                                monkeypatch):
    logdir, _, weights = finished
    # Killed in epoch 1's controller phase, after its third sample ...
    _kill_at(monkeypatch, "_record", lambda args: args[0] == 2)
    with pytest.raises(_Killed):
        enas_run.EnasRun(_config(), str(tmp_path), data, lambda _: None).run()
    monkeypatch.undo()
    # ... then, resumed, in epoch 2's shared phase.
    lines = []
    _kill_at(monkeypatch, "_shared_phase", lambda args: args[0] == 1)
    with pytest.raises(_Killed):
        enas_run.EnasRun(_config(), str(tmp_path), data, lines.append).run()
    monkeypatch.undo()
    assert lines[0] == (f"resuming {tmp_path}: epoch 1 of 2 resumes at its "
                        "controller phase")
    lines = []
    searcher = enas_run.EnasRun(_config(), str(tmp_path), data, lines.append)
    assert lines[0] == (f"resuming {tmp_path}: epoch 2 of 2 resumes at its "
                        "shared weights phase")
    searcher.run()
    expected = [json.loads(line) for line in
                open(os.path.join(logdir, run.HISTORY_FILE))]
    got = [json.loads(line) for line in
           open(os.path.join(tmp_path, run.HISTORY_FILE))]
    assert got == expected
    # Every variable, BatchNorm statistics and dropout seeds included.
    for a, b in zip(_weights(searcher), weights):
        np.testing.assert_array_equal(a, b)
    assert (open(os.path.join(tmp_path, run.BEST_FILE)).read() ==
            open(os.path.join(logdir, run.BEST_FILE)).read())


@pytest.mark.slow
def test_frozen_controller_samples_from_its_initial_policy(data, tmp_path):
    searcher = enas_run.EnasRun(_config(controller_updates=False),
                                str(tmp_path), data, lambda _: None)
    before = [v.numpy() for v in searcher.controller.weights]
    searcher.run()
    for a, b in zip(before, searcher.controller.weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert len(searcher.history) == EPOCHS * UPDATES * M


def test_enas_needs_a_space_with_a_supernet():
    with pytest.raises(ValueError, match="space 'nasrl_cnn' has none"):
        search_config.check_search_config(dataclasses.replace(
            _config(), space="nasrl_cnn", space_params={}))


@pytest.mark.slow
def test_policy_eval_scores_both_policies_and_draws_the_memory(finished,
                                                               tmp_path):
    logdir = finished[0]
    with open(os.path.join(logdir, run.CONFIG_FILE)) as f:
        config = search_config.SearchConfig.from_json(f.read())
    assert config == _config()
    searcher = enas_run.EnasRun(config, str(logdir), log=lambda _: None)
    try:
        # The untrained policy is the run's controller before training.
        fresh = policy_eval.controller_of(searcher, untrained=True)
        restarted = enas_run.EnasRun(_config(), str(tmp_path / "new"),
                                     searcher.data, lambda _: None)
        restarted.lock.release()
        for a, b in zip(fresh.weights, restarted.controller.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        out = str(tmp_path / "policy")
        for untrained in (False, True):
            ev = policy_eval.evaluate_policy(searcher, 6, untrained,
                                             num_valid=20, log=lambda _: None)
            assert len(ev.rewards) == 6 and ev.num_valid == 20
            assert all((a * 20).is_integer() for a in ev.accuracies)
            paths = policy_eval.write_policy_evaluation(out, ev)
        assert json.load(open(paths["untrained"]))["num_samples"] == 6
        assert open(paths["plot"], "rb").read(4) == b"\x89PNG"
        png = policy_eval.write_choice_memory(out, searcher, count=12)
        assert open(png, "rb").read(4) == b"\x89PNG"
    finally:
        searcher.lock.release()


def test_choice_memory_sees_a_state_that_copies_a_choice():
    space = spaces.get_space("enas_micro", num_nodes=2)
    rng = np.random.default_rng(0)
    tokens = np.stack([space.sample(int(rng.integers(1 << 30))).tokens
                       for _ in range(50)])
    decisions = len(space.decisions)
    hidden = rng.normal(size=(50, decisions, 3))
    # The state read at the last decision holds the first decision's value.
    hidden[:, -1, 0] = 10.0 * tokens[:, 0]
    memory = policy_eval.choice_memory(space, tokens, hidden)
    assert memory[-1, 0] > 0.9
    assert np.nanmax(memory[:-1]) < 0.5
    assert np.isnan(memory[0, 0]) and np.isnan(memory[0, -1])
