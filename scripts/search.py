"""Runs an architecture search; the same command again resumes it.

  python scripts/search.py --flagfile=configs/quickstart.cfg --logdir=runs/qs
  python scripts/search.py --flagfile=configs/nasrl_cifar10_search.cfg \
      --logdir=runs/nasrl --data_dir=~/tensorflow_datasets

The run directory gets flags.cfg (these flags, relaunchable as a flagfile),
config.json, history.jsonl, checkpoints/, TensorBoard events and, at the
end, best_arch.txt. Bad flags stop the script before any data is loaded.
"""

import dataclasses
import os
import sys

from absl import app
from absl import flags
from absl import logging

import common_flags
from nas_tf import controller as controller_lib
from nas_tf import distribute
from nas_tf.utils import fileio
from nas_tf.controller import reinforce
from nas_tf.search import reward as reward_lib
from nas_tf.search import run
from nas_tf.search import search_config
from nas_tf import spaces
from nas_tf import strategies
from nas_tf.data import datasets

FLAGS = flags.FLAGS

flags.DEFINE_string("logdir", None, "Run directory (created; reused to "
                    "resume).")
flags.DEFINE_enum("strategy", "nasrl", strategies.STRATEGIES,
                  "nasrl (controller + REINFORCE), random or evolution.")
flags.DEFINE_integer("num_children", 12800,
                     "Children to evaluate (NAS-RL CIFAR-10: 12,800).")
flags.DEFINE_string("dataset", "cifar10",
                    "dominoes (generated), a tfds image dataset, or ptb / "
                    "synthetic_text for recurrent spaces.")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_integer("validation_size", None,
                     "Training images held out for validation (tfds: "
                     "5000, the originals' split).")
flags.DEFINE_string("reward", "", "Reward formula over acc or ppl; empty: "
                    "the --controller_preset original's (nasrl: acc**3 for "
                    "images, 80/ppl**2 for text; enas_*: acc, 80/ppl; "
                    "nasnet: acc).")
flags.DEFINE_float("failed_reward", 0.0,
                   "Reward of a child that cannot be built.")
flags.DEFINE_enum("distribute", "auto", distribute.KINDS,
                  "Device strategy for child training.")
flags.DEFINE_integer("cpu_devices", 0,
                     "Split the CPU into this many logical devices (to try "
                     "distribute=mirrored without GPUs).")
flags.DEFINE_integer("population_size", 100, "Evolution population P.")
flags.DEFINE_integer("sample_size", 25, "Evolution tournament size S.")
flags.DEFINE_boolean("depth_schedule", False,
                     "NAS-RL depth schedule for nasrl_cnn.")
flags.DEFINE_integer("depth_start", 6, "Depth schedule: first depth.")
flags.DEFINE_integer("depth_step", 2, "Depth schedule: layers added.")
flags.DEFINE_integer("depth_every", 1600,
                     "Depth schedule: children between steps.")
flags.DEFINE_string("train_flagfile", None,
                    "The scripts/train.py preset named in the retrain "
                    "command printed at the end. Unset: the space's flags.")
flags.DEFINE_enum("controller_preset", "nasrl",
                  sorted(controller_lib.CONTROLLER_PRESETS),
                  "Controller, REINFORCE and reward settings of an "
                  "original; the controller_* flags below and --reward "
                  "override single fields. nasnet is REINFORCE with the "
                  "NASNet paper's settings (it used PPO).")

_CONTROLLER_HELP = {
    "lstm_size": "LSTM units per layer.",
    "num_layers": "LSTM layers.",
    "init_range": "Weights start U(-r, r).",
    "lstm_bias": "LSTM gates have biases.",
    "temperature": "Logits divided by it (0 = off).",
    "tanh_constant": "Logits become c * tanh(logits) (0 = off).",
    "op_tanh_reduce": "op choices use tanh_constant / this.",
    "op_bias_init": "Learnable op-logit bias start (ENAS micro).",
    "normal_op_bias": "Constant normal-cell op bias after tanh.",
    "tie_choice_logits": "Choice logits h . embedding^T (enas_lm).",
    "index_locality": "Node logits lose this * (k - j)^2.",
    "index_input_scaling": "Input after a node pick: h_j / (0.1 + k - j).",
    "zero_input_anchors": "Input nodes' anchors are zeros.",
    "input_node_steps": "An LSTM step makes each input node (off: zero "
                        "anchor and key, enas_lm).",
    "anchor_at": "last_step or first_step (ENAS PTB) of a unit makes its "
                 "anchor.",
    "anchor_step": "Extra LSTM step makes each node's anchor.",
    "empty_input_step": "A unit without an input pick (node 0) takes that "
                        "step first (ENAS PTB).",
    "empty_skip_step": "Layer 0 takes a skip step too (ENAS macro).",
    "skip_logits": "sigmoid (NAS-RL) or paired (ENAS macro).",
    "learning_rate": "Adam learning rate.",
    "beta1": "Adam beta1.",
    "beta2": "Adam beta2.",
    "epsilon": "Adam epsilon.",
    "baseline_decay": "Reward EMA baseline decay.",
    "num_aggregate": "Children per controller update (m).",
    "entropy_weight": "Entropy bonus weight.",
    "entropy_mode": "reward (ENAS) or loss.",
    "entropy_kind": "full or sampled entropy.",
    "skip_weight": "Skip KL penalty weight (ENAS macro).",
    "skip_target": "Skip KL prior probability.",
}
for _cls in (controller_lib.ControllerConfig, reinforce.ReinforceConfig):
    for _field in dataclasses.fields(_cls):
        _default = getattr(_cls(), _field.name)
        _help = f"{_CONTROLLER_HELP[_field.name]} Unset: the preset's."
        if isinstance(_default, tuple):
            flags.DEFINE_list(f"controller_{_field.name}", None, _help)
        else:
            common_flags._DEFINE[type(_default)](
                f"controller_{_field.name}", None, _help)
common_flags.define_child_train_flags()

# Flags that name where a run lives, not what it is.
_NOT_COMPARED = ("logdir",) + run.LOCATION_FIELDS


def _check_same_flags(logdir, text):
    path = os.path.join(logdir, "flags.cfg")
    # flags.cfg alone (no config.json) is a run that never got its data;
    # config.json alone (killed before flags.cfg) is still checked by
    # run.check_run_directory.
    if not (os.path.exists(os.path.join(logdir, run.CONFIG_FILE)) and
            os.path.exists(path)):
        return

    def parse(content):
        out = {}
        for line in content.splitlines():
            name, _, value = line.lstrip("-").partition("=")
            if name and name not in _NOT_COMPARED:
                out[name] = value
        return out

    with open(path) as f:
        before = parse(f.read())
    now = parse(text)
    changed = [f"--{k}: {before.get(k, '(unset)')} -> {now.get(k, '(unset)')}"
               for k in sorted(set(before) | set(now))
               if before.get(k) != now.get(k)]
    if changed:
        raise ValueError(
            f"{logdir} holds a run started with other flags "
            f"({'; '.join(changed)}). Resume it with "
            f"--flagfile={path}, or pick a new --logdir.")


def config_from_flags() -> search_config.SearchConfig:
    space = common_flags.space_from_flags()
    preset = FLAGS.controller_preset
    controller = common_flags._set_fields(
        controller_lib.CONTROLLER_PRESETS[preset], "controller_")
    learner = common_flags._set_fields(
        reinforce.REINFORCE_PRESETS[preset], "controller_")
    kind = datasets.dataset_kind(FLAGS.dataset)
    child_train = common_flags.child_train_config_from_flags(
        search_config.SearchConfig.child_train)
    lm_train = common_flags.lm_train_config_from_flags(
        search_config.SearchConfig.lm_train)
    return search_config.SearchConfig(
        space=space.name, space_params=dict(space.params),
        strategy=FLAGS.strategy, num_children=FLAGS.num_children,
        seed=0 if FLAGS.seed is None else FLAGS.seed, dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        validation_size=FLAGS.validation_size,
        controller=controller, reinforce=learner,
        population_size=FLAGS.population_size,
        sample_size=FLAGS.sample_size, depth_schedule=FLAGS.depth_schedule,
        depth_start=FLAGS.depth_start, depth_step=FLAGS.depth_step,
        depth_every=FLAGS.depth_every,
        child=common_flags.child_config_from_flags(),
        # A language-model child trains by lm_train; only the reward's
        # window comes from the child flags.
        child_train=child_train if kind == "image" else dataclasses.replace(
            search_config.SearchConfig.child_train,
            reward_epochs=child_train.reward_epochs),
        lm=common_flags.lm_config_from_flags(),
        lm_train=lm_train if kind == "text" else
        search_config.SearchConfig.lm_train,
        reward=FLAGS.reward or reward_lib.preset_formula(preset, kind),
        failed_reward=FLAGS.failed_reward,
        distribute=FLAGS.distribute)


def _retrain_flags(config) -> str:
    """The flags that make train.py rebuild this search's children."""
    if FLAGS.train_flagfile:
        return f"--flagfile={FLAGS.train_flagfile}"
    values = [f"--space={config.space}"] + [
        f"--{name}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
        for name, v in sorted(config.space_params.items())]
    return " ".join(values + [f"--dataset={config.dataset}"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.logdir:
        print("search.py: error: --logdir is required", file=sys.stderr)
        return 2
    try:
        ignored = [f"--{name}"
                   for name in common_flags.final_training_only_flags()
                   if FLAGS[name].value is not None]
        if ignored:
            raise ValueError(f"{', '.join(ignored)}: scripts/train.py flags; "
                             "search children do not use them")
        config = config_from_flags()
        search_config.check_search_config(config)
        if config.kind == "image":
            datasets.image_dataset_spec(config.dataset)
        text = common_flags.flags_text()
        _check_same_flags(FLAGS.logdir, text)
        run.check_run_directory(FLAGS.logdir, config)
    except (spaces.SpaceError, ValueError) as e:
        print(f"search.py: error: {e}", file=sys.stderr)
        return 2
    # Checkpoint saving logs INFO lines through absl; progress is ours.
    logging.set_verbosity(logging.WARNING)
    distribute.split_cpu(FLAGS.cpu_devices)
    try:
        os.makedirs(FLAGS.logdir, exist_ok=True)
        fileio.write_file_atomically(
            os.path.join(FLAGS.logdir, "flags.cfg"), text)
        searcher = run.SearchRun(config, FLAGS.logdir)
        result = searcher.run()
    except (ConnectionError, ValueError) as e:
        print(f"search.py: error: {e}", file=sys.stderr)
        return 2
    best = os.path.join(FLAGS.logdir, "best_arch.txt")
    print(f"best architecture (reward {result.best_reward:.4f}) in {best}:")
    print(f"  {result.best_tokens}")
    print("retrain it from scratch and export it:")
    print(f"  python scripts/train.py {_retrain_flags(config)} "
          f"--arch_file={best} --logdir={FLAGS.logdir}/final")
    print(f"  python scripts/export.py --logdir={FLAGS.logdir}/final "
          f"--export_dir={FLAGS.logdir}/export")
    return 0


if __name__ == "__main__":
    app.run(main)
