"""The DARTS recurrent search network (PTB): one language model whose cell
mixes every op on every edge of the ``DartsRnnSpace`` DAG (Liu et al. 2018,
sec. 2.2 and 3.1.2; quark0/darts ``rnn/model_search.py``
``DARTSCellSearch`` and ``RNNModelSearch``).

The architecture enters as ``weights``, a float [num_edges, num_ops]
tensor of mixing weights that the caller has already normalised (DARTS:
the softmax of alpha over each row). Row ``offset(i) + j`` is the edge from
node j into node i (i = 1..steps, j = 0..i-1, ``offset(i) = i (i - 1) /
2``), the order of the original's ``weights[offset:offset + i]``; column k
is ``PRIMITIVES[k]`` of ``spaces/darts_rnn.py`` (none, tanh, relu, sigmoid,
identity). One traced graph serves every value of the weights.

One step of the cell, from x_t and h_{t-1}:

* node 0: ``[c, h] = [x_t, h_{t-1}] W_0``, ``s_0 = h_{t-1} + sigmoid(c) *
  (tanh(h) - h_{t-1})``, the gate half first (DARTS's split);
* node i: all its predecessors' states go through its one matrix ``W_i``
  at once (``[c_j, h_j] = s_j W_i``, j < i) and ``s_i = sum_j sum_k
  weights[offset(i) + j, k] * (s_j + sigmoid(c_j) * (f_k(h_j) - s_j))``
  over the ops k other than ``none``, which adds nothing (the original
  skips it; its column gets no gradient from here);
* the output, and h_t, is the mean of s_1..s_steps.

With ``batch_norm`` (the original's search mode, the default) one batch
norm without scale or offset (``nn.BatchNorm1d(nhid, affine=False)``)
normalises s_0 and every s_i before later nodes read them. The original
has one such norm for the whole cell, so its moving moments take steps + 1
updates per time step, in node order; here they are collected inside the
time loop and applied in that order after it, which gives the same
moving moments because a training step's outputs use only batch moments.
``training=True`` normalises with the batch's moments (biased variance)
and moves the moving mean and the moving unbiased variance by
``momentum`` = 0.1; ``training=False`` uses the moving moments, as the
original's ``model.eval()`` in ``evaluate``. ``batch_norm=False`` leaves
the norm out: one-hot weights then compute the fixed ``HighwayDagCell`` of
their genotype.

Dropout as the original's search model (``RNNModel.forward`` and
``DARTSCell.forward``): once per window a mask for x_t (``x_dropout``,
drawn first) and one for the states (``hidden_dropout``), the latter
multiplying h_{t-1} at node 0 and every predecessor state before the
matmul (not the highway's own s_j); the embedding, input and output
dropouts and the tied decoder with its bias are ``LanguageModelBase``'s.
Weights are named as the fixed cell's (``node0_kernel`` [in + H, 2H],
``node{i}_kernel`` [H, 2H]), all U(-init_range, init_range).
"""

import keras
import tensorflow as tf

from nas_tf import config as config_lib
from nas_tf.builders import language_model
from nas_tf.builders import recurrent_cells
from nas_tf.ops import rnn_ops
from nas_tf.spaces import darts_rnn as darts_rnn_space

PRIMITIVES = darts_rnn_space.PRIMITIVES
# Columns of the ops that contribute: every primitive but 'none'
# (model_search.py skips it in the sum).
_ACTIVE_COLUMNS = tuple(k for k, name in enumerate(PRIMITIVES)
                        if name != "none")
# model_search.py nn.BatchNorm1d(nhid, affine=False) with PyTorch's
# defaults: momentum 0.1, eps 1e-5.
BATCH_NORM_MOMENTUM = 0.1
BATCH_NORM_EPSILON = 1e-5


def num_edges(steps: int) -> int:
    """Rows of the mixing weights: one per (node, predecessor) pair."""
    return steps * (steps + 1) // 2


def edge_offset(node: int) -> int:
    """Row of the edge from node 0 into ``node`` (1-based); its edge from
    node j is ``edge_offset(node) + j``."""
    return node * (node - 1) // 2


def edges(steps: int):
    """``(node, predecessor)`` of every row of the mixing weights, in row
    order."""
    return [(i, j) for i in range(1, steps + 1) for j in range(i)]


class AffineFreeBatchNorm(keras.layers.Layer):
    """PyTorch's ``BatchNorm1d(width, affine=False)``: ``(x - mean) /
    sqrt(variance + epsilon)`` with the batch's mean and biased variance in
    training and the moving ones otherwise; the moving mean and the moving
    unbiased variance (Bessel-corrected, as PyTorch keeps it) start at 0
    and 1 and move by ``momentum`` towards each batch's.

    ``normalize`` only reports a batch's moments; ``update_moving`` applies
    a sequence of them in order. A batch of one has no unbiased variance
    (PyTorch refuses it in training); here its variance counts as is.
    """

    def __init__(self, width, momentum=BATCH_NORM_MOMENTUM,
                 epsilon=BATCH_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.width, self.momentum, self.epsilon = width, momentum, epsilon
        # Replicas (each on its own part of the batch, as PyTorch's
        # DataParallel without synchronised norms) average their moving
        # moments.
        self.moving_mean = self.add_weight(
            (width,), "zeros", name="moving_mean", trainable=False,
            aggregation="mean")
        self.moving_variance = self.add_weight(
            (width,), "ones", name="moving_variance", trainable=False,
            aggregation="mean")
        self.built = True

    def normalize(self, x, training):
        """(normalised x, mean, unbiased variance) of a [batch, width]
        tensor; the moments are the batch's in training, else the moving
        ones."""
        if not training:
            y = ((x - self.moving_mean) /
                 tf.sqrt(self.moving_variance + self.epsilon))
            return y, self.moving_mean, self.moving_variance
        mean, variance = tf.nn.moments(x, [0])
        n = tf.cast(tf.shape(x)[0], x.dtype)
        unbiased = variance * n / tf.maximum(n - 1.0, 1.0)
        return (x - mean) / tf.sqrt(variance + self.epsilon), mean, unbiased

    def update_moving(self, means, variances):
        """Applies N updates in order ([N, width] moments)."""
        steps = tf.cast(tf.shape(means)[0], tf.float32)
        keep = 1.0 - self.momentum
        # After N updates, update k weighs momentum * keep^(N-1-k).
        ages = steps - 1.0 - tf.range(steps)
        weights = self.momentum * tf.pow(keep, ages)
        for moving, moments in ((self.moving_mean, means),
                                (self.moving_variance, variances)):
            moving.assign(tf.pow(keep, steps) * moving +
                          tf.tensordot(weights, moments, 1))


class DartsRnnSupercell(keras.layers.Layer):
    """The mixed cell of a ``DartsRnnSpace``; see the module docstring.

    ``cell(x, mixing, state, training)`` runs a [batch, time, in] window
    from ``state`` (``[h]``) with ``mixing`` the [num_edges, num_ops]
    weights and returns the [batch, time, H] outputs and ``[h_T]``.
    """

    def __init__(self, space, units, init_range=0.04, x_dropout=0.0,
                 hidden_dropout=0.0, highway_split="gate_first",
                 batch_norm=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        if highway_split not in config_lib.HIGHWAY_SPLITS:
            raise ValueError(f"highway_split={highway_split!r}; allowed: "
                             f"{', '.join(config_lib.HIGHWAY_SPLITS)}")
        self.space = space
        self.steps = space.steps
        self.num_edges = num_edges(space.steps)
        self.num_ops = len(PRIMITIVES)
        self.units = units
        self.state_size = [units]
        self.init_range = init_range
        self.x_dropout = x_dropout
        self.hidden_dropout = hidden_dropout
        self.highway_split = highway_split
        self.batch_norm = batch_norm
        self.seed = seed
        self._functions = [rnn_ops.activation(PRIMITIVES[k])
                           for k in _ACTIVE_COLUMNS]
        self._mask_seed = keras.random.SeedGenerator(
            recurrent_cells.derived_seed(seed, 1))

    def build(self, input_dim):
        h = self.units
        shapes = [(input_dim + h, 2 * h)] + [(h, 2 * h)] * self.steps
        self.node_kernels = []
        for i, shape in enumerate(shapes):
            # The fixed cell's seeds, so one seed draws the same matrices.
            kernel = self.add_weight(shape, keras.initializers.RandomUniform(
                -self.init_range, self.init_range,
                recurrent_cells.derived_seed(self.seed, 101 + i)),
                name=f"node{i}_kernel")
            # One attribute per weight: tf.train.Checkpoint does not look
            # into a Keras layer's Python lists.
            setattr(self, f"node{i}_kernel", kernel)
            self.node_kernels.append(kernel)
        self.norm = (AffineFreeBatchNorm(h, name="norm") if self.batch_norm
                     else None)
        self.built = True

    def mixing_weights(self, weights) -> tf.Tensor:
        """``weights`` as a float tensor, its shape checked when traced."""
        if not isinstance(weights, (tf.Tensor, tf.Variable)):
            weights = tf.convert_to_tensor(weights)
        if not weights.dtype.is_floating:
            raise ValueError(
                f"weights have dtype {weights.dtype.name}; the mixing "
                f"weights are floats")
        expected = [self.num_edges, self.num_ops]
        if not weights.shape.is_compatible_with(expected):
            raise ValueError(
                f"weights have shape {weights.shape}; {self.space!r} takes "
                f"{expected}: one row per edge (node i's from nodes 0..i-1 "
                f"at rows i(i-1)/2 + j, i = 1..{self.steps}), one column "
                f"per op of {', '.join(PRIMITIVES)}")
        return tf.cast(weights, self.compute_dtype)

    def _split(self, projected):
        """(sigmoid(gate), value) halves of a node's projection."""
        a, b = tf.split(projected, 2, axis=-1)
        gate, value = (a, b) if self.highway_split == "gate_first" else (b, a)
        return tf.sigmoid(gate), value

    def _masks(self, inputs, training):
        """The window's dropout masks of x_t and of the states; the x mask
        is drawn first, as DARTSCell.forward does."""
        if not training:
            return None, None
        return recurrent_cells.window_masks(inputs, self.x_dropout,
                                            self.hidden_dropout, self.units,
                                            self._mask_seed)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, mixing, state, training=False):
        mixing = self.mixing_weights(mixing)
        # [num_edges, active ops]: 'none' adds nothing.
        active = tf.gather(mixing, _ACTIVE_COLUMNS, axis=1)
        units, input_dim = self.units, inputs.shape[-1]
        x_mask, h_mask = self._masks(inputs, training)
        collect = training and self.norm is not None
        node0 = self.node_kernels[0]
        if x_mask is not None:
            inputs = inputs * x_mask[:, None, :]
        # x_t's half of node 0's projection, for the whole window in one
        # matmul (the mask is the window's, so it commutes).
        x_projected = tf.einsum("btd,dk->tbk", inputs, node0[:input_dim])
        recurrent0 = node0[input_dim:]

        def masked(value):
            return value if h_mask is None else value * h_mask

        def normalized(s, moments):
            if self.norm is None:
                return s
            y, mean, variance = self.norm.normalize(s, training)
            moments.append((mean, variance))
            return y

        def step(carry, x_t):
            h_prev, moments = carry[0], []
            gate, value = self._split(
                x_t + tf.matmul(masked(h_prev), recurrent0))
            s0 = h_prev + gate * (tf.tanh(value) - h_prev)
            states = normalized(s0, moments)[None]  # [1, batch, H]
            for i in range(1, self.steps + 1):
                # Every predecessor through W_i in one matmul.
                projected = tf.reshape(
                    tf.matmul(tf.reshape(masked(states), [-1, units]),
                              self.node_kernels[i]), [i, -1, 2 * units])
                gate, value = self._split(projected)
                # [ops, i, batch, H]: each op's highway from each
                # predecessor.
                highways = tf.stack([states + gate * (f(value) - states)
                                     for f in self._functions])
                offset = edge_offset(i)
                s = tf.einsum("jk,kjbh->bh", active[offset:offset + i],
                              highways)
                states = tf.concat([states, normalized(s, moments)[None]], 0)
            output = tf.reduce_mean(states[1:], 0)
            if not collect:
                return (output,)
            means, variances = zip(*moments)
            return output, tf.stack(means), tf.stack(variances)

        initial = (state[0],)
        if collect:
            initial += (tf.zeros([self.steps + 1, units]),) * 2
        results = tf.scan(step, x_projected, initializer=initial)
        if collect:
            # [time, steps + 1, H] in the original's update order.
            self.norm.update_moving(tf.reshape(results[1], [-1, units]),
                                    tf.reshape(results[2], [-1, units]))
        outputs = results[0]
        return tf.transpose(outputs, [1, 0, 2]), [outputs[-1]]


class DartsRnnSupernet(language_model.LanguageModelBase):
    """The DARTS search language model over ``DartsRnnSupercell``
    (``RNNModelSearch``).

    ``forward(tokens, weights, state=None, training=False)`` returns
    ``LmOutputs`` as ``LanguageModel.forward`` does; feed
    ``outputs.state`` to the next window. ``model(tokens, weights)`` gives
    the logits from a zero state. The architecture parameters (alpha) are
    the caller's: this model holds only the network's weights.

    Args:
      space: A ``DartsRnnSpace`` with ``average="all"``.
      lm_config: An ``LmConfig``; the search's sizes and dropouts are
        rnn/train_search.py's (emb = hid = 300, dropouts 0.75 / 0.25 /
        0.75 / 0.2 / 0), not the ``LmConfig`` defaults.
      batch_norm: The search cell's batch norm (default, as
        model_search.py); False leaves it out.
      seed: Seed of the initialisers and the dropout masks.
    """

    def __init__(self, space, lm_config, batch_norm=True, seed=None,
                 **kwargs):
        if not isinstance(space, darts_rnn_space.DartsRnnSpace):
            raise ValueError(f"the darts_rnn supernet takes a darts_rnn "
                             f"space, got {getattr(space, 'name', space)!r}")
        if space.average != "all":
            raise ValueError(
                f"the darts_rnn supernet averages nodes 1..steps "
                f"(rnn/model_search.py); got a space with average="
                f"{space.average!r}, allowed: 'all'")
        if batch_norm not in (True, False):
            raise ValueError(f"batch_norm={batch_norm!r}; allowed: True, "
                             f"False")
        kwargs.setdefault("name", "darts_rnn_supernet")
        super().__init__(lm_config, seed=seed, **kwargs)
        self.space = space
        cfg = lm_config
        self.cell = DartsRnnSupercell(
            space, cfg.hidden_size, cfg.init_range, x_dropout=cfg.x_dropout,
            hidden_dropout=cfg.hidden_dropout,
            highway_split=cfg.highway_split or space.highway_split,
            batch_norm=batch_norm, seed=seed, name="cell")
        self.num_edges = self.cell.num_edges
        self.num_ops = self.cell.num_ops

    def build(self, input_shape=None):
        self._build_embedding()
        self.cell.build(self.lm_config.hidden_size)
        self._build_decoder()
        self.built = True

    @tf.autograph.experimental.do_not_convert
    def forward(self, tokens, weights, state=None,
                training=False) -> language_model.LmOutputs:
        """Logits, next state and outputs on a [batch, time] window with
        the [num_edges, num_ops] mixing weights ``weights``."""
        weights = self.cell.mixing_weights(weights)
        return self._forward(
            tokens, state, training,
            lambda x, s: self.cell(x, weights, s, training=training))

    def call(self, tokens, weights, training=False):
        return self.forward(tokens, weights, training=training).logits


def build(space, config, seed=None, batch_norm=True) -> DartsRnnSupernet:
    """The built search network of ``space`` (a ``DartsRnnSpace``) with
    ``config`` (an ``LmConfig``); every weight exists on return."""
    model = DartsRnnSupernet(space, config, batch_norm=batch_norm, seed=seed)
    model.build()
    return model
