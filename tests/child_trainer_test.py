"""Child training: the originals' momentum update, replicas, flat memory."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.eager import context
from tensorflow.python.framework import ops

from nas_tf.search import children
from nas_tf import distribute
from nas_tf.search import search_config
from nas_tf.data import dominoes
from nas_tf.training import child_trainer
from nas_tf.training import momentum_sgd


@pytest.fixture(scope="module")
def data():
    return dominoes.generate_dominoes(seed=0, num_train=128, num_valid=64,
                                      num_test=8)


@pytest.mark.parametrize("nesterov", [True, False])
def test_momentum_sgd_is_tf1_momentum_optimizer(nesterov):
    # TF1's MomentumOptimizer (NAS-RL, NASNet, ENAS) is the ApplyMomentum
    # kernel; the weight decay is coupled, added to the gradient first.
    start = np.array([1.0, -2.0, 0.5], np.float32)
    ours = tf.Variable(start)
    reference = tf.Variable(start)
    accumulator = tf.Variable(tf.zeros(3))
    optimizer = momentum_sgd.MomentumSgd([ours], 0.1, momentum=0.9,
                                         nesterov=nesterov, weight_decay=0.01)
    strategy = tf.distribute.get_strategy()
    for lr, grad in [(0.1, [0.3, 0.1, -0.2]), (0.05, [-0.1, 0.4, 0.0]),
                     (0.02, [0.2, 0.2, 0.2])]:
        grad = tf.constant(grad)
        optimizer.learning_rate.assign(lr)
        optimizer.apply(strategy, [grad])
        tf.raw_ops.ResourceApplyMomentum(
            var=reference.handle, accum=accumulator.handle, lr=lr,
            grad=grad + 0.01 * reference, momentum=0.9,
            use_nesterov=nesterov)
        np.testing.assert_allclose(ours.numpy(), reference.numpy(),
                                   rtol=1e-6)
    assert not np.allclose(ours.numpy(), start)


def test_momentum_sgd_clips_the_global_norm_before_the_weight_decay():
    # DARTS: clip_grad_norm_(5) on the gradients, then SGD adds wd * w.
    start = [np.array([1.0, -2.0], np.float32), np.array([0.5], np.float32)]
    ours = [tf.Variable(v) for v in start]
    optimizer = momentum_sgd.MomentumSgd(ours, 0.1, momentum=0.0,
                                         weight_decay=0.01, clip_norm=0.5)
    grads = [tf.constant([3.0, 0.0]), tf.constant([4.0])]  # norm 5
    optimizer.apply(tf.distribute.get_strategy(), grads)
    for v, w, g in zip(ours, start, grads):
        expected = w - 0.1 * (g.numpy() * 0.1 + 0.01 * w)
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-6)


def _linear_model(seed):
    # No BatchNorm: its statistics are per replica, so only a model without
    # it trains identically on one device and on two replicas.
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((14, 14, 1)), keras.layers.Conv2D(4, 3),
        keras.layers.Flatten(), keras.layers.Dense(3)])


def test_two_replicas_train_exactly_like_one_device(data):
    config = child_trainer.ChildTrainConfig(
        epochs=2, batch_size=16, learning_rate=0.05, steps_per_epoch=3,
        weight_decay=0.01, reward_epochs=2)
    weights, results = [], []
    for kind in ("one_device", "mirrored"):
        strategy = distribute.make_strategy(kind)
        with strategy.scope():
            model = _linear_model(seed=3)
        results.append(child_trainer.train_child(model, data, config,
                                                 strategy, seed=5))
        weights.append([w.numpy() for w in model.weights])
    assert strategy.num_replicas_in_sync == 2
    # Gradients summed over replicas and weight decay counted once.
    for one, two in zip(*weights):
        np.testing.assert_allclose(one, two, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results[0].train_loss, results[1].train_loss,
                               rtol=1e-4)
    assert results[0].valid_accuracy == results[1].valid_accuracy


def test_split_batch_gives_each_replica_its_rows():
    strategy = distribute.make_strategy("mirrored")

    @tf.function
    def rows_per_replica(batch):
        parts = strategy.run(lambda part: tf.shape(part)[0],
                             (distribute.split_batch(strategy, batch),))
        return strategy.experimental_local_results(parts)

    assert [int(n) for n in rows_per_replica(tf.zeros([7, 2]))] == [4, 3]
    assert [int(n) for n in rows_per_replica(tf.zeros([8, 2]))] == [4, 4]


def _registered():
    """What per-trace state TensorFlow keeps: custom gradients in the
    gradient registry and functions in the runtime's library."""
    return (len(ops._gradient_registry._registry),
            len(context.context().list_function_names()))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["one_device", "mirrored"])
def test_children_leave_nothing_registered_behind(data, kind):
    config = search_config.SearchConfig(
        space="nasrl_cnn", space_params={"num_layers": 2}, dataset="dominoes",
        child_train=child_trainer.ChildTrainConfig(
            epochs=2, batch_size=32, learning_rate=0.05, steps_per_epoch=2,
            reward_epochs=1))
    space = config.space_at(0)
    evaluator = children.ChildEvaluator(
        config, data, distribute.make_strategy(kind), log=lambda line: None)
    counts = []
    for index in range(3):
        record = evaluator.evaluate(space, space.sample(index), index)
        assert record["status"] == children.OK
        counts.append(_registered())
    # The first child may register lasting helpers; later ones add nothing.
    assert counts[2] == counts[1]
