"""The NAS-RL layer-wise CNN space (Zoph & Le 2016, sec. 3.1 and 3.3).

Per conv layer, in the controller's order: filter height, filter width,
(stride height, stride width when strides are predicted), number of filters,
then the anchor point: one bit for each earlier layer, 1 meaning that layer
feeds this one. Layer 0 has no bits; by the paper's rules a layer with no
inputs reads the image.

Choices (sec. 4.1): filter height and width in {1, 3, 5, 7}, filters in
{24, 36, 48, 64}, strides in {1, 2, 3}. Max-pooling layers (the v3 networks)
sit at fixed positions given by ``pool_layers``; they take only an anchor.

Token string: the choice indices and bits in that order, layer after layer.
"""

from nas_tf.spaces import schema

FILTER_SIZES = (1, 3, 5, 7)
NUM_FILTERS = (24, 36, 48, 64)
STRIDES = (1, 2, 3)


class NasrlCnnSpace(schema.SearchSpace):
    """``num_layers`` layers; strides and pooling layers optional."""

    name = "nasrl_cnn"
    family = "nasrl"

    def __init__(self, num_layers: int = 6, predict_strides: bool = False,
                 pool_layers=()):
        # 6 layers: the start of the depth schedule (sec. 4.1: 6, +2 every
        # 1,600 samples). No strides, no pools: the paper's first network
        # ("v1", Table 1); v2 predicts strides, v3 adds max pooling.
        schema.check_count("nasrl_cnn", "num_layers", num_layers)
        pool_layers = tuple(sorted(int(p) for p in pool_layers))
        if len(set(pool_layers)) != len(pool_layers):
            raise schema.SpaceError(
                f"nasrl_cnn: pool_layers={list(pool_layers)} repeats a layer")
        for p in pool_layers:
            # A pool at layer 0 would have no decision at all, so the
            # controller would have no anchor step for it.
            if not 1 <= p < num_layers:
                raise schema.SpaceError(
                    f"nasrl_cnn: pool layer {p} is outside layers "
                    f"1..{num_layers - 1} (layer 0 is always a convolution)")
        self.num_layers = num_layers
        self.predict_strides = bool(predict_strides)
        self.pool_layers = pool_layers
        decisions = []
        for k in range(num_layers):
            prefix = f"layer{k}"
            if k not in pool_layers:
                sizes = tuple(str(s) for s in FILTER_SIZES)
                decisions += [
                    schema.Decision(f"{prefix}/filter_height", schema.CHOICE,
                                    sizes),
                    schema.Decision(f"{prefix}/filter_width", schema.CHOICE,
                                    sizes),
                ]
                if self.predict_strides:
                    strides = tuple(str(s) for s in STRIDES)
                    decisions += [
                        schema.Decision(f"{prefix}/stride_height",
                                        schema.CHOICE, strides),
                        schema.Decision(f"{prefix}/stride_width",
                                        schema.CHOICE, strides),
                    ]
                decisions.append(schema.Decision(
                    f"{prefix}/num_filters", schema.CHOICE,
                    tuple(str(n) for n in NUM_FILTERS)))
            if k:
                decisions.append(schema.Decision(
                    f"{prefix}/inputs", schema.SKIPS,
                    tuple(f"layer{i}" for i in range(k))))
        super().__init__(decisions, {"num_layers": num_layers,
                                     "predict_strides": self.predict_strides,
                                     "pool_layers": pool_layers})

    def layout_help(self):
        conv = "[fh, fw, " + ("sh, sw, " if self.predict_strides else "")
        return (f"{self.num_layers} layers x {conv}filters, one input bit per "
                f"earlier layer] (pool layers {list(self.pool_layers)}: bits "
                f"only)")

    def decode(self, arch):
        """Returns one dict per layer: kind 'conv' or 'pool', its settings and
        the indices of the layers it reads (empty: the image)."""
        values = self.values(arch)
        layers = []
        for k in range(self.num_layers):
            prefix = f"layer{k}"
            bits = values.get(f"{prefix}/inputs", ())
            layer = {"inputs": tuple(i for i, b in enumerate(bits) if b)}
            if k in self.pool_layers:
                layer["kind"] = "pool"
            else:
                layer["kind"] = "conv"
                layer["kernel"] = (FILTER_SIZES[values[f"{prefix}/filter_height"]],
                                   FILTER_SIZES[values[f"{prefix}/filter_width"]])
                if self.predict_strides:
                    layer["strides"] = (
                        STRIDES[values[f"{prefix}/stride_height"]],
                        STRIDES[values[f"{prefix}/stride_width"]])
                else:
                    layer["strides"] = (1, 1)
                layer["filters"] = NUM_FILTERS[values[f"{prefix}/num_filters"]]
            layers.append(layer)
        return layers
