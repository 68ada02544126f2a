"""The ENAS micro search cell with shared weights (melodyguan/enas
``micro_child.py``: ``_enas_layer``, ``_enas_cell``, ``_enas_conv``).

One ``SharedCell`` holds the weights of every op a node can apply to every
input it can read; the cell's part of the architecture enters as an int32
tensor, so one traced graph serves every cell.

Weights, as ``micro_child.py`` creates them (search mode):

* Each node has two sides, "x" (index1, op1) and "y" (index2, op2), with
  weights of their own (the code's ``x``/``y`` variable scopes).
* Per side, each separable conv (3x3 and 5x5) is ``_enas_conv``: two stacks
  of ReLU -> depthwise kxk -> pointwise 1x1 -> BN, and every weight of a
  stack, the BN scale and offset included, has a leading axis over the
  node's possible inputs: the slice of the chosen input is used, so the op
  has separate weights per (node, input).
* The pools and the identity have no weights: ``_enas_cell`` would add a
  ReLU -> 1x1 conv -> BN when the input's channels differ from the cell's,
  but they never differ in search (``_maybe_calibrate_size`` brings both
  inputs to the cell's width and every node has it), so the code never
  builds those weights (their input axis is also one short,
  ``curr_cell + 1``).
* Output (``_enas_layer``): the nodes no node reads, inputs included, are
  concatenated -> ReLU -> 1x1 conv whose kernel holds one ``[F, F]`` slice
  per node (``final_conv/w`` of shape ``[nodes + 2, F * F]``) -> BN.

Every BN here runs on batch statistics and keeps no moving averages, as the
code's ``fused_batch_norm(..., is_training=True)`` in ``_enas_conv``; the
code's other BNs are ``batch_norm(is_training=True)`` whose moving averages
search never reads.
"""

import math

import keras
import tensorflow as tf

from nas_tf.ops import layers as nas_layers

SEP_KERNELS = (3, 5)  # ops 0 and 1 of micro_child.py _enas_cell
SIDES = ("x", "y")
STACKS = 2  # _enas_conv stack_conv=2


def batch_norm(x, scale, offset, epsilon):
    """BN on the batch's statistics (``tf.nn.fused_batch_norm`` with
    ``is_training=True``, as micro_child.py ``_enas_conv``)."""
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        x, scale, offset, epsilon=epsilon, is_training=True)
    return y


def row_slicer(index, rank: int):
    """``w -> w[index]`` for rank-``rank`` weights, sharing the slice
    bounds between the weights (``w[index]`` builds them anew each time,
    six graph ops a weight)."""
    begin = tf.pad(tf.reshape(index, [1]), [[0, rank - 1]])
    end, strides = begin + 1, tf.ones([rank], tf.int32)
    whole = (1 << rank) - 2  # every axis but the first: all of it
    return lambda w: tf.strided_slice(w, begin, end, strides,
                                      begin_mask=whole, end_mask=whole,
                                      shrink_axis_mask=1)


def stacked_initializer(seed_generator, flat_fan_in: bool):
    """He-normal for a weight stacked over possible inputs, shape
    ``[inputs, *slice]``.

    ``flat_fan_in`` (micro_child.py): the code creates such a weight as a
    2-D ``[inputs, prod(slice)]`` variable (``create_weight``, He-normal),
    so its fan-in is the number of inputs; the values are drawn that way
    and reshaped. Otherwise each slice is drawn as a kernel of its own
    shape.
    """
    he = keras.initializers.HeNormal(seed=seed_generator)

    def initialize(shape, dtype=None):
        rows, rest = shape[0], tuple(shape[1:])
        if flat_fan_in:
            return tf.reshape(he((rows, math.prod(rest)), dtype), shape)
        return tf.stack([he(rest, dtype) for _ in range(rows)])

    return initialize


class SharedCell(keras.layers.Layer):
    """One layer of the micro search network (``_enas_layer``) after
    calibration: ``num_nodes`` nodes over two inputs of ``filters``
    channels, all at stride 1.

    Called as ``cell([input0, input1], cell_arc)`` with ``cell_arc`` an
    int32 ``[num_nodes, 4]`` of (index1, index2, op1, op2) per node, the
    decision order of ``spaces.enas_micro``.

    Args:
      num_nodes: Nodes after the two inputs (``child_num_cells``).
      filters: Channels of the inputs, of every node and of the output.
      bn_epsilon: BN epsilon (micro_child.py 1e-5).
      seed_generator: A ``keras.random.SeedGenerator`` for the weights.
      flat_fan_in: See ``stacked_initializer``.
    """

    def __init__(self, num_nodes: int, filters: int, bn_epsilon: float,
                 seed_generator=None, flat_fan_in: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_nodes = num_nodes
        self.filters = filters
        self.bn_epsilon = bn_epsilon
        self._init = stacked_initializer(seed_generator, flat_fan_in)

    def build(self, input_shape=None):
        f = self.filters
        # self.sep[(node, side, kernel)] = the two stacks of that op.
        self.sep = {}
        for node in range(2, self.num_nodes + 2):
            for side in SIDES:
                for k in SEP_KERNELS:
                    self.sep[(node, side, k)] = [
                        self._stack_weights(f"node{node}_{side}_sep{k}_{i}",
                                            node, k)
                        for i in range(STACKS)]
        states = self.num_nodes + 2
        # The [states * F, F] kernel is final_conv/w ([states, F * F])
        # reshaped: rows s*F..(s+1)*F are state s's slice.
        self.out_kernel = self.add_weight(
            name="final_conv_kernel", shape=(states, f, f),
            initializer=self._init)
        # BN's scale and offset stay float32 under a mixed policy (no
        # autocast), as Keras's BatchNormalization keeps its own: the fused
        # kernel takes 16-bit images with float32 parameters.
        self.out_scale = self.add_weight(name="final_bn_scale", shape=(f,),
                                         initializer="ones", autocast=False)
        self.out_offset = self.add_weight(name="final_bn_offset", shape=(f,),
                                          initializer="zeros",
                                          autocast=False)
        self.built = True

    def _stack_weights(self, prefix, inputs, kernel):
        f = self.filters
        return {
            "depthwise": self.add_weight(
                name=f"{prefix}_depthwise",
                shape=(inputs, kernel, kernel, f, 1), initializer=self._init),
            "pointwise": self.add_weight(
                name=f"{prefix}_pointwise", shape=(inputs, 1, 1, f, f),
                initializer=self._init),
            "scale": self.add_weight(name=f"{prefix}_bn_scale",
                                     shape=(inputs, f), initializer="ones",
                                     autocast=False),
            "offset": self.add_weight(name=f"{prefix}_bn_offset",
                                      shape=(inputs, f), initializer="zeros",
                                      autocast=False),
        }

    def call(self, inputs, cell_arc):
        states = list(inputs)
        index1, index2, op1, op2 = tf.unstack(cell_arc, axis=1)
        for j, node in enumerate(range(2, self.num_nodes + 2)):
            outs = [self._side(states, node, side, index[j], op[j])
                    for side, index, op in (("x", index1, op1),
                                            ("y", index2, op2))]
            states.append(outs[0] + outs[1])
        return self._combine(states, tf.concat([index1, index2], 0))

    def _side(self, states, node, side, index, op):
        """One side of a node: the state ``index`` through op ``op``.

        Measured on CPU (TF 2.21, one cell at 32x32x20, batch 32): picking
        the input with switch_case made the training step about 20% faster
        than the code's ``tf.stack(states)[index]``, which copies every
        state of the cell forward and back; it costs a little more tracing.
        The weight slices of the chosen input are taken before the op's
        switch_case, with a strided slice (``w[index]``, as the code does):
        ``tf.gather`` inside the branches more than doubled the traced
        graph (every captured variable adds gradient plumbing to every
        branch, and gather's sparse gradients their own).
        """
        x = tf.switch_case(index, [lambda s=s: s for s in states])
        take = {rank: row_slicer(index, rank) for rank in (2, 5)}
        sliced = {k: [{name: take[len(w.shape)](w)
                       for name, w in stack.items()}
                      for stack in self.sep[(node, side, k)]]
                  for k in SEP_KERNELS}
        branches = [lambda k=k: self._sep_conv(x, sliced[k])
                    for k in SEP_KERNELS]
        branches += [  # ops 2, 3, 4: avg pool, max pool, identity
            lambda: tf.nn.avg_pool2d(x, 3, 1, "SAME"),  # excludes padding
            lambda: nas_layers.max_pool_3x3_in_branch(x),
            lambda: x,
        ]
        return tf.switch_case(op, branches)

    def _sep_conv(self, x, stacks):
        """``_enas_conv``: per stack, ReLU -> separable conv -> BN."""
        for w in stacks:
            x = tf.nn.separable_conv2d(tf.nn.relu(x), w["depthwise"],
                                       w["pointwise"], [1, 1, 1, 1], "SAME")
            x = batch_norm(x, w["scale"], w["offset"], self.bn_epsilon)
        return x

    def _combine(self, states, read):
        """Concat of the unread states -> ReLU -> 1x1 conv -> BN.

        The code gathers the unread states and the matching kernel slices
        (a dynamic channel count). Zeroing the kernel slices of the read
        states and convolving all states gives the same sum over unread
        states, and the same gradients (zero for the read states' slices
        and, through this conv, for the read states), at a static shape.
        It also ran as fast as the gather (measured on CPU, 4 of 7 states
        unread at 32x32x20, batch 32): the extra input channels cost about
        what the gather's copies do.
        """
        f, count = self.filters, len(states)
        read_count = tf.reduce_sum(tf.one_hot(read, count), axis=0)
        unread = tf.cast(tf.equal(read_count, 0.0), self.out_kernel.dtype)
        kernel = self.out_kernel * unread[:, None, None]
        kernel = tf.reshape(kernel, (1, 1, count * f, f))
        out = tf.nn.conv2d(tf.nn.relu(tf.concat(states, axis=-1)), kernel, 1,
                           "SAME")
        return batch_norm(out, self.out_scale, self.out_offset,
                          self.bn_epsilon)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1][:-1]) + (self.filters,)
