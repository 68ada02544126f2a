"""Flags shared by the scripts: the search space, the child network and
the training recipes.

Each maps onto the library's plain arguments: ``space_from_flags`` returns a
``SearchSpace``, ``child_config_from_flags`` a ``ChildConfig`` and
``lm_config_from_flags`` an ``LmConfig``; ``model_config_from_flags`` picks
the one the space's networks take.
"""

import dataclasses
import inspect
import sys

if __package__:  # imported by an installed nas-* command
    from nas_tf_cli import command_line  # noqa: F401
else:  # python scripts/X.py: scripts/ is on sys.path
    import command_line  # noqa: F401
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
flags.DEFINE_integer("num_nodes", None,
                     "enas_micro nodes per cell (5); enas_rnn nodes in the "
                     "layout's sense (enas_code: all, 12; enas_lm: after "
                     "node 0, 8).")
flags.DEFINE_integer("num_blocks", None, "nasnet blocks per cell (B=5).")
flags.DEFINE_integer("steps", None,
                     "darts_cnn nodes per cell (4); darts_rnn nodes after "
                     "node 0 (8).")
flags.DEFINE_integer("base", None, "nasrl_rnn tree leaves (8).")
flags.DEFINE_boolean("extended", None,
                     "nasrl_rnn: add the max combination and sin activation.")
flags.DEFINE_string("layout", None,
                    "enas_rnn token layout: enas_code (melodyguan/enas) or "
                    "enas_lm (google-research enas_lm).")
flags.DEFINE_string("average", None,
                    "enas_rnn/darts_rnn cell output: mean of loose_ends or "
                    "of all nodes.")
flags.DEFINE_boolean("predict_strides", None,
                     "nasrl_cnn: the controller also picks strides.")
flags.DEFINE_list("pool_layers", None,
                  "nasrl_cnn: indices of max-pooling layers (v3).")

_HELP = {
    # ChildConfig
    "num_classes": "Classifier outputs. Unset: the dataset's "
                   "(describe.py: 10).",
    "image_size": "Input height and width. Unset: the dataset's "
                  "(describe.py: 32).",
    "image_channels": "Input channels. Unset: the dataset's "
                      "(describe.py: 3).",
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
    # LmConfig
    "vocab_size": "Language model vocabulary (PTB: 10000).",
    "hidden_size": "Recurrent cell units = embedding size.",
    "tie_weights": "Decoder weights shared with the embedding.",
    "decoder_bias": "The decoder adds a bias (DARTS yes, ENAS no).",
    "output_dropout": "Locked dropout on the cell outputs.",
    "hidden_dropout": "Per-sequence dropout on the recurrent state.",
    "x_dropout": "Per-sequence dropout on x_t inside the cell.",
    "input_dropout": "Locked dropout on the embedded words.",
    "embedding_dropout": "Drops whole words of the embedding matrix.",
    "init_range": "All weights from U(-r, r).",
    "highway_split": "ENAS/DARTS node gate position: gate_first (DARTS) or "
                     "gate_last (ENAS); empty = the space's own.",
}


_DEFINE = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer,
           float: flags.DEFINE_float, str: flags.DEFINE_string}


def _define_config_flags(config_class, helps, unset_means=None,
                         unset_fields=()):
    """One flag per field. With ``unset_means`` the flags default to None
    (the config's own default, named in the help after ``unset_means``);
    so do ``unset_fields``, whose help says what unset means."""
    defaults = config_class()
    for field in dataclasses.fields(config_class):
        default = getattr(defaults, field.name)
        define = _DEFINE[type(default)]
        if unset_means:
            define(field.name, None, f"{helps[field.name]} {unset_means}: "
                   f"default {default}.")
        elif field.name in unset_fields:
            define(field.name, None, helps[field.name])
        else:
            define(field.name, default, helps[field.name])


# Model inputs an image dataset decides: unset, search.py and train.py take
# them from the data (describe.py from ChildConfig: CIFAR-10's).
DATA_SHAPE_FLAGS = ("image_size", "image_channels", "num_classes")
_define_config_flags(config_lib.ChildConfig, _HELP,
                     unset_fields=DATA_SHAPE_FLAGS)
_define_config_flags(config_lib.LmConfig, _HELP)

# Training recipes: unset flags keep the config's own default (shown in the
# help), so scripts that train other kinds of networks can share the names.
_LM_TRAIN_HELP = {
    "batch_size": "Training batch.",
    "bptt": "BPTT window length.",
    "variable_bptt": "Random window lengths with the learning rate scaled "
                     "by length/bptt.",
    "max_seq_len_delta": "Longest window is bptt plus this.",
    "learning_rate": "SGD learning rate.",
    "lr_decay": "Per-epoch learning-rate factor (1 = none).",
    "lr_decay_start": "First epoch that decays the learning rate.",
    "lr_min": "Floor of the decayed learning rate.",
    "clip_norm": "Global gradient-norm clip.",
    "weight_decay": "L2 coefficient.",
    "weight_decay_mode": "gradient (added after clipping, DARTS) or loss "
                         "(added to the loss, enas_lm).",
    "activation_reg": "alpha of the activation regulariser.",
    "activation_reg_on": "dropped or raw cell outputs.",
    "slowness_reg": "beta of the slowness regulariser.",
    "nonmono": "Averaged SGD starts when a validation loss is worse than "
               "the best before the last nonmono evaluations (0 = never).",
    "epochs": "Training epochs.",
    "max_steps": "Stop after this many steps (0 = no limit).",
    "eval_batch_size": "Validation batch.",
    "test_batch_size": "Test batch.",
    "log_every": "Steps between progress lines.",
    "seed": "Random seed (search.py: the whole search; 0 when unset).",
}
_define_config_flags(config_lib.LmTrainConfig, _LM_TRAIN_HELP,
                     unset_means="Language models")


# Final training of image classifiers (ImageTrainConfig, its schedule
# flattened); names shared with the recipe above are defined once.
_IMAGE_TRAIN_HELP = {
    "momentum": "SGD momentum of image models.",
    "nesterov": "Nesterov momentum for image models. Unset: no for "
                "train.py (DARTS), yes for search children (NAS-RL).",
    "lr_schedule": "Image models' schedule: constant, cosine, sgdr or "
                   "exponential (search children: constant or cosine). "
                   "Unset: cosine for train.py, constant for search "
                   "children.",
    "sgdr_t0": "SGDR's first period in epochs.",
    "sgdr_t_mul": "SGDR's period multiplier.",
    "decay_rate": "exponential schedule's factor.",
    "decay_epochs": "exponential schedule's step in epochs.",
    "grad_clip": "Global gradient-norm clip of image models (0 = off).",
    "aux_weight": "Weight of the auxiliary head's loss.",
    "train_aux_head": "Train the auxiliary head's weights (ENAS: no).",
    "cutout": "Cutout square side for image models (0 = none).",
    "cutout_anchor": "The cutout square is centred on (DARTS) or starts at "
                     "(ENAS, corner) a uniform pixel.",
    "label_smoothing": "Label smoothing of image models.",
    "drop_path_ramp": "Drop path grows by epoch (DARTS) or step (NASNet, "
                      "ENAS).",
    "augment": "Pad-4 random crop and flip for image models.",
    "steps_per_epoch": "Cap on steps per epoch of image models (0 = all).",
    "eval_every": "Test image models every this many epochs.",
}
# ImageTrainConfig.schedule fields and the flags that set them.
SCHEDULE_FLAGS = {"kind": "lr_schedule", "learning_rate": "learning_rate",
                  "lr_min": "lr_min", "sgdr_t0": "sgdr_t0",
                  "sgdr_t_mul": "sgdr_t_mul", "decay_rate": "decay_rate",
                  "decay_epochs": "decay_epochs"}


def _define_recipe_flags(defaults: dict, helps: dict) -> None:
    """Flags defaulting to None (unset: the recipe's default) for the names
    in ``defaults`` no other recipe has defined."""
    for name, default in defaults.items():
        if name not in FLAGS:
            text = helps[name]
            if "Unset:" not in text:
                text += f" Unset: default {default}."
            _DEFINE[type(default)](name, None, text)


def _image_train_defaults() -> dict:
    from nas_tf.training import image_trainer
    config = image_trainer.ImageTrainConfig()
    values = {f.name: getattr(config, f.name)
              for f in dataclasses.fields(config) if f.name != "schedule"}
    values.update({flag: getattr(config.schedule, field)
                   for field, flag in SCHEDULE_FLAGS.items()})
    return values


_define_recipe_flags(_image_train_defaults(), _IMAGE_TRAIN_HELP)


def final_training_only_flags() -> list:
    """Recipe flags only train.py's image training reads (a search's
    children do not use them)."""
    from nas_tf.training import child_trainer
    shared = {f.name for config in (child_trainer.ChildTrainConfig,
                                    config_lib.LmTrainConfig)
              for f in dataclasses.fields(config)}
    return sorted(set(_image_train_defaults()) - shared)


def image_train_config_from_flags(base=None):
    """An ``ImageTrainConfig``: ``base`` (default: the class's defaults) with
    the fields whose flags are set."""
    from nas_tf.training import image_trainer
    base = image_trainer.ImageTrainConfig() if base is None else base
    schedule = dataclasses.replace(base.schedule, **{
        field: getattr(FLAGS, flag) for field, flag in SCHEDULE_FLAGS.items()
        if getattr(FLAGS, flag) is not None})
    if FLAGS.epochs is not None and schedule.kind == "cosine":
        # One cosine period over the run unless set otherwise.
        schedule = dataclasses.replace(schedule, epochs=FLAGS.epochs)
    return dataclasses.replace(_set_fields(base), schedule=schedule)


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


def _config_from_flags(config_class):
    """``config_class`` from its flags; unset (None) flags keep the
    config's default."""
    return config_class(**{f.name: getattr(FLAGS, f.name)
                           for f in dataclasses.fields(config_class)
                           if getattr(FLAGS, f.name) is not None})


def child_config_from_flags() -> config_lib.ChildConfig:
    return _config_from_flags(config_lib.ChildConfig)


def lm_config_from_flags() -> config_lib.LmConfig:
    return _config_from_flags(config_lib.LmConfig)


def model_config_from_flags(space):
    """The LmConfig of a recurrent space, else the ChildConfig."""
    if space.family == "recurrent":
        return lm_config_from_flags()
    return child_config_from_flags()


# -- search ----------------------------------------------------------------------
# Image-children training (ChildTrainConfig); the names shared with the
# language-model recipe above (batch_size, learning_rate, weight_decay,
# epochs) set whichever kind the dataset trains.
_CHILD_TRAIN_HELP = {
    "reward_epochs": "The reward uses the best metric of this many last "
                     "epochs.",
    "eval_batch_stats": "Validate image children with batch statistics "
                        "in BatchNorm (ENAS micro's reward).",
}


def define_child_train_flags():
    """Flags of ``ChildTrainConfig`` the other recipes do not define (call
    once, from a script that trains image children). The search's children
    take ``lr_schedule`` constant or cosine only."""
    from nas_tf.training import child_trainer
    defaults = child_trainer.ChildTrainConfig()
    _define_recipe_flags({f.name: getattr(defaults, f.name)
                          for f in dataclasses.fields(defaults)},
                         _CHILD_TRAIN_HELP)


def _set_fields(config, prefix=""):
    """``config`` with the fields whose flag (``prefix + name``) is set."""
    changes = {}
    for field in dataclasses.fields(config):
        name = prefix + field.name
        if name in FLAGS and getattr(FLAGS, name) is not None:
            value = getattr(FLAGS, name)
            if isinstance(getattr(config, field.name), tuple):
                try:
                    value = tuple(float(v) for v in value)
                except ValueError:
                    raise ValueError(
                        f"--{name}={','.join(value)}: expected a comma-"
                        "separated list of numbers") from None
            changes[field.name] = value
    return dataclasses.replace(config, **changes)


def child_train_config_from_flags(base):
    return _set_fields(base)


def lm_train_config_from_flags(base):
    return _set_fields(base)


def flags_text() -> str:
    """The effective flags of the running script and this module, one per
    line, as a flagfile (unset flags left out)."""
    # absl files the main module's flags under sys.argv[0], an imported
    # module's under its name.
    ours = {sys.argv[0], __name__}
    lines = []
    for module, module_flags in FLAGS.flags_by_module_dict().items():
        if module not in ours:
            continue
        for flag in module_flags:
            if flag.value is not None and flag.name != "flagfile":
                lines.append((flag.name, flag.serialize()))
    return "".join(line + "\n" for _, line in sorted(lines))



class _UnrolledParser(flags.ArgumentParser):
    """``--unrolled`` (second order by finite differences, as
    train_search.py's flag), ``--unrolled=exact`` (double backprop) or
    ``--nounrolled`` (first order)."""

    syntactic_help = "true, false or exact"
    ORDERS = {"false": "first", "true": "second", "exact": "exact"}

    def parse(self, argument):
        if isinstance(argument, bool):
            argument = str(argument)
        text = str(argument).lower()
        if text not in self.ORDERS:
            raise ValueError(f"{argument!r}; allowed: --unrolled, "
                             "--nounrolled, --unrolled=exact")
        return text

    def flag_type(self):
        return "unrolled"


_DARTS_HELP = {
    "train_portion": "DARTS: share of the training images for the weights "
                     "(the rest trains alpha).",
    "fd_radius": "DARTS: the finite difference's r = fd_radius / ||v||.",
    "arch_learning_rate": "DARTS: alpha's Adam learning rate.",
    "arch_beta_1": "DARTS: alpha's Adam beta1.",
    "arch_beta_2": "DARTS: alpha's Adam beta2.",
    "arch_weight_decay": "DARTS: alpha's weight decay (added to its "
                         "gradient, as torch's Adam).",
    "init_scale": "DARTS: alpha starts at init_scale * N(0, 1).",
    "mixing": "DARTS: softmax (DARTS) or sigmoid (Fair DARTS) of alpha.",
    "zero_one_loss_weight": "Fair DARTS: weight of the zero-one loss on "
                            "alpha (0: off).",
    "threshold": "Fair DARTS: op weights above it are reported.",
    "partial_channels": "PC-DARTS: 1/K of the channels through the ops "
                        "(1: off).",
    "edge_normalization": "PC-DARTS: softmax-normalised edge weights beta.",
    "arch_warmup_epochs": "DARTS: epochs before alpha updates start "
                          "(PC-DARTS 15).",
    "auxiliary_skip": "DARTS-: a skip outside the softmax on every edge, "
                      "its weight decayed to 0.",
    "auxiliary_skip_beta": "DARTS-: that skip's initial weight.",
    "perturbation": "SDARTS: none or random (noise on alpha's softmax "
                    "before each weight step).",
    "perturbation_epsilon": "SDARTS: the noise bound at the end (ramped "
                            "from 0.03).",
    "early_stop": "DARTS: none, skip_count (DARTS+) or eigenvalue "
                  "(DARTS-ES).",
    "skip_limit": "DARTS+: skip connections in the normal cell that stop "
                  "the search.",
    "hessian_every": "DARTS: epochs between dominant-eigenvalue monitors "
                     "of alpha's Hessian (0: off).",
    "hessian_iterations": "DARTS: power-iteration steps of that monitor.",
    "es_window": "DARTS-ES: eigenvalues averaged.",
    "es_factor": "DARTS-ES: growth of the average that stops the search.",
    "es_delta": "DARTS-ES: computations between the compared averages.",
    "es_start_epoch": "DARTS-ES: earliest epoch it may return.",
    "recompute_cells": "DARTS: run each cell again in the backward pass "
                       "instead of keeping its activations (less memory, "
                       "one more forward pass; not with --unrolled=exact).",
}


def define_darts_flags():
    """The DARTS loop's flags (search.py; describe.py reads search presets
    with them)."""
    from nas_tf.search import darts_config
    flags.DEFINE_flag(flags.Flag(
        _UnrolledParser(), flags.ArgumentSerializer(), "unrolled", "false",
        "DARTS: alpha's gradient. --unrolled: second order, the one-step "
        "unrolled gradient with the finite-difference Hessian-vector "
        "product (train_search.py --unrolled); --unrolled=exact: the same "
        "gradient by double backprop; unset: first order.", boolean=True))
    defaults = darts_config.DartsConfig()
    for name, text in _DARTS_HELP.items():
        default = getattr(defaults, name)
        _DEFINE[type(default)](name, None, f"{text} Unset: {default}.")


def darts_config_from_flags(strategy: str):
    """The ``DartsConfig`` of the flags (its defaults unless strategy is
    darts)."""
    from nas_tf.search import darts_config
    base = darts_config.DartsConfig()
    if strategy != "darts":
        return base
    values = {name: getattr(FLAGS, name) for name in _DARTS_HELP
              if getattr(FLAGS, name) is not None}
    return dataclasses.replace(
        base, train=image_train_config_from_flags(base.train),
        order=_UnrolledParser.ORDERS[FLAGS.unrolled], **values)


def define_data_flags():
    """Where a search's or a training run's data lives (call once, from the
    scripts that load data)."""
    flags.DEFINE_string("data_dir", None, "TFDS data directory (default: "
                        "TFDS's own, $TFDS_DATA_DIR or ~/tensorflow_datasets).")
    flags.DEFINE_string("manual_dir", None,
                        "PTB offline: a directory holding ptb.train.txt, "
                        "ptb.valid.txt and ptb.test.txt. imagenet2012 "
                        "(train.py): the directory holding "
                        "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, "
                        "prepared into --data_dir on first use (default: "
                        "<data_dir>/downloads/manual).")


def define_precision_flags():
    """``--mixed_precision`` and ``--jit_compile`` (call once, from the
    scripts that train). Unset, they leave a run directory's flags as they
    were before the flags existed, so older runs resume."""
    from nas_tf.training import precision
    flags.DEFINE_enum(
        "mixed_precision", None, precision.POLICIES,
        "Keras dtype policy of image models: float32 (unset), "
        "mixed_bfloat16 (layers compute in bfloat16; variables, logits, "
        "loss and BatchNorm statistics stay float32) or mixed_float16 (the "
        "same in float16, with dynamic loss scaling as Keras's "
        "LossScaleOptimizer: scale 2**15, halved and the step skipped on a "
        "non-finite gradient, doubled after 2000 finite steps; "
        "checkpointed). Applies to train.py's image models, the children of "
        "nasrl, random and evolution, and ENAS's and DARTS's image "
        "supernets (alpha and the controller stay float32); language "
        "models refuse it.")
    flags.DEFINE_boolean(
        "jit_compile", None,
        "Compile each replica's training step (forward and backward pass) "
        "and evaluation step with XLA (tf.function(jit_compile=True)). The "
        "tf.data input pipeline, the sum of the replicas' gradients, the "
        "optimizer's update and the loss scale stay outside XLA. A model "
        "with an op XLA cannot compile stops with an error naming the step "
        "(nothing falls back silently); the first step compiles for long "
        "(about a minute for a small ENAS macro supernet on 2 CPU cores). "
        "Same scope as --mixed_precision, less the enas_micro supernet "
        "(its compilation takes many minutes), DARTS's exact order and "
        "DARTS on several devices; not for language models.")


def precision_config_from_flags():
    """The ``PrecisionConfig`` of ``--mixed_precision`` and
    ``--jit_compile``."""
    from nas_tf.training import precision
    return precision.PrecisionConfig(
        mixed_precision=FLAGS.mixed_precision or "float32",
        jit_compile=bool(FLAGS.jit_compile))


def check_data_fits_model(dataset: str) -> None:
    """Raises ValueError when the input size, channels or classes set on
    the command line (or by a preset) disagree with image dataset
    ``dataset``, whose own values are used where they are left unset."""
    from nas_tf.data import datasets
    size, channels, classes = datasets.image_dataset_spec(dataset)
    if size is None and FLAGS["image_size"].value is None:
        raise ValueError(
            f"dataset {dataset!r} has images of many sizes and is streamed "
            "at the network's input size: set --image_size (224: DARTS and "
            "NASNet Mobile, 331: NASNet Large)")
    data = {"image_size": size, "image_channels": channels,
            "num_classes": classes}
    wrong = [f"--{name}={FLAGS[name].value} (it has {value})"
             for name, value in data.items()
             if value is not None
             and FLAGS[name].value not in (None, value)]
    if wrong:
        raise ValueError(f"dataset {dataset!r} does not fit "
                         f"{', '.join(wrong)}; leave these flags unset to "
                         "take the dataset's")


flags.DEFINE_enum(
    "imagenet_preprocessing", None, ["darts", "inception"],
    "Preprocessing of streamed datasets (imagenet2012) in train.py: darts "
    "(DARTS's train_imagenet.py: random resized crop, flip, colour jitter; "
    "resize 256, centre crop 224) or inception (slim's "
    "inception_preprocessing for NASNet: distorted bounding-box crop, flip, "
    "brightness and saturation; central 0.875 crop). Unset: inception for "
    "the nasnet space, darts otherwise. Data read into memory ignores it.")
flags.DEFINE_boolean(
    "deterministic", False, "Turn on TensorFlow's op determinism (exact "
    "reruns and resumes on GPUs too; on CPU runs are exact without it).")


# Flags each script shows with --help (--helpfull shows every flag).
SPACE_FLAGS = ("space", "num_layers", "num_branches", "num_nodes",
               "num_blocks", "steps", "base", "extended", "layout", "average",
               "predict_strides", "pool_layers")


def key_flags(recipes: str = "") -> list:
    """Names of the shared flags a script reads: the space and both model
    configs; with ``recipes`` "search" or "final" also the training recipes
    of that script and the data flags."""
    names = list(SPACE_FLAGS) + ["preset"]
    for config in (config_lib.ChildConfig, config_lib.LmConfig):
        names += [f.name for f in dataclasses.fields(config)]
    if recipes:
        names += ["data_dir", "manual_dir", "deterministic",
                  "mixed_precision", "jit_compile"]
        names += [f.name for f in dataclasses.fields(config_lib.LmTrainConfig)]
    if recipes == "final":
        names += _image_train_defaults()
        names.append("imagenet_preprocessing")
    if recipes == "search":
        from nas_tf.training import child_trainer
        names += [f.name for f in dataclasses.fields(
            child_trainer.ChildTrainConfig)]
    return sorted(set(names) & set(FLAGS))

