"""What a child's reward reads: the best metric of the last reward_epochs
epochs (NAS-RL sec. 4.1), and 0 for a language model that diverges."""

import math

import keras
import pytest

from nas_tf import config as config_lib
from nas_tf import distribute
from nas_tf.data import dominoes
from nas_tf.data import synthetic_text
from nas_tf.search import children
from nas_tf.search import search_config
from nas_tf.training import child_trainer
from nas_tf.training import lm_trainer

# Per-epoch validation metrics whose best, last and mean over any window
# of 2 or more epochs differ, so a reward that reads the last epoch, the
# mean or every epoch is caught.
ACCURACIES = [0.2, 0.9, 0.5, 0.7, 0.4]
PERPLEXITIES = [300.0, 40.0, 90.0, 70.0, 120.0]


@pytest.fixture(scope="module")
def images():
    return dominoes.generate_dominoes(seed=0, num_train=32, num_valid=8,
                                      num_test=8)


@pytest.fixture(scope="module")
def corpus():
    return synthetic_text.synthetic_corpus(0, 3000, 600, 100)


def _evaluate(config, data):
    lines = []
    evaluator = children.ChildEvaluator(
        config, data, distribute.make_strategy("one_device"), lines.append)
    space = config.space_at(0)
    return evaluator.evaluate(space, space.sample(0), 0), lines


def _image_config(reward_epochs):
    return search_config.SearchConfig(
        space="nasrl_cnn", space_params={"num_layers": 1},
        dataset="dominoes", child_train=child_trainer.ChildTrainConfig(
            epochs=len(ACCURACIES), reward_epochs=reward_epochs))


def _text_config(corpus, reward_epochs, **lm_train):
    return search_config.SearchConfig(
        space="darts_rnn", space_params={"steps": 2}, dataset="synthetic_text",
        child_train=child_trainer.ChildTrainConfig(
            reward_epochs=reward_epochs),
        lm=config_lib.LmConfig(vocab_size=len(corpus.vocab), hidden_size=8),
        lm_train=config_lib.LmTrainConfig(
            epochs=len(PERPLEXITIES), batch_size=8, bptt=10,
            log_every=1000, **lm_train))


def _scripted_image_training(monkeypatch):
    """train_child reports ACCURACIES, of which, like the real one, only the
    last reward_epochs (the epochs it validates)."""
    def train_child(model, data, config, strategy, seed, precision=None):
        return child_trainer.ChildResult(
            ACCURACIES[-config.reward_epochs:], len(ACCURACIES),
            [1.0] * len(ACCURACIES), False, 0.0, 0.0)

    monkeypatch.setattr(children.child_trainer, "train_child", train_child)


def _scripted_lm_training(monkeypatch, perplexities):
    """train_language_model reports one epoch per perplexity; its best
    validation perplexity is that of all epochs, as the real one's."""
    def train_language_model(model, corpus, config, logdir=None, log=print,
                             test=True):
        history = [dict(epoch=i + 1, train_ppl=p, valid_ppl=p,
                        averaged=False) for i, p in enumerate(perplexities)]
        return lm_trainer.LmResult(min(perplexities), math.nan,
                                   len(perplexities), 10 * len(perplexities),
                                   None, history)

    monkeypatch.setattr(children.lm_trainer, "train_language_model",
                        train_language_model)


@pytest.mark.parametrize("reward_epochs,best", [(1, 0.4), (3, 0.7),
                                                (5, 0.9)])
def test_image_reward_is_the_best_accuracy_of_the_last_epochs(
        monkeypatch, images, reward_epochs, best):
    _scripted_image_training(monkeypatch)
    record, _ = _evaluate(_image_config(reward_epochs), images)
    assert record["status"] == children.OK
    assert record["metrics"]["valid_accuracy"] == best
    assert record["reward"] == pytest.approx(best ** 3)


@pytest.mark.parametrize("reward_epochs,best", [(1, 120.0), (3, 70.0),
                                                (5, 40.0)])
def test_text_reward_is_the_best_perplexity_of_the_last_epochs(
        monkeypatch, corpus, reward_epochs, best):
    _scripted_lm_training(monkeypatch, PERPLEXITIES)
    record, _ = _evaluate(_text_config(corpus, reward_epochs), corpus)
    assert record["status"] == children.OK
    assert record["metrics"]["valid_ppl"] == best
    assert record["reward"] == pytest.approx(80 / best ** 2)
    assert record["metrics"]["valid_ppl_per_epoch"] == PERPLEXITIES


def test_child_training_validates_exactly_the_last_reward_epochs(
        monkeypatch, images):
    order = []
    epoch_loop = child_trainer.replica_loop.epoch_loop
    evaluation_loop = child_trainer.replica_loop.evaluation_loop

    def recorded(name, compile_fn):
        def compile_and_record(*args, **kwargs):
            compiled = compile_fn(*args, **kwargs)

            def run(*run_args):
                order.append(name)
                return compiled(*run_args)
            return run
        return compile_and_record

    monkeypatch.setattr(child_trainer.replica_loop, "epoch_loop",
                        recorded("train", epoch_loop))
    monkeypatch.setattr(child_trainer.replica_loop, "evaluation_loop",
                        recorded("validate", evaluation_loop))
    config = child_trainer.ChildTrainConfig(
        epochs=4, reward_epochs=2, batch_size=16, steps_per_epoch=1)
    strategy = distribute.make_strategy("one_device")
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((14, 14, 1)), keras.layers.Conv2D(2, 3),
            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    result = child_trainer.train_child(model, images, config, strategy, 0)
    assert order == ["train"] * 3 + ["validate", "train", "validate"]
    assert len(result.valid_accuracy) == 2


def test_language_model_with_infinite_perplexity_in_the_window_scores_0(
        monkeypatch, corpus):
    _scripted_lm_training(monkeypatch, [50.0, math.inf, math.inf])
    record, lines = _evaluate(_text_config(corpus, reward_epochs=2),
                               corpus)
    assert record["status"] == children.DIVERGED
    assert record["reward"] == 0.0
    assert "valid_ppl" not in record["metrics"]
    assert any("reward 0" in line for line in lines)
    # A finite perplexity inside the window is the reward's.
    record, _ = _evaluate(_text_config(corpus, reward_epochs=3), corpus)
    assert record["status"] == children.OK
    assert record["reward"] == pytest.approx(80 / 50.0 ** 2)


def test_language_model_whose_loss_becomes_nan_scores_0(corpus):
    # Steps of 1e10 times the clipped gradient blow the weights up.
    record, lines = _evaluate(
        _text_config(corpus, reward_epochs=1, learning_rate=1e10,
                     max_steps=6),
        corpus)
    assert record["status"] == children.DIVERGED
    assert record["reward"] == 0.0
    assert any("child 1: the training loss became NaN; reward 0" in line
               for line in lines)
