"""The LM trainer: the loss falls, averaged SGD averages, the
non-monotone trigger, learning-rate decay, TensorBoard, bad input."""

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from nas_tf import config
from nas_tf import spaces
from nas_tf.builders import build_model
from nas_tf.data import synthetic_text
from nas_tf.training import lm_trainer


@pytest.fixture(scope="module")
def corpus():
    return synthetic_text.synthetic_corpus(seed=0, num_train_words=20_000,
                                           num_valid_words=2_000,
                                           num_test_words=2_000)


def _model(vocab_size, name="DARTS_V2_RNN", hidden=32):
    entry = spaces.PUBLISHED[name]
    space = spaces.get_space(entry.space, **entry.params)
    arch = spaces.resolve_architecture(space, name)
    lm = config.LmConfig(vocab_size=vocab_size, hidden_size=hidden,
                         output_dropout=0.1, hidden_dropout=0.1,
                         x_dropout=0.1, input_dropout=0.1,
                         embedding_dropout=0.05)
    return build_model(space, arch, lm, seed=0)


def _recipe(**overrides):
    values = dict(batch_size=16, eval_batch_size=8, test_batch_size=8,
                  epochs=1, max_steps=40, log_every=1000)
    values.update(overrides)
    return config.LmTrainConfig(**values)


def test_a_few_steps_lower_the_loss(corpus, tmp_path):
    model = _model(len(corpus.vocab))
    lines = []
    trainer = lm_trainer.LmTrainer(model, corpus,
                                   _recipe(epochs=2, log_every=10),
                                   logdir=str(tmp_path), log=lines.append)
    before = lm_trainer.perplexity(trainer.evaluate(trainer.valid_data))
    result = trainer.run()
    assert result.steps == 40 and result.epochs == 2
    assert result.valid_ppl < 0.75 * before
    assert np.isfinite(result.test_ppl)
    assert any("words/s" in line for line in lines)
    assert lines[-1].startswith("best valid ppl")
    events = event_accumulator.EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"lm/train_ppl", "lm/valid_ppl", "lm/test_ppl"} <= tags


def test_averaged_sgd_keeps_the_running_mean_of_the_iterates(corpus):
    # PyTorch's ASGD as DARTS runs it: ax is the mean of the iterates from
    # the second averaged step on, and each step uses the previous step's
    # learning rate (the first one the base rate).
    model = _model(len(corpus.vocab), "NASCell", hidden=8)
    trainer = lm_trainer.LmTrainer(model, corpus, _recipe(), log=lambda _: 0)
    state = model.initial_state(16)
    iterates = []
    for k, start in enumerate((0, 10, 20, 30)):
        window = trainer.train_data[:, start:start + 11]
        _, state = trainer._train_avg(window[:, :-1], window[:, 1:], state,
                                      np.float32(0.5 ** k))
        iterates.append([w.numpy() for w in trainer.weights])
        assert float(trainer.asgd_eta) == 0.5 ** k
    for k, average in enumerate(trainer.averages):
        np.testing.assert_allclose(
            average.numpy(), np.mean([it[k] for it in iterates[1:]], axis=0),
            rtol=1e-5, atol=1e-6)


def test_non_monotone_trigger():
    # DARTS: switch when the new loss is worse than the best loss seen
    # before the last nonmono evaluations.
    trigger = lm_trainer.should_start_averaging
    assert not trigger([5.0, 4.0, 3.0], 3.5, nonmono=3)  # too few
    assert trigger([5.0, 4.0, 3.9, 3.8, 3.7], 4.5, nonmono=3)
    assert not trigger([5.0, 4.0, 3.9, 3.8, 3.7], 3.95, nonmono=3)
    assert not trigger([5.0] * 9, 9.0, nonmono=0)


@pytest.mark.slow
def test_training_switches_to_averaging_and_reports_it(corpus):
    model = _model(len(corpus.vocab), hidden=8)
    lines = []
    recipe = _recipe(epochs=6, max_steps=0, nonmono=1, batch_size=64)
    trainer = lm_trainer.LmTrainer(model, corpus, recipe, log=lines.append)
    # Scripted validation losses: epoch 4 (4.8) is worse than the best
    # before the last one (4.0), so averaging starts after epoch 4; the
    # last value is the test loss.
    losses = iter([5.0, 4.0, 4.5, 4.8, 3.0, 3.5, 3.2])
    trainer.evaluate = lambda batched: next(losses)
    result = trainer.run()
    assert result.averaging_epoch == 4
    assert any("switching to averaged SGD" in line for line in lines)
    assert [h["averaged"] for h in result.history] == [False] * 4 + [True] * 2
    assert result.valid_ppl == pytest.approx(np.exp(3.0))
    assert result.test_ppl == pytest.approx(np.exp(3.2))


def test_learning_rate_decay_of_the_enas_script():
    recipe = config.LmTrainConfig(lr_decay=0.9991, lr_decay_start=14,
                                  lr_min=1e-3)
    assert recipe.epoch_learning_rate(13) == 20.0
    assert recipe.epoch_learning_rate(14) == pytest.approx(20 * 0.9991)
    assert recipe.epoch_learning_rate(100) == pytest.approx(20 * 0.9991 ** 87)
    assert recipe.epoch_learning_rate(100_000) == 1e-3


def test_vocabulary_mismatch_is_refused(corpus):
    model = _model(len(corpus.vocab) + 3)
    with pytest.raises(ValueError) as error:
        lm_trainer.LmTrainer(model, corpus, _recipe())
    message = str(error.value)
    assert str(len(corpus.vocab) + 3) in message
    assert str(len(corpus.vocab)) in message


@pytest.mark.parametrize("field,value,message", [
    ("weight_decay_mode", "adamw",
     "weight_decay_mode='adamw'; allowed: gradient, loss"),
    ("bptt", 0, "bptt=0; it must be at least 1"),
    ("lr_decay", 1.5, "lr_decay=1.5; allowed: (0, 1]"),
    ("activation_reg_on", "both", "allowed: dropped, raw"),
])
def test_bad_recipe(field, value, message):
    with pytest.raises(ValueError) as error:
        config.LmTrainConfig(**{field: value})
    assert message in str(error.value)
