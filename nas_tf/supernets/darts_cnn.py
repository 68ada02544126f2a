"""The DARTS convolutional search network (quark0/darts
``cnn/model_search.py`` ``Network``), the continuous relaxation of the
``darts_cnn`` space.

Layout, as the original's: a stem (3x3 conv to ``3C`` -> BN), ``layers``
cells with reductions at ``layers // 3`` and ``2 * layers // 3`` (channels
double there), global average pooling and a linear classifier. A cell
preprocesses its two inputs (a factorized reduction of input 0 after a
reduction cell, else ReLU-1x1-BN; ReLU-1x1-BN on input 1), then node i
(``steps`` nodes, 4) sums one ``MixedOp`` over every earlier state: the
edges of a cell are ``sum_{i < steps} (i + 2)`` (14), in node order and,
within a node, by source (0 = cell k-2, 1 = cell k-1, 2.. = nodes). The
output concatenates the last ``multiplier`` (4) states. Edges reading an
input of a reduction cell have stride 2. Every BN but the stem's has no
affine parameters (``affine=False`` throughout the cells).

The architecture is not held here: the model is called as
``model(images, mixing, training=...)`` with ``mixing`` a dict of tensors,

* ``"normal"``, ``"reduce"``: [edges, 8] weights of each op on each edge
  (softmax of alpha in DARTS; ``darts_alpha.ArchitectureWeights`` makes
  them), used by every normal / reduction cell;
* ``"normal_edges"``, ``"reduce_edges"`` (PC-DARTS edge normalisation):
  [edges] weights multiplying each edge's output;
* ``"auxiliary_skip"`` (DARTS-): the scalar beta of the auxiliary skips,

so the architecture parameters stay outside the model's weights: their own
variables, optimizer and replication, and the model's
``stateless_call`` evaluates the loss at other weights (the second-order
step) with the same code.
"""

import functools

import keras
import tensorflow as tf

from nas_tf.supernets import darts_ops
from nas_tf.supernets import recompute

CELL_KINDS = ("normal", "reduce")


def num_edges(steps: int) -> int:
    return sum(i + 2 for i in range(steps))


class SearchCell(keras.layers.Layer):
    """``model_search.py`` ``Cell``."""

    def __init__(self, steps, multiplier, c_prev_prev, c_prev, filters,
                 reduction, reduction_prev, bn, partial_channels=1,
                 auxiliary_skip=False, **kwargs):
        super().__init__(**kwargs)
        self.steps, self.multiplier = steps, multiplier
        self.reduction = reduction
        self.preprocess0 = (
            darts_ops.FactorizedReduce(self, c_prev_prev, filters, bn,
                                       "preprocess0")
            if reduction_prev else
            darts_ops.ReluConvBn(self, c_prev_prev, filters, bn,
                                 "preprocess0"))
        self.preprocess1 = darts_ops.ReluConvBn(self, c_prev, filters, bn,
                                                "preprocess1")
        self.edges = []
        for i in range(steps):
            for source in range(i + 2):
                stride = 2 if reduction and source < 2 else 1
                self.edges.append(darts_ops.MixedOp(
                    filters, stride, bn, partial_channels, auxiliary_skip,
                    name=f"edge{len(self.edges)}"))
        self.built = True

    def call(self, s0, s1, weights, edge_weights=None, auxiliary_weight=None,
             training=None):
        states = [self.preprocess0(s0, training),
                  self.preprocess1(s1, training)]
        offset = 0
        # One unstack, not a slice per edge: its gradient is one stack.
        weights = tf.unstack(weights)
        if edge_weights is not None:
            edge_weights = tf.unstack(edge_weights)
        for _ in range(self.steps):
            terms = []
            for source, state in enumerate(states):
                edge = offset + source
                y = self.edges[edge](state, weights[edge], auxiliary_weight,
                                     training=training)
                if edge_weights is not None:
                    y = edge_weights[edge] * y
                terms.append(y)
            offset += len(states)
            states.append(tf.add_n(terms))
        return tf.concat(states[-self.multiplier:], axis=-1)


class DartsCnnSupernet(keras.Model):
    """The search network.

    Args:
      num_classes: Classifier outputs.
      filters: C, the first cells' width (``--init_channels`` 16).
      num_cells: Cells, reductions included (``--layers`` 8).
      steps: Nodes per cell (4).
      multiplier: States concatenated at a cell's output (4).
      stem_multiplier: The stem's width is ``stem_multiplier * C`` (3).
      partial_channels: PC-DARTS's K (1: DARTS).
      auxiliary_skip: DARTS-'s auxiliary skip on every edge.
      bn_momentum, bn_epsilon: BatchNorm settings (PyTorch's defaults).
      synchronized_bn: Batch statistics over all replicas (set by the search
        when it runs on several devices).
      image_channels: Input channels (the stem's initialisation reads them).
      recompute_cells: In training, keep only each cell's inputs for the
        backward pass and run the cell again there (``recompute``): the
        same values and gradients in about a third of the memory, for one
        more forward pass.

    Weights start as PyTorch 0.3 initialises them (the original sets none):
    ``darts_ops.torch_uniform`` for convs and the classifier, U(0, 1) for
    the stem BatchNorm's scale.
    """

    def __init__(self, num_classes=10, filters=16, num_cells=8, steps=4,
                 multiplier=4, stem_multiplier=3, partial_channels=1,
                 auxiliary_skip=False, bn_momentum=0.9, bn_epsilon=1e-5,
                 synchronized_bn=False, image_channels=3,
                 recompute_cells=False, **kwargs):
        kwargs.setdefault("name", "darts_cnn_supernet")
        super().__init__(**kwargs)
        if num_cells < 3:
            raise ValueError(f"num_cells={num_cells}: the search network has "
                             f"reductions at num_cells // 3 and 2 * "
                             f"num_cells // 3, which need num_cells >= 3")
        for name, value in (("steps", steps), ("multiplier", multiplier),
                            ("stem_multiplier", stem_multiplier),
                            ("partial_channels", partial_channels)):
            if value < 1:
                raise ValueError(f"{name}={value}; it must be at least 1")
        if multiplier > steps + 2:
            raise ValueError(f"multiplier={multiplier}: a cell has only "
                             f"{steps + 2} states to concatenate")
        self.steps, self.num_edges = steps, num_edges(steps)
        self.partial_channels = partial_channels
        self.auxiliary_skip = auxiliary_skip
        self.recompute_cells = recompute_cells
        bn = darts_ops.BnSettings(bn_momentum, bn_epsilon, synchronized_bn)
        self.stem_conv = keras.layers.Conv2D(
            stem_multiplier * filters, 3, padding="same", use_bias=False,
            kernel_initializer=darts_ops.torch_uniform(9 * image_channels))
        # The stem's BatchNorm2d keeps PyTorch's default affine=True.
        self.stem_bn = darts_ops.SearchBn(self, stem_multiplier * filters,
                                          bn, "stem_bn", affine=True)
        self.cells = []
        reductions = (num_cells // 3, 2 * num_cells // 3)
        width, reduction_prev = filters, False
        c_prev_prev = c_prev = stem_multiplier * filters
        for i in range(num_cells):
            reduction = i in reductions
            if reduction:
                width *= 2
            self.cells.append(SearchCell(
                steps, multiplier, c_prev_prev, c_prev, width, reduction,
                reduction_prev, bn, partial_channels, auxiliary_skip,
                name=f"cell{i}"))
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, multiplier * width
        init = darts_ops.torch_uniform(c_prev)
        self.classifier = keras.layers.Dense(
            num_classes, kernel_initializer=init, bias_initializer=init,
            name="classifier")
        self._c_prev = c_prev

    def build(self, image_shape):
        """Creates the stem's and the classifier's weights (the cells made
        theirs already) without running the network."""
        self.stem_conv.build(image_shape)
        self.classifier.build((None, self._c_prev))
        self.built = True

    def call(self, images, mixing, training=None):
        self._check(mixing)
        x = self.stem_bn(self.stem_conv(images), training)
        s0 = s1 = x
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            inputs = [s0, s1, mixing[kind], mixing.get(f"{kind}_edges"),
                      mixing.get("auxiliary_skip")]
            if training and self.recompute_cells:
                output = recompute.call(
                    cell, functools.partial(cell, training=True), inputs)
            else:
                output = cell(*inputs, training=training)
            s0, s1 = s1, output
        return self.classifier(tf.reduce_mean(s1, axis=[1, 2]))

    def _check(self, mixing):
        shape = (self.num_edges, len(darts_ops.PRIMITIVES))
        for kind in CELL_KINDS:
            if kind not in mixing:
                raise ValueError(f"mixing has no {kind!r} weights; it needs "
                                 f"{list(CELL_KINDS)}")
            got = tuple(mixing[kind].shape)
            if got != shape:
                raise ValueError(f"mixing[{kind!r}] has shape {got}; this "
                                 f"network takes {shape} (edges x ops)")
        if self.auxiliary_skip and "auxiliary_skip" not in mixing:
            raise ValueError("the network has DARTS-'s auxiliary skips; "
                             "mixing needs its 'auxiliary_skip' weight")


def build(config, partial_channels=1, auxiliary_skip=False, steps=4,
          synchronized_bn=False, recompute_cells=False) -> DartsCnnSupernet:
    """The built search network of an image ``ChildConfig`` (its
    ``num_classes``, ``filters`` C, ``num_cells``, stem multiplier, image
    size and BatchNorm settings); a cell outputs all its ``steps`` nodes,
    as ``train_search.py`` (steps = multiplier = 4)."""
    model = DartsCnnSupernet(
        config.num_classes, config.filters, config.num_cells, steps,
        multiplier=steps, stem_multiplier=config.stem_width // config.filters,
        partial_channels=partial_channels, auxiliary_skip=auxiliary_skip,
        bn_momentum=config.bn_momentum, bn_epsilon=config.bn_epsilon,
        synchronized_bn=synchronized_bn,
        image_channels=config.image_channels,
        recompute_cells=recompute_cells)
    model.build((None, config.image_size, config.image_size,
                 config.image_channels))
    return model
