"""The ENAS recurrent supernet (PTB): one language model holding, for every
node of the cell, a weight matrix per (activation, predecessor) pair.

The architecture enters as the int32 ``arc`` (the space's tokens in
decision order). Once per window the arc picks each node's matrix (a slice
of the node's weights, so only the selected matrix is multiplied); inside
the time loop it picks each node's predecessor state (a gather from the
stacked states) and runs only its activation (``tf.switch_case``).
enas_lm's ``_select_function`` computes all four activations and keeps
one: the same values and gradients, but with the stacked activations a
training step took twice as long here (CPU, batch 64, 35 steps, hidden
200). One traced graph serves every arc.

The cell follows the space's layout (``spaces/enas_rnn.py``):

* ``enas_lm``, google-research ``enas_lm/src/child.py`` ``_rnn_fn``, the
  authors' corrected PTB code (the melodyguan/enas README sends PTB users
  there), so the layout an ENAS PTB search should default to:
  node 0 reads ``[x_t, h_{t-1}]`` through one ``[2H, 2H]`` matrix
  (``rnn_cell/w_prev``) and is always tanh; node i's weights are
  ``[num_functions, i, H, 2H]`` (``rnn_cell/layer_i/w``), the arc picking
  ``w[f_i, p_i]``; the output is the mean of nodes 1..N; no batch norm.
* ``enas_code``, melodyguan/enas ``src/ptb/ptb_enas_child.py``
  ``_rhn_enas``: node 0's activation is sampled too and it has a ``[2H,
  2H]`` matrix per activation (``w_prev``, ``[F * 2H, 2H]`` there, ``[F,
  2H, 2H]`` here); node i's ``[i * F * H, 2H]`` rows hold pair (p, f) at
  row ``(p * F + f) * H``, i.e. ``[i, F, H, 2H]`` here, sliced ``w[p_i,
  f_i]``; the output averages the loose ends, found from the arc in-graph
  (its ``tf.one_hot`` of the predecessors). Its search child batch-normalises
  every node's projection (one norm per node, whichever pair the arc
  picks) and the averaged output (``SearchBatchNorm``); on by default in
  this layout, ``batch_norm=False`` leaves it out (its fixed child has
  none).

In both, node i is the highway ``s = s_p + sigmoid(t) * (f(h) - s_p)``
with ``[h, t]`` its projection (value first, gate last) and s_p unmasked;
the window's dropout masks multiply x_t (``x_dropout``: enas_lm
``input_mask``, ENAS ``x_mask``) and h_{t-1} and every node's input state
(``hidden_dropout``: enas_lm ``layer_mask``, ENAS ``s_mask``); the decoder
is tied to the undropped embedding. The embedding, input and output
dropouts are ``LanguageModelBase``'s. Not copied: enas_lm's weight dropout
(``drop_w``, 0 in its search) and the ENAS code's per-occurrence word
dropout (see ``LmConfig.embedding_dropout``).

``training=True`` draws the window's dropout masks and, with batch norm,
uses batch moments and updates the moving ones; ``training=False`` (the
evaluation and the reward of both originals) uses neither.
"""

import keras
import tensorflow as tf

from nas_tf.builders import language_model
from nas_tf.builders import recurrent_cells
from nas_tf.ops import rnn_ops
from nas_tf.spaces import enas_rnn as enas_rnn_space

# How each original orders a node's matrices: enas_lm child.py indexes
# [function, predecessor]; ptb_enas_child.py's rows run predecessor-major.
FUNCTION_MAJOR = {"enas_lm": True, "enas_code": False}
# Only the ENAS code's search child normalises (ptb_enas_child.py
# _rhn_enas); enas_lm's child has no batch norm.
BATCH_NORM = {"enas_lm": False, "enas_code": True}


def as_tensor(arc) -> tf.Tensor:
    """An arc (tensor, token sequence or ``Architecture``) as int32."""
    return tf.convert_to_tensor(getattr(arc, "tokens", arc), tf.int32)


class SearchBatchNorm(keras.layers.Layer):
    """The ENAS code's PTB batch norm (``src/ptb/ptb_ops.py``
    ``batch_norm``): ``scale * (x - mean) / sqrt(epsilon + variance) +
    offset``, batch moments in training and moving ones otherwise, decay
    0.999 and epsilon 1.0 (its defaults, which ``_rhn_enas`` keeps).

    Its moving averages are TF1's ``assign_moving_average`` with that
    function's default ``zero_debias=True``: after n updates they hold the
    EMA of the n batch moments divided by ``1 - decay^n``, so the initial
    0 and 1 are forgotten at the first update. ``num_updates`` is the
    original's ``local_step``. Inside the time loop ``normalize`` only
    reports the step's moments; ``update_moving`` then applies one update
    per step in order, as the original's assignments inside its
    ``while_loop`` body do.
    """

    def __init__(self, width, decay=0.999, epsilon=1.0, **kwargs):
        super().__init__(**kwargs)
        self.width, self.decay, self.epsilon = width, decay, epsilon
        self.offset = self.add_weight((width,), "zeros", name="offset")
        self.scale = self.add_weight((width,), "ones", name="scale")
        # Replicas (each on its own part of the batch) average their
        # moving statistics.
        self.moving_mean = self.add_weight(
            (width,), "zeros", name="moving_mean", trainable=False,
            aggregation="mean")
        self.moving_variance = self.add_weight(
            (width,), "ones", name="moving_variance", trainable=False,
            aggregation="mean")
        self.num_updates = self.add_weight(
            (), "zeros", name="num_updates", trainable=False,
            aggregation="mean")
        self.built = True

    def normalize(self, x, training):
        """(normalised x, mean, variance) of a [batch, width] tensor; the
        moments are the batch's in training, else the moving ones."""
        if training:
            mean, variance = tf.nn.moments(x, [0])
        else:
            mean, variance = self.moving_mean, self.moving_variance
        y = self.scale * (x - mean) / tf.sqrt(self.epsilon + variance)
        return y + self.offset, mean, variance

    def update_moving(self, means, variances):
        """Applies the updates of T steps in order ([T, width] moments)."""
        steps = tf.cast(tf.shape(means)[0], tf.float32)
        before = self.num_updates
        after = before + steps
        # decay^(T-t) weighs step t's moments in the EMA after T steps.
        ages = steps - 1.0 - tf.range(steps)
        weights = (1.0 - self.decay) * tf.pow(self.decay, ages)
        for moving, moments in ((self.moving_mean, means),
                                (self.moving_variance, variances)):
            biased = moving * (1.0 - tf.pow(self.decay, before))
            biased = (tf.pow(self.decay, steps) * biased +
                      tf.tensordot(weights, moments, 1))
            moving.assign(biased / (1.0 - tf.pow(self.decay, after)))
        self.num_updates.assign(after)


class EnasRnnSupercell(keras.layers.Layer):
    """The shared cell of an ``EnasRnnSpace``; see the module docstring.

    ``cell(x, arc, state, training)`` runs a [batch, time, H] window from
    ``state`` (``[h]``) and returns the [batch, time, H] outputs and
    ``[h_T]``. Weights are ``node0_kernel`` and ``node{i}_kernel`` (i =
    1..N), all U(-init_range, init_range) as both originals draw them, and
    with batch norm ``node{i}_norm`` and ``output_norm``.
    """

    def __init__(self, space, units, init_range=0.04, x_dropout=0.0,
                 hidden_dropout=0.0, highway_split="gate_last",
                 batch_norm=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.space = space
        self.units = units
        self.state_size = [units]
        self.init_range = init_range
        self.x_dropout = x_dropout
        self.hidden_dropout = hidden_dropout
        self.highway_split = highway_split
        self.batch_norm = batch_norm
        self.seed = seed
        self.function_major = FUNCTION_MAJOR[space.layout]
        self.num_nodes = space.num_picking  # nodes after node 0
        names = space.token_names()
        self._node0_position = (names.index("node0/activation")
                                if space.sample_node0 else None)
        self._input_positions = [names.index(f"node{i}/input")
                                 for i in range(1, self.num_nodes + 1)]
        self._activation_positions = [
            names.index(f"node{i}/activation")
            for i in range(1, self.num_nodes + 1)]
        self._limits = [len(d.choices) for d in space.decisions]
        self._activations = [rnn_ops.activation(a)
                             for a in space.activations]
        self._mask_seed = keras.random.SeedGenerator(
            recurrent_cells.derived_seed(seed, 1))

    def build(self, input_dim):
        h, num_functions = self.units, len(self.space.activations)
        uniform = [0]

        def kernel(shape, name):
            uniform[0] += 1
            weight = self.add_weight(shape, keras.initializers.RandomUniform(
                -self.init_range, self.init_range, recurrent_cells.
                derived_seed(self.seed, 100 + uniform[0])), name=name)
            # One attribute per weight: tf.train.Checkpoint does not look
            # into a Keras layer's Python lists.
            setattr(self, name, weight)
            return weight

        node0 = (input_dim + h, 2 * h)
        if self.space.sample_node0:
            node0 = (num_functions,) + node0
        self.node_kernels = [kernel(node0, "node0_kernel")]
        for i in range(1, self.num_nodes + 1):
            pairs = ((num_functions, i) if self.function_major
                     else (i, num_functions))
            self.node_kernels.append(
                kernel(pairs + (h, 2 * h), f"node{i}_kernel"))
        self.norms = []
        if self.batch_norm:
            for i in range(self.num_nodes + 1):
                norm = SearchBatchNorm(2 * h, name=f"node{i}_norm")
                setattr(self, f"node{i}_norm", norm)
                self.norms.append(norm)
            self.output_norm = SearchBatchNorm(h, name="output_norm")
            self.norms.append(self.output_norm)
        self.built = True

    def tokens(self, arc) -> tf.Tensor:
        """``arc`` as an int32 tensor, its length checked when traced and
        its values in-graph."""
        arc = as_tensor(arc)
        expected = len(self._limits)
        if arc.shape.rank != 1 or arc.shape[0] not in (None, expected):
            raise ValueError(
                f"arc has shape {arc.shape}; {self.space!r} takes int32 "
                f"[{expected}] ({self.space.layout_help()})")
        limits = tf.constant(self._limits, tf.int32)
        checks = [
            tf.debugging.assert_non_negative(
                arc, message=f"negative token in the {self.space.name} arc"),
            tf.debugging.assert_less(
                arc, limits, message=(
                    f"{self.space.name} arc token out of range; each must "
                    f"be below {self._limits} "
                    f"({self.space.layout_help()})")),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(arc)

    def selected_kernels(self, arc):
        """The matrices ``arc`` uses: node 0's [in + H, 2H], then node i's
        [H, 2H]; slices of the shared weights (dense gradients, zero
        outside the slice, as the originals' slicing gives)."""
        return self._select_kernels(self.tokens(arc))

    def _select_kernels(self, tokens):
        node0 = self.node_kernels[0]
        kernels = [node0[tokens[self._node0_position]]
                   if self.space.sample_node0 else node0]
        for i in range(1, self.num_nodes + 1):
            p = tokens[self._input_positions[i - 1]]
            f = tokens[self._activation_positions[i - 1]]
            weights = self.node_kernels[i]
            kernels.append(weights[f, p] if self.function_major
                           else weights[p, f])
        return kernels

    def _activation(self, index):
        """The space's activation number ``index`` (a tensor); only that
        one runs."""
        return lambda value: tf.switch_case(
            index, [lambda fn=fn: fn(value) for fn in self._activations])

    def _average_weights(self, predecessors):
        """Loose ends: weight 1/#loose on each node no node reads."""
        used = tf.reduce_max(tf.one_hot(predecessors, self.num_nodes + 1),
                             axis=0)
        loose = 1.0 - used
        return loose / tf.reduce_sum(loose)

    def _masks(self, inputs, training):
        """Per-window dropout masks of x_t and of the recurrent states."""
        if not training:
            return None, None
        return recurrent_cells.window_masks(inputs, self.x_dropout,
                                            self.hidden_dropout, self.units,
                                            self._mask_seed)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, arc, state, training=False):
        tokens = self.tokens(arc)
        kernels = self._select_kernels(tokens)
        node0_activation = (
            self._activation(tokens[self._node0_position])
            if self.space.sample_node0
            # enas_lm _rnn_fn: node 0 is always tanh.
            else rnn_ops.activation("tanh"))
        predecessors = tf.gather(tokens, self._input_positions)
        activations = [self._activation(tokens[i])
                       for i in self._activation_positions]
        average = (self._average_weights(predecessors)
                   if self.space.average == "loose_ends" else None)
        x_mask, h_mask = self._masks(inputs, training)
        collect = training and bool(self.norms)

        def masked(value, mask):
            return value if mask is None else value * mask

        def normalized(projected, node, moments):
            if not self.norms:
                return projected
            y, mean, variance = self.norms[node].normalize(projected,
                                                           training)
            moments += [mean, variance]
            return y

        def step(carry, x_t):
            h_prev, moments = carry[0], []
            projected = tf.matmul(tf.concat(
                [masked(x_t, x_mask), masked(h_prev, h_mask)], 1), kernels[0])
            states = [recurrent_cells.highway(
                h_prev, normalized(projected, 0, moments), node0_activation,
                self.highway_split)]
            for i in range(1, self.num_nodes + 1):
                s_prev = tf.gather(tf.stack(states), predecessors[i - 1])
                projected = tf.matmul(masked(s_prev, h_mask), kernels[i])
                states.append(recurrent_cells.highway(
                    s_prev, normalized(projected, i, moments),
                    activations[i - 1], self.highway_split))
            if average is None:  # enas_lm: the mean of nodes 1..N
                output = tf.add_n(states[1:]) / self.num_nodes
            else:
                output = tf.tensordot(average, tf.stack(states), 1)
            output = normalized(output, -1, moments)
            return (output,) + (tuple(moments) if collect else ())

        h0 = state[0]
        initial = (h0,)
        if collect:
            initial += tuple(tf.zeros([n.width]) for n in self.norms
                             for _ in range(2))
        results = tf.scan(step, tf.transpose(inputs, [1, 0, 2]),
                          initializer=initial)
        if collect:
            for k, norm in enumerate(self.norms):
                norm.update_moving(results[1 + 2 * k], results[2 + 2 * k])
        outputs = results[0]
        return tf.transpose(outputs, [1, 0, 2]), [outputs[-1]]


class EnasRnnSupernet(language_model.LanguageModelBase):
    """The ENAS PTB language model over ``EnasRnnSupercell``.

    ``forward(tokens, arc, state=None, training=False)`` returns
    ``LmOutputs`` as ``LanguageModel.forward`` does; feed ``outputs.state``
    to the next window. ``model(tokens, arc)`` gives the logits from a zero
    state. Neither original has a decoder bias: build it with
    ``LmConfig(decoder_bias=False)``.

    Args:
      space: An ``EnasRnnSpace``; its layout decides the cell's wiring.
      lm_config: An ``LmConfig``.
      batch_norm: The ENAS code's search batch norms; None: the layout's
        own (``enas_code`` on, ``enas_lm`` off).
      seed: Seed of the initialisers and the dropout masks.
    """

    # Both originals compute the reward without dropout and, in the ENAS
    # code, with the moving batch-norm statistics (ptb_enas_child.py
    # _build_valid_rl; enas_lm child.py _build_valid).
    reward_training = False

    def __init__(self, space, lm_config, batch_norm=None, seed=None,
                 **kwargs):
        if not isinstance(space, enas_rnn_space.EnasRnnSpace):
            raise ValueError(f"the enas_rnn supernet takes an enas_rnn "
                             f"space, got {getattr(space, 'name', space)!r}")
        if batch_norm not in (None, True, False):
            raise ValueError(f"batch_norm={batch_norm!r}; allowed: None "
                             f"(the layout's own), True, False")
        kwargs.setdefault("name", "enas_rnn_supernet")
        super().__init__(lm_config, seed=seed, **kwargs)
        self.space = space
        cfg = lm_config
        self.cell = EnasRnnSupercell(
            space, cfg.hidden_size, cfg.init_range, x_dropout=cfg.x_dropout,
            hidden_dropout=cfg.hidden_dropout,
            highway_split=cfg.highway_split or space.highway_split,
            batch_norm=(BATCH_NORM[space.layout] if batch_norm is None
                        else batch_norm),
            seed=seed, name="cell")

    def build(self, input_shape=None):
        self._build_embedding()
        self.cell.build(self.lm_config.hidden_size)
        self._build_decoder()
        self.built = True

    @tf.autograph.experimental.do_not_convert
    def forward(self, tokens, arc, state=None,
                training=False) -> language_model.LmOutputs:
        """Logits, next state and outputs of ``arc`` on a [batch, time]
        window."""
        arc = as_tensor(arc)  # Keras layers take tensors positionally
        return self._forward(
            tokens, state, training,
            lambda x, s: self.cell(x, arc, s, training=training))

    def call(self, tokens, arc, training=False):
        return self.forward(tokens, arc, training=training).logits

    def selected_kernels(self, arc):
        """The cell matrices ``arc`` uses (see
        ``EnasRnnSupercell.selected_kernels``). enas_lm's weight decay
        covers only these (child.py ``var_s``: node 0's and those of nodes
        2..N, node 1's left out, each as ``l2_loss(w ** 2)``); the ENAS
        code's ``l2_reg`` covers every trainable variable."""
        return self.cell.selected_kernels(arc)


def build(space, config, seed=None, batch_norm=None) -> EnasRnnSupernet:
    """The built supernet of ``space`` (an ``EnasRnnSpace``) with
    ``config`` (an ``LmConfig``); every weight exists on return."""
    model = EnasRnnSupernet(space, config, batch_norm=batch_norm, seed=seed)
    model.build()
    return model
