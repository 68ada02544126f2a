"""The ENAS micro supernet: melodyguan/enas ``micro_child.py`` in search mode
(``fixed_arc=None``), the network ``scripts/cifar10_micro_search.sh`` trains.

Layout (``_model``):

* Stem: 3x3 conv to ``3 * out_filters`` -> BN; the stem output is both
  inputs of layer 0 (``stem_conv``).
* ``num_cells + 2`` layers (``child_num_layers`` + 2); layers
  ``num_cells // 3`` and ``2 * (num_cells // 3) + 1`` are reductions
  (``pool_layers``), where ``out_filters`` doubles (in search as in the
  fixed child).
* A reduction layer first halves the previous output with a factorized
  reduction (``_factorized_reduction``, no ReLU first); its two inputs are
  then the previous output and that reduction, and the reduction arc runs
  on them at stride 1. The next layer reads that reduction as its k-2
  input, not the layer before.
* Each layer calibrates its two inputs (``_maybe_calibrate_size``): input 0
  goes through ReLU -> factorized reduction if it is twice the size, else
  ReLU -> 1x1 conv -> BN if its channels differ from ``out_filters``; input
  1 through ReLU -> 1x1 conv -> BN if its channels differ. There is no
  layer base (the fixed child's ReLU -> 1x1 -> BN on input 1): search's
  ``_enas_layer`` goes from calibration straight to the nodes
  (``enas_micro_cell.SharedCell``).
* No drop path: ``_enas_layer`` never calls ``_apply_drop_path``, so the
  script's ``--child_drop_path_keep_prob=0.60`` (``drop_path_rate``) acts
  only on the fixed child and is ignored here.
* Auxiliary head (``--child_use_aux_heads``, ``config.auxiliary``) after
  layer ``pool_layers[-1] + 1``: ReLU -> avg pool 5x5 stride 3 VALID -> 1x1
  conv 128 -> BN -> ReLU -> hw x hw SAME conv 768 -> BN -> ReLU -> global
  average -> FC without bias (``conv_ops.auxiliary_head(enas_style=True)``,
  named ``aux_head`` so ``image_trainer.trained_variables`` can leave it
  out). In the code its loss is weighted 0.4 (``_build_train``) and its
  variables are left out of the trained list (they keep their initial
  values): ``ImageTrainConfig(aux_weight=0.4, train_aux_head=False)``.
* Top: ReLU -> global average pool -> dropout (``1 - keep_prob``) -> FC
  without bias.

What ``training`` switches: only the dropout before the FC. Every BN runs
on batch statistics whatever ``training`` says: ``_model`` sets
``is_training = True`` whenever ``fixed_arc`` is None, so the code's search
child uses batch statistics and dropout for training, validation, test and
the controller's reward (``build_valid_rl``) alike. ``reward_training =
True`` reproduces that (dropout on during the reward); call with
``training=False`` for a reward without dropout. The auxiliary logits are
returned on every call (the code builds the head whenever
``is_training``, i.e. always in search).

Gradients: in a compiled step the weights of the ops and input slices an
arc leaves idle get zero gradients, as in the code's graph (so momentum and
weight decay still move them unless the training loop leaves them out);
run eagerly, switch_case runs only the chosen branch and they get None.

Not reproduced: the code hard-codes 10 classes in both FCs
(``num_classes`` is used here) and runs in NCHW (the search script's
``--data_format``; ``_model`` even rejects NHWC through a typo,
``"NHCW"``); this network is NHWC.
"""

import keras
import tensorflow as tf

from nas_tf.builders import cell_network
from nas_tf.ops import conv_ops
from nas_tf.spaces import enas_micro as enas_micro_space
from nas_tf.spaces import schema
from nas_tf.supernets import enas_micro_cell

# The decisions of one node, in decision order (spaces.enas_micro.SAMPLED).
_PER_NODE = len(enas_micro_space.SAMPLED)


def _submodel(name, shape, fn):
    """A functional model applying ``fn`` (conv_ops helpers) to one input."""
    x = keras.Input(shape)
    return keras.Model(x, fn(x), name=name)


class EnasMicroSupernet(keras.Model):
    """Shared weights of every ENAS micro architecture (see the module
    docstring). Called as ``model(images, arc, training=...)``; returns
    logits, or ``[logits, aux_logits]`` with ``config.auxiliary``.

    Args:
      space: An ``EnasMicroSpace``.
      config: A ``ChildConfig``: ``num_cells`` (``child_num_layers``),
        ``filters`` (``child_out_filters``), ``auxiliary``, ``dropout``
        (``1 - child_keep_prob``), ``num_classes``, image size and
        channels, BN momentum and epsilon.
      seed: Seed of the weight initialisers and of the dropout.
      flat_fan_in: Initialise the weights stacked over possible inputs as
        micro_child.py does (see ``enas_micro_cell.stacked_initializer``).
    """

    # micro_child.py build_valid_rl: the reward runs with is_training=True.
    reward_training = True

    def __init__(self, space, config, seed=None, flat_fan_in: bool = True,
                 **kwargs):
        if space.name != enas_micro_space.EnasMicroSpace.name:
            raise ValueError(f"the enas_micro supernet needs the enas_micro "
                             f"space, got {space.name!r}")
        if config.stem != "cifar":
            raise ValueError(f"stem={config.stem!r}: micro_child.py has only "
                             f"the CIFAR stem; allowed: 'cifar'")
        if config.skip_reduction_layer_input:
            raise ValueError("skip_reduction_layer_input=True is NASNet's; "
                             "the ENAS micro network has no such option")
        kwargs.setdefault("name", "enas_micro_supernet")
        super().__init__(**kwargs)
        self.space, self.child_config = space, config
        seeds = keras.random.SeedGenerator(seed)
        s = conv_ops.OpSettings(
            config.bn_momentum, config.bn_epsilon,
            kernel_initializer=keras.initializers.HeNormal(seed=seeds))
        size, f = config.image_size, config.filters
        self.stem = _submodel(
            "stem", (size, size, config.image_channels),
            lambda x: conv_ops.bn(conv_ops.conv(x, config.stem_width, 3, s),
                                  s))
        plan, aux_after = cell_network.reduction_plan("enas",
                                                      config.num_cells)
        shapes = [(size, config.stem_width)] * 2  # (height, channels)
        self.layer_parts = []
        self.aux_after = aux_after if config.auxiliary else None
        for layer_id, is_reduction in enumerate(plan):
            parts = {}
            if is_reduction:
                f *= 2
                h, c = shapes[1]
                parts["reduce"] = _submodel(
                    f"layer{layer_id}_reduce", (h, h, c),
                    lambda x, f=f: conv_ops.factorized_reduce(
                        x, f, s, relu_first=False))
                shapes = [shapes[1], ((h + 1) // 2, f)]
            parts.update(self._calibration(layer_id, shapes, f, s))
            parts["cell"] = enas_micro_cell.SharedCell(
                space.num_nodes, f, config.bn_epsilon, seeds, flat_fan_in,
                name=f"layer{layer_id}_cell")
            parts["cell"].build()
            shapes = [shapes[1], (shapes[1][0], f)]
            self.layer_parts.append(parts)
            if layer_id == self.aux_after:
                h = shapes[1][0]
                self.aux_head = _submodel(
                    "aux_head", (h, h, f),
                    lambda x: conv_ops.auxiliary_head(
                        x, config.num_classes, s, enas_style=True))
                # aux_head/fc/w is He-normal like every create_weight (the
                # shared helper's Dense keeps Keras's default).
                fc = self.aux_head.get_layer("aux_logits").kernel
                fc.assign(keras.initializers.HeNormal(seed=seeds)(fc.shape))
        self.dropout = (keras.layers.Dropout(config.dropout, seed=seed)
                        if config.dropout > 0 else None)
        # micro_child.py fc/w: He-normal like every create_weight.
        self.classifier = keras.layers.Dense(
            config.num_classes, use_bias=False, name="logits",
            kernel_initializer=keras.initializers.HeNormal(seed=seeds))
        self.classifier.build((None, f))
        self.built = True

    @staticmethod
    def _calibration(layer_id, shapes, f, s):
        """``_maybe_calibrate_size``'s sub-models for inputs 0 and 1."""
        parts = {}
        (h0, c0), (h1, c1) = shapes
        if h0 != h1:
            parts["calibrate0"] = _submodel(
                f"layer{layer_id}_calibrate0", (h0, h0, c0),
                lambda x: conv_ops.factorized_reduce(x, f, s))
        elif c0 != f:
            parts["calibrate0"] = _submodel(
                f"layer{layer_id}_calibrate0", (h0, h0, c0),
                lambda x: conv_ops.relu_conv_bn(x, f, 1, s))
        if c1 != f:
            parts["calibrate1"] = _submodel(
                f"layer{layer_id}_calibrate1", (h1, h1, c1),
                lambda x: conv_ops.relu_conv_bn(x, f, 1, s))
        return parts

    def call(self, images, arc, training=None):
        arc = self._checked_arc(arc)
        nodes = self.space.num_nodes
        normal_arc, reduce_arc = tf.unstack(
            tf.reshape(arc, (2, nodes, _PER_NODE)))
        # Every BN runs on batch statistics (module docstring).
        x = self.stem(images, training=True)
        layers = [x, x]
        aux_logits = None
        for layer_id, parts in enumerate(self.layer_parts):
            if "reduce" in parts:
                layers = [layers[1], parts["reduce"](layers[1], training=True)]
            inputs = [parts[f"calibrate{i}"](layers[i], training=True)
                      if f"calibrate{i}" in parts else layers[i]
                      for i in range(2)]
            x = parts["cell"](inputs, reduce_arc if "reduce" in parts
                              else normal_arc)
            layers = [layers[1], x]
            if layer_id == self.aux_after:
                aux_logits = self.aux_head(x, training=True)
        x = tf.reduce_mean(tf.nn.relu(x), axis=(1, 2))
        if self.dropout is not None:
            x = self.dropout(x, training=training)
        logits = self.classifier(x)
        return logits if aux_logits is None else [logits, aux_logits]

    def _checked_arc(self, arc):
        """The arc as int32; checked against the space when it is concrete
        (eager calls), so a bad token names itself and what is allowed."""
        arc = tf.convert_to_tensor(arc)
        if not arc.dtype.is_integer:
            raise ValueError(f"arc must be an integer tensor of "
                             f"{self.space.num_tokens} tokens, got dtype "
                             f"{arc.dtype.name}")
        if arc.shape.rank != 1 or arc.shape[0] not in (
                None, self.space.num_tokens):
            raise ValueError(
                f"arc must have shape [{self.space.num_tokens}] ("
                f"{self.space!r} tokens in decision order), got "
                f"{arc.shape}")
        if not tf.is_symbolic_tensor(arc):
            self.space.from_tokens(arc.numpy().tolist())
        return tf.cast(arc, tf.int32)


def build(space, config, seed=None) -> EnasMicroSupernet:
    """The supernet of ``space`` (an ``EnasMicroSpace``) with ``config`` (a
    ``ChildConfig``)."""
    if not isinstance(space, schema.SearchSpace):
        raise ValueError(f"space must be a SearchSpace, got "
                         f"{type(space).__name__}")
    return EnasMicroSupernet(space, config, seed=seed)
