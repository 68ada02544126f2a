"""The DARTS loop: its run directory, TensorBoard, kill-and-resume,
data parallelism, second order and the follow-ups as options."""

import dataclasses
import json
import os

import numpy as np
import pytest

from conftest import summary_tags

from nas_tf import config as config_lib
from nas_tf.data import dominoes
from nas_tf.search import darts_config
from nas_tf.search import darts_run
from nas_tf.search import run
from nas_tf.search import search_config
from nas_tf.training import image_trainer
from nas_tf.training import replica_loop
from nas_tf.training import schedules

EPOCHS, STEPS, BATCH = 2, 3, 8


def _config(distribute="auto", **darts_changes):
    train = image_trainer.ImageTrainConfig(
        epochs=EPOCHS, batch_size=BATCH, steps_per_epoch=STEPS,
        schedule=schedules.LrSchedule(kind="cosine", learning_rate=0.05,
                                      lr_min=0.001, epochs=EPOCHS),
        momentum=0.9, nesterov=False, weight_decay=3e-4, grad_clip=5.0,
        cutout=0)
    darts = darts_config.DartsConfig(train=train, arch_learning_rate=0.01,
                                     hessian_every=1, hessian_iterations=3)
    return search_config.SearchConfig(
        space="darts_cnn", space_params={"steps": 2}, strategy="darts",
        dataset="dominoes", seed=3,
        child=config_lib.ChildConfig(num_cells=3, filters=4),
        darts=dataclasses.replace(darts, **darts_changes),
        distribute=distribute)


@pytest.fixture(scope="module")
def data():
    return dominoes.generate_dominoes(seed=0, num_train=48, num_valid=16,
                                      num_test=8)


def _state(searcher):
    return ([v.numpy() for v in
             replica_loop.model_variables(searcher.supernet)] +
            [v.numpy() for v in searcher.architecture.variables_list])


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    logdir = tmp_path_factory.mktemp("darts")
    lines = []
    searcher = darts_run.DartsRun(_config(), str(logdir), data,
                                  lines.append)
    result = searcher.run()
    return logdir, result, _state(searcher), lines


def _history(logdir):
    return [json.loads(line) for line in
            open(os.path.join(logdir, run.HISTORY_FILE))]


def test_history_has_one_line_per_epoch_with_genotype_and_monitors(
        finished):
    logdir, result, _, lines = finished
    records = _history(logdir)
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))
    space = _config().space_at(0)
    for record in records:
        arch = space.parse(record["tokens"])
        assert space.format(arch) == record["tokens"]
        assert record["tokens"].startswith("Genotype(normal=[")
        metrics = record["metrics"]
        for key in ("train_loss", "alpha_loss", "train_accuracy",
                    "valid_accuracy", "skip_normal", "skip_reduce",
                    "eigenvalue"):
            assert np.isfinite(metrics[key]), key
        assert np.array(metrics["alpha"]["normal"]).shape == (5, 8)
        np.testing.assert_allclose(
            np.array(metrics["alpha"]["reduce"]).sum(axis=1), 1.0,
            atol=1e-4)
    best = open(os.path.join(logdir, run.BEST_FILE)).read().strip()
    assert best == records[-1]["tokens"] == result.best_tokens
    assert "darts_cnn" in open(
        os.path.join(logdir, run.BEST_SPACE_FILE)).read() or "steps=2" in \
        open(os.path.join(logdir, run.BEST_SPACE_FILE)).read()
    assert any(line.startswith("[epoch 2/2]") for line in lines)


def test_alpha_moves_and_only_through_its_own_optimizer(finished):
    """Alpha leaves its initial 1e-3 scale, and the weights' decay never
    touches it (it is not among the network's variables)."""
    logdir = finished[0]
    first, last = _history(logdir)[0], _history(logdir)[-1]
    assert first["metrics"]["alpha"] != last["metrics"]["alpha"]


def test_tensorboard_has_the_darts_tags(finished):
    tags = summary_tags(finished[0])
    assert {"darts/train_loss", "darts/alpha_loss", "darts/lr",
            "child/valid_accuracy", "alpha/normal", "alpha/reduce",
            "derived/architecture", "derived/drawing",
            "collapse/skip_normal", "collapse/skip_reduce",
            "collapse/eigenvalue"} <= tags


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_killed_run_resumes_as_if_uninterrupted(data, tmp_path, monkeypatch):
    # Uninterrupted, killed and resumed with one node per cell: three
    # smaller networks to compile than two of the module's.
    config = dataclasses.replace(_config(), space_params={"steps": 1})
    logdir, cut = tmp_path / "whole", tmp_path / "cut"
    whole = darts_run.DartsRun(config, str(logdir), data, lambda _: None)
    whole.run()
    state = _state(whole)
    original = darts_run.DartsRun._record

    def dying(self, epoch, stats):
        record = original(self, epoch, stats)
        if epoch == 1:  # the history line is written, the checkpoint not
            raise _Killed
        return record

    monkeypatch.setattr(darts_run.DartsRun, "_record", dying)
    with pytest.raises(_Killed):
        darts_run.DartsRun(config, str(cut), data, lambda _: None).run()
    monkeypatch.undo()
    lines = []
    searcher = darts_run.DartsRun(config, str(cut), data, lines.append)
    assert lines[0] == f"resuming {cut}: 1 of 2 epochs done"
    searcher.run()

    def without_time(records):
        return [{k: v for k, v in r.items() if k != "wall_time"}
                for r in records]

    assert without_time(_history(cut)) == without_time(_history(logdir))
    for a, b in zip(_state(searcher), state):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_two_replicas_give_the_alpha_of_one_device(data, tmp_path):
    """Alpha outside the replicated weights, gradients summed over
    replicas and BatchNorm statistics over the global batch: two logical
    CPU devices follow one device's alpha."""
    alphas = {}
    for kind in ("one_device", "mirrored"):
        # One node per cell and without the cells' rerun (whose gradient
        # darts_architect_test checks): a smaller graph to compile twice.
        config = _config(distribute=kind, hessian_every=0,
                         recompute_cells=False)
        config = dataclasses.replace(
            config, space_params={"steps": 1},
            darts=dataclasses.replace(config.darts, train=dataclasses.replace(
                config.darts.train, epochs=1)))
        searcher = darts_run.DartsRun(config, str(tmp_path / kind), data,
                                      lambda _: None)
        assert searcher.device_strategy.num_replicas_in_sync == (
            2 if kind == "mirrored" else 1)
        searcher.run()
        alphas[kind] = [v.numpy() for v in
                        searcher.architecture.variables_list]
    initial = darts_config.DartsConfig().init_scale
    for one, two in zip(alphas["one_device"], alphas["mirrored"]):
        assert np.abs(one).max() > 10 * initial  # alpha moved
        # To 1e-3 of alpha's values of about 3e-2: the replicas sum in
        # another order and the synchronized BatchNorm takes E[x^2] -
        # E[x]^2, and Adam's normalised step magnifies the last digits of
        # gradients near zero (measured: 3e-4 at most after 3 steps).
        np.testing.assert_allclose(two, one, atol=1e-3)


@pytest.mark.slow
def test_second_order_search_runs(data, tmp_path):
    """The loop with --unrolled (the exact order's gradient is checked
    against it in darts_architect_test.py), on one node per cell: a
    smaller network to compile."""
    config = dataclasses.replace(_config(order="second", hessian_every=0),
                                 space_params={"steps": 1})
    result = darts_run.DartsRun(config, str(tmp_path), data,
                                lambda _: None).run()
    assert len(result.history) == EPOCHS
    assert all(np.isfinite(r["metrics"]["alpha_loss"])
               for r in result.history)


@pytest.mark.slow
def test_follow_ups_run_together_and_stop_early(data, tmp_path):
    """PC-DARTS (K = 2, edge normalisation, one warm-up epoch), DARTS-'s
    decayed skip, SDARTS-RS noise, Fair DARTS's sigmoid and zero-one loss,
    and DARTS+'s skip rule (at one skip connection, so it fires: after
    the second epoch, with one node per cell and seed 6)."""
    config = _config(partial_channels=2, edge_normalization=True,
                     arch_warmup_epochs=1, auxiliary_skip=True,
                     perturbation="random", mixing="sigmoid",
                     zero_one_loss_weight=10.0, early_stop="skip_count",
                     skip_limit=1, hessian_every=0)
    # One node per cell: two steps (the warm-up's and alpha's) to compile.
    config = dataclasses.replace(config, space_params={"steps": 1}, seed=6)
    lines = []
    searcher = darts_run.DartsRun(config, str(tmp_path), data, lines.append)
    before = [v.numpy() for v in searcher.architecture.variables_list]
    result = searcher.run()
    records = result.history
    assert "edges_above_threshold" in records[0]["metrics"]
    if len(records) == 1:  # stopped after the warm-up epoch
        assert any("early stop (skip_count)" in line for line in lines)
        assert records[0]["metrics"]["skip_normal"] >= 1
        # Alpha does not move during the warm-up.
        for a, b in zip(before, searcher.architecture.variables_list):
            np.testing.assert_array_equal(a, b.numpy())
    else:
        assert records[0]["metrics"]["skip_normal"] == 0
