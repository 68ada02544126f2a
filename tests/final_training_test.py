"""Final training: drop-path ramps, cutout, the auxiliary loss, resume."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from nas_tf import builders
from nas_tf import config as config_lib
from nas_tf import distribute
from nas_tf import spaces
from nas_tf.training import trained_run
from nas_tf.builders import child_model
from nas_tf.data import dominoes
from nas_tf.data import images
from nas_tf.data import synthetic_text
from nas_tf.ops import layers as nas_layers
from nas_tf.training import final_training
from nas_tf.training import image_trainer
from nas_tf.training import lm_trainer
from nas_tf.training import schedules


@pytest.fixture(scope="module")
def data():
    return images.without_validation(dominoes.generate_dominoes(
        seed=0, num_train=96, num_valid=32, num_test=32))


def _cells_model(space_name, arch_name, **child):
    space = spaces.get_space(space_name)
    arch = spaces.resolve_architecture(space, arch_name)
    return child_model.build_child(space, arch, config_lib.ChildConfig(
        num_classes=3, image_size=14, image_channels=1, num_cells=3,
        filters=4, **child))


def _trainer(model, data, tmp_path, **recipe):
    config = image_trainer.ImageTrainConfig(
        epochs=4, batch_size=16, steps_per_epoch=2, eval_every=4,
        schedule=schedules.LrSchedule(kind="constant", learning_rate=0.01),
        **recipe)
    return image_trainer.ImageTrainer(
        model, data, config, distribute.make_strategy("one_device"),
        str(tmp_path), log=lambda line: None)


@pytest.mark.slow
@pytest.mark.parametrize("ramp,epoch,progress", [
    ("epoch", 2, 2 / 4),       # DARTS: drop_prob * epoch / epochs
    ("step", 0, 2 / 8),        # ENAS: (step + 1) / total steps, 2 of 8
    ("step", 2, 6 / 8)])
def test_drop_path_keep_probability_follows_the_ramp(data, tmp_path, ramp,
                                                     epoch, progress):
    with distribute.make_strategy("one_device").scope():
        model = _cells_model("darts_cnn", "DARTS_V2", drop_path_rate=0.2,
                             auxiliary=False)
    trainer = _trainer(model, data, tmp_path, drop_path_ramp=ramp)
    trainer.train_epoch(epoch)
    assert float(model._drop_path_progress.variable) == pytest.approx(
        progress)
    drop = next(l for l in model.layers
                if isinstance(l, nas_layers.DropPath))
    keep = 1.0 - drop.rate * progress
    # A DropPath keeps whole examples with probability keep, scaled 1/keep.
    out = drop(tf.ones([20000, 1, 1, 1]), training=True).numpy().ravel()
    assert set(np.round(out * keep, 5)) <= {0.0, 1.0}
    assert np.mean(out > 0) == pytest.approx(keep, abs=0.015)


def test_cutout_zeroes_a_clipped_square_and_nothing_else(data):
    points = tf.constant([[0, 0], [6, 6], [12, 1]])
    mask = images.cutout_mask(points, 14, 4).numpy()
    assert mask.shape == (3, 14, 14, 1)
    # DARTS: centre (0, 0) covers rows and columns -2..1, clipped to 0..1.
    assert np.argwhere(mask[0, ..., 0] == 0).tolist() == [
        [r, c] for r in (0, 1) for c in (0, 1)]
    assert (mask[1, 4:8, 4:8] == 0).all() and mask[1].sum() == 14 * 14 - 16
    # ENAS: the square starts at the point, clipped at the bottom right.
    corner = images.cutout_mask(points, 14, 4, anchor="corner").numpy()
    assert (corner[1, 6:10, 6:10] == 0).all()
    assert corner[1].sum() == 14 * 14 - 16
    assert np.argwhere(corner[2, ..., 0] == 0).tolist() == [
        [r, c] for r in (12, 13) for c in (1, 2, 3, 4)]
    plain = next(iter(images.train_dataset(data, 8, seed=1, epoch=2)))[0]
    cut = next(iter(images.train_dataset(data, 8, seed=1, epoch=2,
                                         cutout=4)))[0]
    changed = (plain.numpy() != cut.numpy())
    # The same crops and order, with at most a 4x4 square per image cut.
    assert changed.any()
    assert (changed.reshape(8, -1).sum(axis=1) <= 16).all()
    assert (cut.numpy()[changed] == 0).all()


@pytest.mark.slow
def test_auxiliary_loss_is_weighted_and_enas_leaves_its_head_untrained(
        data, tmp_path):
    logits = tf.constant([[2.0, 0.0, -1.0]])
    aux = tf.constant([[0.0, 1.0, 0.0]])
    labels = tf.constant([0])
    config = image_trainer.ImageTrainConfig(batch_size=1, aux_weight=0.4)

    def nll(row, label):
        return -tf.nn.log_softmax(row)[0, label]

    assert float(image_trainer.loss_fn(config)([logits, aux], labels)) == \
        pytest.approx(float(nll(logits, 0) + 0.4 * nll(aux, 0)))

    with distribute.make_strategy("one_device").scope():
        model = _cells_model("enas_micro", "ENAS_micro", auxiliary=True)
    # The auxiliary loss reaches the trunk below the head: the stem's
    # gradient changes with its weight.
    x, y = next(iter(images.train_dataset(data, 16, seed=0)))
    stem = model.trainable_variables[0]

    def stem_gradient(weight):
        loss_of = image_trainer.loss_fn(dataclasses.replace(
            config, batch_size=16, aux_weight=weight))
        with tf.GradientTape() as tape:
            loss = loss_of(model(x, training=False), y)
        return tape.gradient(loss, stem).numpy()

    assert not np.allclose(stem_gradient(0.0), stem_gradient(0.4))
    trainer = _trainer(model, data, tmp_path, train_aux_head=False)
    head = [v for l in model.layers if child_model.is_auxiliary(l)
            for v in l.trainable_variables]
    assert head and not {id(v) for v in head} & {
        id(v) for v in image_trainer.trained_variables(model, trainer.config)}
    before = [v.numpy() for v in head]
    trainer.train_epoch(0)
    for v, b in zip(head, before):
        np.testing.assert_array_equal(v.numpy(), b)


class _Interrupt(Exception):
    pass


def _request(cells=False, **recipe):
    """A NAS-RL child, or with ``cells`` DARTS_V2 cells with drop path."""
    if cells:
        space = spaces.get_space("darts_cnn")
        arch = spaces.resolve_architecture(space, "DARTS_V2")
        model = config_lib.ChildConfig(num_cells=3, filters=4,
                                       drop_path_rate=0.3, auxiliary=False)
    else:
        space = spaces.get_space("nasrl_cnn", num_layers=2)
        arch, model = space.sample(1), config_lib.ChildConfig()
    return final_training.TrainingRequest(
        space=space, arch=arch, dataset="dominoes", data_dir=None,
        model=model,
        recipe=image_trainer.ImageTrainConfig(
            epochs=3, batch_size=32, steps_per_epoch=3, eval_every=3,
            schedule=schedules.LrSchedule(kind="cosine", learning_rate=0.05),
            **recipe),
        distribute="one_device")


def _weights(logdir):
    spec = trained_run.read_spec(logdir)
    model = spec.build_model()
    trained_run.restore_weights(model, logdir)
    return [w.numpy() for w in model.weights]


@pytest.mark.slow
@pytest.mark.parametrize("cells", [False, True], ids=["nasrl", "drop_path"])
def test_interrupted_training_resumes_to_the_uninterrupted_weights(
        tmp_path, monkeypatch, cells):
    # With drop path the masks of the resumed epochs must be the ones the
    # uninterrupted run drew, or the weights part.
    whole = final_training.train(_request(cells), str(tmp_path / "whole"),
                                 log=lambda line: None)
    original = image_trainer.ImageTrainer.train_epoch

    def stop_at_epoch_2(self, epoch):
        if epoch == 2:
            raise _Interrupt
        return original(self, epoch)

    cut = str(tmp_path / "cut")
    monkeypatch.setattr(image_trainer.ImageTrainer, "train_epoch",
                        stop_at_epoch_2)
    with pytest.raises(_Interrupt):
        final_training.train(_request(cells), cut, log=lambda line: None)
    assert trained_run.read_result(cut) is None
    monkeypatch.setattr(image_trainer.ImageTrainer, "train_epoch", original)
    lines = []
    resumed = final_training.train(_request(cells), cut, log=lines.append)
    assert any("resuming after epoch 2 of 3" in line for line in lines)
    assert sum(line.startswith("epoch ") for line in lines) == 1
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    for a, b in zip(_weights(cut), _weights(str(tmp_path / "whole"))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with open(tmp_path / "cut" / trained_run.RESULT) as f:
        assert json.load(f)["epochs"] == 3


def test_a_run_directory_refuses_another_recipe(tmp_path):
    final_training.train(_request(), str(tmp_path), log=lambda line: None)
    other = _request(weight_decay=0.0)
    with pytest.raises(ValueError, match="different recipe"):
        final_training.check_logdir(str(tmp_path), other)
    wider = dataclasses.replace(_request(), model=config_lib.ChildConfig(
        dropout=0.5))
    with pytest.raises(ValueError, match="different model"):
        final_training.check_logdir(str(tmp_path), wider)
    # The preset's name and the data's sizes are not part of the run.
    final_training.check_logdir(str(tmp_path), dataclasses.replace(
        _request(), preset="flags", model=config_lib.ChildConfig(
            num_classes=10, image_size=32)))
    # Before its first checkpoint a run may start over with other settings.
    for checkpoint in (tmp_path / trained_run.CHECKPOINTS).iterdir():
        checkpoint.unlink()
    final_training.check_logdir(str(tmp_path), other)


@pytest.mark.slow
def test_language_models_resume_during_averaged_sgd_to_the_uninterrupted_run(
        tmp_path, monkeypatch):
    corpus = synthetic_text.synthetic_corpus(
        seed=0, num_train_words=6_000, num_valid_words=1_000,
        num_test_words=1_000)
    space = spaces.get_space("darts_rnn", steps=2)
    # nonmono=1: averaged SGD starts once a validation loss is worse than
    # one two or more epochs before; here that is after epoch 3 (valid ppl
    # 98, 138, 146), so epochs 4 and 5 average and the run is stopped
    # between them. The learning rate is an int, as a user may write it.
    recipe = config_lib.LmTrainConfig(
        epochs=5, batch_size=16, eval_batch_size=8, test_batch_size=8,
        learning_rate=30, nonmono=1, log_every=1000)
    # No dropout: its masks are not checkpointed, everything else is.
    lm = config_lib.LmConfig(
        vocab_size=len(corpus.vocab), hidden_size=16, output_dropout=0.0,
        hidden_dropout=0.0, x_dropout=0.0, input_dropout=0.0,
        embedding_dropout=0.0)

    def run(directory):
        model = builders.build_model(space, space.sample(1), lm, seed=0)
        return lm_trainer.LmTrainer(model, corpus, recipe,
                                    log=lambda line: None,
                                    checkpoint_dir=str(directory)).run()

    whole = run(tmp_path / "whole")
    assert whole.averaging_epoch == 3
    original = lm_trainer.LmTrainer._train_epoch

    def stop_at_epoch_5(self, epoch, *args):
        if epoch == 5:
            raise _Interrupt
        return original(self, epoch, *args)

    monkeypatch.setattr(lm_trainer.LmTrainer, "_train_epoch",
                        stop_at_epoch_5)
    with pytest.raises(_Interrupt):
        run(tmp_path / "cut")
    monkeypatch.setattr(lm_trainer.LmTrainer, "_train_epoch", original)
    progress = json.loads((tmp_path / "cut" / "lm_progress.json").read_text())
    assert progress["epoch"] == 4 and progress["averaging_epoch"] == 3
    resumed = run(tmp_path / "cut")

    def ppls(result):
        return [(r["train_ppl"], r["valid_ppl"], r["averaged"])
                for r in result.history]

    # The weights, the running average and its step count, ASGD's step
    # size, the best so far and the window sampler's state cross the
    # interruption.
    assert [r["averaged"] for r in resumed.history] == [False] * 3 + [True] * 2
    np.testing.assert_allclose(ppls(resumed), ppls(whole), rtol=1e-5)
    assert resumed.averaging_epoch == 3
    assert resumed.test_ppl == pytest.approx(whole.test_ppl, rel=1e-5)
