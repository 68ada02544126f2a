"""Numbers that describe a child network: parameters and mult-adds.

Counts leave out the auxiliary head, as the papers do (DARTS ``utils.
count_parameters_in_MB`` skips "auxiliary"; slim counts the inference graph).
``total_params`` adds BatchNorm moving statistics, which is what Keras'
``count_params()`` reports for ``keras.applications`` models.
"""

import dataclasses

import keras

from nas_tf.builders import child_model
from nas_tf.builders import language_model


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    trainable_params: int
    total_params: int
    mult_adds: int


def _main_layers(model):
    return [layer for layer in model.layers
            if not child_model.is_auxiliary(layer)]


def count_params(model):
    """(trainable, total) weights outside the auxiliary head."""
    auxiliary = {id(w) for layer in model.layers
                 if child_model.is_auxiliary(layer) for w in layer.weights}

    def count(weights):
        return sum(int(w.numpy().size) for w in weights
                   if id(w) not in auxiliary)

    return count(model.trainable_weights), count(model.weights)


def _conv_mult_adds(layer, out_shape):
    _, height, width, _ = out_shape
    # A dilated conv computed at stride 1 and then subsampled counts at the
    # subsampled size: that is the strided op it stands for.
    sub = getattr(layer, "output_stride", 1)
    positions = -(-height // sub) * -(-width // sub)
    kh, kw = layer.kernel_size
    cin = layer.input.shape[-1]
    cout = layer.filters
    if isinstance(layer, keras.layers.SeparableConv2D):
        return positions * (kh * kw * cin + cin * cout)
    return positions * kh * kw * (cin // layer.groups) * cout


def count_mult_adds(model) -> int:
    """Multiply-adds of one forward pass on one example: convolutions and
    dense layers (the papers' convention; BN, pooling and adds are free).
    For a language model: per predicted word."""
    if isinstance(model, language_model.LanguageModel):
        return model.mult_adds_per_token()
    total = 0
    for layer in _main_layers(model):
        if isinstance(layer, (keras.layers.Conv2D,
                              keras.layers.SeparableConv2D)):
            total += _conv_mult_adds(layer, layer.output.shape)
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def summarize(model) -> ModelSummary:
    trainable, total = count_params(model)
    return ModelSummary(trainable, total, count_mult_adds(model))
