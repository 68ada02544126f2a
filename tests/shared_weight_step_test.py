"""The compiled shared-weight step: one architecture per step (and per
replica) from a sampler, and what happens to the weights of ops a step did
not use."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf import distribute
from nas_tf.training import momentum_sgd
from nas_tf.training import replica_loop


class TwoBranches(keras.Model):
    """``arc[0]`` picks one of two dense branches."""

    def __init__(self):
        super().__init__()
        # Non-zero biases: the decay of a zero weight is zero.
        self.branches = [keras.layers.Dense(3, bias_initializer="ones")
                         for _ in range(2)]
        for branch in self.branches:
            branch.build((None, 4))

    def call(self, x, arc, training=False):
        return tf.switch_case(arc[0], [lambda b=b: b(x)
                                       for b in self.branches])


def _train(skip_unused, op, strategy="one_device"):
    """Two steps with ``op`` as the architecture (a function of the replica
    for a MirroredStrategy); which variables moved and which have
    momentum."""
    keras.utils.set_random_seed(0)
    strategy = distribute.make_strategy(strategy)
    with strategy.scope():
        model = TwoBranches()
        variables = model.trainable_variables
        optimizer = momentum_sgd.MomentumSgd(
            variables, 0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    before = [v.numpy().copy() for v in variables]
    seen = []

    def sampler(step, replica):
        seen.append(1)
        if callable(op):
            return tf.reshape(op(replica), [1])
        return tf.constant([op], tf.int32)

    epoch = replica_loop.compile_train_epoch(
        strategy, model,
        lambda out, y: replica_loop.cross_entropy(y, out, 8),
        variables, optimizer, arc_sampler=sampler, skip_unused=skip_unused)
    data = tf.data.Dataset.from_tensor_slices(
        (np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32),
         np.arange(16, dtype=np.int32) % 3)).batch(8)
    epoch(data, tf.constant(0, tf.int64))
    epoch(data, tf.constant(2, tf.int64))
    # Traced once: the replica function is traced once per replica.
    assert len(seen) == strategy.num_replicas_in_sync
    moved = [not np.allclose(b, v.numpy()) for b, v in zip(before, variables)]
    momentum = [bool(np.any(a.numpy())) for a in optimizer.accumulators]
    # Kernel and bias of branch 0, then of branch 1.
    return moved, momentum


@pytest.mark.parametrize("op", [0, 1])
def test_idle_branch_moves_by_decay_and_momentum_as_in_tf1(op):
    moved, momentum = _train(skip_unused=False, op=op)
    # Zero data gradient, but the coupled decay still moves idle weights.
    assert moved == [True] * 4 and momentum == [True] * 4


@pytest.mark.parametrize("op", [0, 1])
def test_skip_unused_leaves_idle_branch_untouched(op):
    moved, momentum = _train(skip_unused=True, op=op)
    used = [op == 0] * 2 + [op == 1] * 2
    assert moved == used and momentum == used


@pytest.mark.parametrize("both_replicas_pick", [None, 0, 1])
def test_each_replica_trains_the_architecture_it_sampled(both_replicas_pick):
    # Two replicas (conftest's two CPU devices): replica r picks branch r,
    # or both pick the same one; a branch moves iff some replica used it,
    # so the replicas' gradients of their own architectures are summed.
    def pick(replica):
        if both_replicas_pick is None:
            return tf.cast(replica, tf.int32)
        return tf.constant(both_replicas_pick)

    moved, momentum = _train(skip_unused=True, op=pick, strategy="mirrored")
    used = ([True] * 4 if both_replicas_pick is None else
            [both_replicas_pick == 0] * 2 + [both_replicas_pick == 1] * 2)
    assert moved == used and momentum == used
