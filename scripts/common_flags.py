"""Flags shared by the scripts: the search space and the child network.

Each maps onto the library's plain arguments: ``space_from_flags`` returns a
``SearchSpace`` and ``child_config_from_flags`` a ``ChildConfig``.
"""

import dataclasses
import inspect
import os

# Keep TensorFlow's C++ start-up chatter out of the scripts' output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from nas_tf import config as config_lib  # noqa: E402
from nas_tf import spaces  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_enum("space", "darts_cnn", spaces.SPACES.names(),
                  "Search space.")
# Space parameters: unset means the space's own default.
flags.DEFINE_integer("num_layers", None,
                     "Layers (nasrl_cnn: default 6; enas_macro: default 12).")
flags.DEFINE_integer("num_branches", None,
                     "enas_macro ops per layer (6 in search, 4 in the final "
                     "script).")
flags.DEFINE_integer("num_nodes", None, "enas_micro nodes per cell (5).")
flags.DEFINE_integer("num_blocks", None, "nasnet blocks per cell (B=5).")
flags.DEFINE_integer("steps", None, "darts_cnn nodes per cell (4).")
flags.DEFINE_boolean("predict_strides", None,
                     "nasrl_cnn: the controller also picks strides.")
flags.DEFINE_list("pool_layers", None,
                  "nasrl_cnn: indices of max-pooling layers (v3).")

_DEFAULTS = config_lib.ChildConfig()
_HELP = {
    "num_classes": "Classifier outputs.",
    "image_size": "Input height and width.",
    "image_channels": "Input channels.",
    "stem": "Stem: cifar or imagenet.",
    "num_cells": "Cells, in each original's own sense (DARTS --layers; "
                 "NASNet/ENAS micro: normal cells, two reductions added).",
    "filters": "Filters of the first cells (DARTS C, NASNet F, ENAS "
               "out_filters).",
    "stem_filters": "Stem width; 0 means the original's (3 x filters for "
                    "cells, filters for ENAS macro).",
    "auxiliary": "Add the auxiliary head (left out of parameter counts).",
    "drop_path_rate": "Final drop-path probability (1 - keep prob).",
    "dropout": "Dropout before the classifier (1 - keep prob).",
    "skip_reduction_layer_input": "NASNet-Large: skip the reduction cell's "
                                  "input.",
    "bn_momentum": "BatchNorm momentum.",
    "bn_epsilon": "BatchNorm epsilon.",
    "macro_separable_as_conv": "ENAS macro code quirk: separable ops built "
                               "as plain convs.",
}
for _field in dataclasses.fields(config_lib.ChildConfig):
    _default = getattr(_DEFAULTS, _field.name)
    _define = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer,
               float: flags.DEFINE_float, str: flags.DEFINE_string}[
                   type(_default)]
    _define(_field.name, _default, _HELP[_field.name])


def space_from_flags() -> spaces.SearchSpace:
    """The search space named by --space, with the parameters it takes."""
    cls = spaces.SPACES.get(FLAGS.space)
    params = {}
    for name in inspect.signature(cls.__init__).parameters:
        value = getattr(FLAGS, name, None) if name in FLAGS else None
        if value is None:
            continue
        if name == "pool_layers":
            value = tuple(_parse_int("pool_layers", v) for v in value)
        params[name] = value
    return spaces.get_space(FLAGS.space, **params)


def _parse_int(flag, text):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--{flag}: {text!r} is not an integer") from None


def child_config_from_flags() -> config_lib.ChildConfig:
    values = {f.name: getattr(FLAGS, f.name)
              for f in dataclasses.fields(config_lib.ChildConfig)}
    return config_lib.ChildConfig(**values)
