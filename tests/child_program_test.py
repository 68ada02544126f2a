"""A child's whole training as one compiled program (the cluster's unit of
work) trains exactly as child_trainer does, and a second run of it gives
the same outcome (a closure ClusterCoordinator re-runs)."""

import math

import pytest
import tensorflow as tf

from nas_tf import distribute
from nas_tf import spaces
from nas_tf.data import dominoes
from nas_tf.search import children
from nas_tf.search import search_config
from nas_tf.training import child_program
from nas_tf.training import child_trainer


@pytest.fixture(scope="module")
def data():
    return dominoes.generate_dominoes(seed=0, num_train=128, num_valid=40,
                                      num_test=8)


@pytest.mark.parametrize("reward_epochs", [1, 3])
def test_the_program_trains_as_train_child_and_reruns_the_same(
        data, reward_epochs):
    """Two epochs; the reward reads the last one, or (3) more epochs than
    there are, so every epoch is validated. 40 validation images in
    batches of 32: the last batch is smaller."""
    train = child_trainer.ChildTrainConfig(
        epochs=2, batch_size=32, learning_rate=0.05, steps_per_epoch=3,
        reward_epochs=reward_epochs, lr_schedule="cosine")
    config = search_config.SearchConfig(
        space="nasrl_cnn", space_params={"num_layers": 2},
        dataset="dominoes", child_train=train)
    strategy = distribute.make_strategy("one_device")
    evaluator = children.ChildEvaluator(config, data, strategy)
    space = spaces.get_space("nasrl_cnn", num_layers=2)
    arch = space.sample(3)

    local = evaluator.build(space, arch, 0)
    expected = child_trainer.train_child(local.model, data, train, strategy,
                                         local.seed)
    built = evaluator.build(space, arch, 0)
    program = child_program.ChildProgram(built.model, data, train, strategy,
                                         built.seed)
    iterator = iter(tf.data.Dataset.from_tensors(
        child_program.data_element(data)).repeat())
    first = program.result(*program.run(*program.schedule_args(iterator)))
    again = program.result(*program.run(*program.schedule_args(iterator)))

    assert len(expected.valid_accuracy) == min(2, reward_epochs)
    for result in (first, again):
        assert result.valid_accuracy == expected.valid_accuracy
        assert result.train_loss == pytest.approx(expected.train_loss,
                                                  rel=1e-6)
        assert (result.epochs, result.diverged) == (2, False)
    assert again.train_loss == first.train_loss
    assert first.seconds > 0.01  # the program's own time


def test_a_diverged_child_is_cut_at_the_divergence(data):
    config = search_config.SearchConfig(
        space="nasrl_cnn", space_params={"num_layers": 2},
        dataset="dominoes", child_train=child_trainer.ChildTrainConfig(
            epochs=3, batch_size=32, steps_per_epoch=1, reward_epochs=3))
    evaluator = children.ChildEvaluator(
        config, data, distribute.make_strategy("one_device"))
    space = spaces.get_space("nasrl_cnn", num_layers=2)
    built = evaluator.build(space, space.sample(0), 0)
    program = child_program.ChildProgram(
        built.model, data, config.child_train, evaluator.strategy, 1)
    result = program.result([1.5, float("nan"), float("nan")],
                            [10.0, 0.0, 0.0], 2.0)
    # As child_trainer: epoch 2's loss is the last, no validation after it.
    assert (result.epochs, result.diverged) == (2, True)
    assert result.train_loss[0] == 1.5 and math.isnan(result.train_loss[1])
    assert result.valid_accuracy == [10 / 40]
