"""Keras recurrent cells for the NAS-RL, ENAS and DARTS recurrent spaces.

Both cells work inside ``keras.layers.RNN``: they have ``state_size``,
``get_config`` (space, parameters and the architecture's token string, so
``from_config`` rebuilds the same cell) and Keras' variational dropout
(``dropout`` on x_t, ``recurrent_dropout`` on the recurrent state), one mask
per sequence shared by every step, as ``mask_2d`` in DARTS ``rnn/model.py``.

* ``TreeCell``: the NAS-RL tree with its memory cell; states ``[h, c]``,
  as Keras' LSTM (TF Addons' ``NASCell`` keeps ``[c, h]``).
* ``HighwayDagCell``: the ENAS/DARTS highway DAG; state ``[h]``.
"""

import keras
import tensorflow as tf
# keras.layers.RNN draws the per-sequence masks for cells of this mixin
# (the one Keras' own LSTMCell and GRUCell use); it is not re-exported.
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

from nas_tf import config as config_lib
from nas_tf import spaces
from nas_tf.ops import rnn_ops
from nas_tf.spaces import recurrent_dag


def window_masks(inputs, x_dropout, hidden_dropout, units, seed_generator):
    """The supernets' per-window dropout masks of x_t and of the recurrent
    states (None where the rate is 0), the x mask drawn first."""
    batch = tf.shape(inputs)[0]
    return tuple(
        keras.random.dropout(tf.ones([batch, width]), rate,
                             seed=seed_generator) if rate > 0 else None
        for rate, width in ((x_dropout, inputs.shape[-1]),
                            (hidden_dropout, units)))


def derived_seed(seed, offset):
    """A distinct seed per weight and per random stream: Keras initialisers
    given one int seed repeat the same numbers, and two SeedGenerators with
    one seed draw the same masks."""
    return None if seed is None else seed * 1009 + offset


def highway(s_prev, projected, activation, highway_split):
    """One highway node: ``s_prev + sigmoid(gate) * (activation(value) -
    s_prev)``, ``[gate, value]`` or ``[value, gate]`` being the halves of
    ``projected`` as ``highway_split`` says (ENAS paper sec. 2.1; DARTS
    sec. 3.1.2). ``activation`` is a function of the value half."""
    a, b = tf.split(projected, 2, axis=-1)
    gate, value = (a, b) if highway_split == "gate_first" else (b, a)
    return s_prev + tf.sigmoid(gate) * (activation(value) - s_prev)


class _ArchitectureCell(keras.layers.Layer, DropoutRNNCell):
    """Shared plumbing: the architecture, init range and dropout masks."""

    def __init__(self, space_name, space_params, architecture, units,
                 init_range=0.04, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.space = spaces.get_space(space_name, **space_params)
        self.architecture = spaces.resolve_architecture(self.space,
                                                        architecture)
        self.units = units
        self.init_range = init_range
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(
            derived_seed(seed, 1))
        self._weights_made = 0

    def _uniform(self):
        self._weights_made += 1
        return keras.initializers.RandomUniform(
            -self.init_range, self.init_range,
            derived_seed(seed=self.seed, offset=100 + self._weights_made))

    def _masked(self, x, h, training):
        """x_t and h_{t-1} with the sequence's dropout masks applied."""
        if training:
            x_mask = self.get_dropout_mask(x)
            h_mask = self.get_recurrent_dropout_mask(h)
            if x_mask is not None:
                x = x * x_mask
            if h_mask is not None:
                h = h * h_mask
        return x, h

    def get_config(self):
        config = super().get_config()
        config.update(
            space_name=self.space.name, space_params=dict(self.space.params),
            architecture=self.space.format(self.architecture),
            units=self.units, init_range=self.init_range,
            dropout=self.dropout, recurrent_dropout=self.recurrent_dropout,
            seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="nas_tf")
class TreeCell(_ArchitectureCell):
    """The NAS-RL tree cell (paper sec. 3.4; ``NASCell`` of TF Addons).

    Each leaf k combines ``x_t W_k`` and ``h_{t-1} U_k`` (no biases, as
    TF Addons' ``NASCell`` with ``use_bias=False``); inner nodes combine
    their children. ``c_{t-1}`` is merged into the inject node's output and
    ``c_t`` is the cell node's pre-activation value. States: ``[h, c]``.
    Weights are drawn from U(-init_range, init_range).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tree = self.space.decode(self.architecture)
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def build(self, input_shape):
        base = self.tree.base
        self.input_kernel = self.add_weight(
            (input_shape[-1], base * self.units), self._uniform(),
            name="input_kernel")
        self.recurrent_kernel = self.add_weight(
            (self.units, base * self.units), self._uniform(),
            name="recurrent_kernel")

    def call(self, inputs, states, training=False):
        h_prev, c_prev = states[0], states[1]
        x, h = self._masked(inputs, h_prev, training)
        tree = self.tree
        xs = tf.split(tf.matmul(x, self.input_kernel), tree.base, axis=-1)
        hs = tf.split(tf.matmul(h, self.recurrent_kernel), tree.base,
                      axis=-1)
        outputs, c_new = [], None
        for k, (comb, act) in enumerate(tree.nodes):
            a, b = ((xs[k], hs[k]) if k < tree.base else
                    (outputs[i] for i in tree.children(k)))
            pre = rnn_ops.combination(comb)(a, b)
            out = rnn_ops.activation(act)(pre)
            if k == tree.cell_node:
                c_new = pre
            if k == tree.inject_node:
                inj_comb, inj_act = tree.inject
                out = rnn_ops.activation(inj_act)(
                    rnn_ops.combination(inj_comb)(out, c_prev))
            outputs.append(out)
        h_new = outputs[-1]
        return h_new, [h_new, c_new]


@keras.saving.register_keras_serializable(package="nas_tf")
class HighwayDagCell(_ArchitectureCell):
    """The ENAS/DARTS recurrent cell: highway nodes on a DAG.

    Node 0: ``[a, b] = [x_t, h_{t-1}] W_0``; node i: ``[a, b] = s_p W_i``
    with s_p its predecessor's state; ``s = s_p + sigmoid(gate) * (f(value)
    - s_p)``, the gate being ``a`` or ``b`` as ``highway_split`` says. The
    output is the mean of the space's averaged nodes. No biases (DARTS
    ``_W0``/``_Ws``; ENAS ``w_prev``/``w_skip``). The recurrent dropout
    mask multiplies h_{t-1} at node 0 and every node's input state, as all
    three codes do (DARTS ``h_mask``, ENAS ``h_mask``, enas_lm
    ``layer_mask``).
    """

    def __init__(self, *args, highway_split="gate_first", **kwargs):
        super().__init__(*args, **kwargs)
        if highway_split not in config_lib.HIGHWAY_SPLITS:
            raise ValueError(f"highway_split={highway_split!r}; allowed: "
                             f"{', '.join(config_lib.HIGHWAY_SPLITS)}")
        self.highway_split = highway_split
        self.dag = self.space.decode(self.architecture)
        if not isinstance(self.dag, recurrent_dag.RecurrentDag):
            raise ValueError(f"HighwayDagCell needs an ENAS or DARTS "
                             f"recurrent space, got {self.space.name!r}")
        self.state_size = [self.units]
        self.output_size = self.units

    def build(self, input_shape):
        kernels = [self.add_weight(
            (input_shape[-1] + self.units, 2 * self.units), self._uniform(),
            name="node0_kernel")]
        for i in range(1, self.dag.num_states):
            kernels.append(self.add_weight(
                (self.units, 2 * self.units), self._uniform(),
                name=f"node{i}_kernel"))
        # One attribute per kernel: tf.train.Checkpoint does not look into
        # a Keras layer's Python lists, so a list alone would leave the
        # cell's weights out of every checkpoint.
        for i, kernel in enumerate(kernels):
            setattr(self, f"node{i}_kernel", kernel)
        self.node_kernels = kernels

    def _highway(self, s_prev, projected, activation):
        return highway(s_prev, projected, rnn_ops.activation(activation),
                       self.highway_split)

    def call(self, inputs, states, training=False):
        h_prev = states[0]
        x, h = self._masked(inputs, h_prev, training)
        h_mask = (self.get_recurrent_dropout_mask(h_prev) if training
                  else None)
        node_states = [self._highway(
            h_prev, tf.matmul(tf.concat([x, h], -1), self.node_kernels[0]),
            self.dag.node0_activation)]
        for i, (pred, act) in enumerate(self.dag.nodes, start=1):
            s_prev = node_states[pred]
            masked = s_prev if h_mask is None else s_prev * h_mask
            node_states.append(self._highway(
                s_prev, tf.matmul(masked, self.node_kernels[i]), act))
        output = tf.add_n([node_states[i] for i in self.dag.average]) / len(
            self.dag.average)
        return output, [output]

    def get_config(self):
        config = super().get_config()
        config["highway_split"] = self.highway_split
        return config


def build_cell(space, arch, units, init_range=0.04, dropout=0.0,
               recurrent_dropout=0.0, highway_split=None, seed=None):
    """The Keras cell of ``arch``; ``highway_split`` None means the
    space's original order."""
    common = dict(space_name=space.name, space_params=space.params,
                  architecture=space.format(arch), units=units,
                  init_range=init_range, dropout=dropout,
                  recurrent_dropout=recurrent_dropout, seed=seed)
    if isinstance(space, recurrent_dag.RecurrentDagSpace):
        return HighwayDagCell(
            highway_split=highway_split or space.highway_split, **common)
    if space.family == "recurrent":
        if highway_split:
            raise ValueError(
                f"highway_split={highway_split!r} applies to ENAS and DARTS "
                f"cells; {space.name} tree cells have no highway nodes")
        return TreeCell(**common)
    raise ValueError(f"search space {space.name!r} has no recurrent cell; "
                     f"recurrent spaces: nasrl_rnn, enas_rnn, darts_rnn")
