"""Runs an architecture search; the same command again resumes it.

  python scripts/search.py --preset=quickstart --logdir=runs/qs
  python scripts/search.py --preset=nasrl_cifar10_search \
      --logdir=runs/nasrl --data_dir=~/tensorflow_datasets

The run directory gets flags.cfg (these flags, relaunchable as a flagfile),
config.json, history.jsonl, checkpoints/, TensorBoard events (search/) and,
at the end, best_arch.txt with best_arch.cfg (the space flags it needs).
Bad flags stop the script before any data is loaded.

  --parallel_children=K --devices_per_child=D: K children of a batch train
  at once, each on its own D devices.
  With TF_CONFIG (chief, workers, parameter servers) every task runs this
  same command: the chief searches and farms children out to the workers
  (nas_tf/cluster.py); scripts/local_cluster.py runs such a cluster on
  this machine.
"""

import dataclasses
import os

from absl import flags
from absl import logging

if __package__:  # the installed nas-search command
    from nas_tf_cli import command_line
    from nas_tf_cli import common_flags
else:  # python scripts/search.py: scripts/ is on sys.path
    import command_line
    import common_flags
from nas_tf import cluster
from nas_tf import controller as controller_lib
from nas_tf import distribute
from nas_tf.controller import reinforce
from nas_tf.search import child_dispatch
from nas_tf.search import enas_config
from nas_tf.search import reward as reward_lib
from nas_tf.search import run
from nas_tf.search import search_config
from nas_tf import spaces
from nas_tf import strategies
from nas_tf.data import datasets
from nas_tf.utils import run_lock

FLAGS = flags.FLAGS

flags.DEFINE_string("logdir", None, "Run directory (created; reused to "
                    "resume).")
flags.DEFINE_enum("strategy", "nasrl", strategies.STRATEGIES,
                  "nasrl (controller + REINFORCE), random or evolution.")
flags.DEFINE_integer("num_children", 12800,
                     "Children to evaluate (NAS-RL CIFAR-10: 12,800).")
flags.DEFINE_string("dataset", "cifar10",
                    "dominoes or dominoes_near (generated), a tfds image "
                    "dataset, or ptb / synthetic_text for recurrent spaces.")
common_flags.define_data_flags()
flags.DEFINE_integer("validation_size", None,
                     "Training images held out for validation (tfds: "
                     "5000, the originals' split).")
flags.DEFINE_string("reward", "", "Reward formula over acc or ppl; empty: "
                    "the --controller_preset original's (nasrl: acc**3 for "
                    "images, 80/ppl**2 for text; enas_*: acc, 80/ppl; "
                    "nasnet: acc).")
flags.DEFINE_float("failed_reward", 0.0,
                   "Reward of a child that cannot be built.")
flags.DEFINE_enum("distribute", "auto",
                  [kind for kind in distribute.KINDS
                   if kind != distribute.MULTI_WORKER],  # train.py's only
                  "Device strategy for child training.")
flags.DEFINE_integer("cpu_devices", 0,
                     "Split the CPU into this many logical devices (to try "
                     "distribute=mirrored without GPUs).")
flags.DEFINE_integer("parallel_children", 1,
                     "NAS-RL, random search, evolution: children of a batch "
                     "that train at once, each on its own group of "
                     "--devices_per_child devices (GPUs, else logical CPU "
                     "devices: --cpu_devices). The history equals a "
                     "sequential run's; a run resumes with another value.")
flags.DEFINE_integer("devices_per_child", 1,
                     "Devices of each parallel child's group "
                     "(MirroredStrategy over them when more than 1).")
flags.DEFINE_integer("population_size", 100,
                     "Evolution population P (Real et al. 2019: 100).")
flags.DEFINE_integer("sample_size", 25,
                     "Evolution tournament size S (Real et al. 2019: 25).")
flags.DEFINE_integer("evolution_batch", 1,
                     "Evolution children proposed at once from one view of "
                     "the population. 1: the authors' sequential algorithm "
                     "(each child joins the population before the next "
                     "tournament); more: the paper's asynchronous workers.")
flags.DEFINE_float("identity_mutation_probability", 0.05,
                   "Evolution: chance a child is an unchanged copy of its "
                   "parent (Real et al. 2019: 0.05).")
flags.DEFINE_boolean("mutate_combine", False,
                     "Evolution also mutates NASNet's combine decision (add "
                     "or concat); the paper's cells always add.")
flags.DEFINE_boolean("depth_schedule", False,
                     "NAS-RL depth schedule for nasrl_cnn.")
flags.DEFINE_integer("depth_start", 6, "Depth schedule: first depth.")
flags.DEFINE_integer("depth_step", 2, "Depth schedule: layers added.")
flags.DEFINE_integer("depth_every", 1600,
                     "Depth schedule: children between steps.")
flags.DEFINE_string("train_preset", None,
                    "The train.py preset (a name of configs/ or a flagfile) "
                    "of the retrain command printed at the end. Unset: "
                    "train.py's defaults on --dataset.")
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
flags.DEFINE_integer("controller_train_steps", None,
                     "ENAS: controller updates per epoch (macro 50, micro "
                     "30). Unset: 50.")
flags.DEFINE_boolean("controller_updates", True,
                     "ENAS: train the controller. Off: architectures come "
                     "from the initial policy (the paper's ablation).")
flags.DEFINE_boolean("skip_unused_weights", False,
                     "ENAS: weights of ops a step did not use keep their "
                     "value and momentum (PyTorch ports). Off: zero "
                     "gradients still move them (the TF1 code).")
flags.DEFINE_integer("derive_samples", None,
                     "ENAS: architectures sampled and scored to derive the "
                     "result. Unset: 100.")

common_flags.define_darts_flags()
common_flags.define_child_train_flags()
common_flags.define_precision_flags()
for _name in common_flags.key_flags("search"):
    flags.declare_key_flag(_name)

# Strategies whose supernet trains by the image recipe flags.
_SHARED_WEIGHTS = ("enas", "darts")
# Flags that name where a run lives, not what it is.
# How many children train at once does not change them: a run resumes with
# another --parallel_children (--devices_per_child and --cpu_devices, the
# replica counts, are compared).
_NOT_COMPARED = ("logdir", "parallel_children") + run.LOCATION_FIELDS


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
    # ENAS trains shared weights by the image recipe (``enas.train``);
    # the recipe flags are not the children's then.
    child_train = (search_config.SearchConfig.child_train
                   if FLAGS.strategy in _SHARED_WEIGHTS else
                   common_flags.child_train_config_from_flags(
                       search_config.SearchConfig.child_train))
    lm_train = common_flags.lm_train_config_from_flags(
        search_config.SearchConfig.lm_train)
    return search_config.SearchConfig(
        space=space.name, space_params=dict(space.params),
        strategy=FLAGS.strategy, num_children=FLAGS.num_children,
        seed=0 if FLAGS.seed is None else FLAGS.seed, dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
        validation_size=FLAGS.validation_size,
        controller=controller, reinforce=learner,
        population_size=FLAGS.population_size,
        sample_size=FLAGS.sample_size,
        evolution_batch=FLAGS.evolution_batch,
        identity_mutation_probability=FLAGS.identity_mutation_probability,
        mutate_combine=FLAGS.mutate_combine,
        depth_schedule=FLAGS.depth_schedule,
        depth_start=FLAGS.depth_start, depth_step=FLAGS.depth_step,
        depth_every=FLAGS.depth_every,
        child=common_flags.child_config_from_flags(),
        # A language-model child trains by lm_train; only the reward's
        # window comes from the child flags.
        child_train=child_train if kind == "image" else dataclasses.replace(
            search_config.SearchConfig.child_train,
            reward_epochs=child_train.reward_epochs),
        lm=common_flags.lm_config_from_flags(),
        enas=_enas_config_from_flags(),
        darts=common_flags.darts_config_from_flags(FLAGS.strategy),
        lm_train=lm_train if kind == "text" else
        search_config.SearchConfig.lm_train,
        reward=FLAGS.reward or reward_lib.preset_formula(preset, kind),
        failed_reward=FLAGS.failed_reward,
        distribute=FLAGS.distribute,
        precision=common_flags.precision_config_from_flags())


def _enas_config_from_flags() -> enas_config.EnasConfig:
    base = enas_config.EnasConfig()
    if FLAGS.strategy != "enas":
        return base
    return dataclasses.replace(
        base, train=common_flags.image_train_config_from_flags(base.train),
        controller_train_steps=_unset_or(FLAGS.controller_train_steps,
                                         base.controller_train_steps),
        controller_updates=FLAGS.controller_updates,
        skip_unused_weights=FLAGS.skip_unused_weights,
        derive_samples=_unset_or(FLAGS.derive_samples, base.derive_samples))


def _unset_or(value, default):
    return default if value is None else value


def _report(config, result) -> None:
    """Prints the best architecture and the commands that retrain, export
    and use it, runnable as printed from a fresh shell."""
    logdir = FLAGS.logdir
    best = os.path.join(logdir, run.BEST_FILE)
    # The best child's own space: with a depth schedule, not the first one.
    space_file = os.path.join(logdir, run.BEST_SPACE_FILE)
    final, export = os.path.join(logdir, "final"), os.path.join(
        logdir, "final", "export")
    recipe = [f"--dataset={config.dataset}"]
    if FLAGS.train_preset:
        recipe = [command_line.preset_arg(FLAGS.train_preset)] + recipe
    what = ("derived architecture" if config.strategy in _SHARED_WEIGHTS
            else "best architecture")
    print(f"{what} (reward {result.best_reward:.4f}) in {best}:")
    print(f"  {result.best_tokens}")
    print("retrain it from scratch, export it and classify with it:")
    print("  " + command_line.command(
        "train", *recipe, f"--flagfile={space_file}", f"--arch_file={best}",
        f"--logdir={final}"))
    print("  " + command_line.command("export", f"--logdir={final}",
                                      f"--export_dir={export}"))
    if config.kind == "image":
        print("  " + command_line.command(
            "classify", f"--export_dir={export}",
            f"--dataset={config.dataset}"))
    if config.strategy == "enas" and config.kind == "image":
        print("compare the trained policy with the initial one:")
        for untrained in ((), ("--untrained",)):
            print("  " + command_line.command(
                "policy_eval", f"--logdir={logdir}", "--num_samples=1000",
                *untrained))
    print("review it in TensorBoard:")
    print("  " + command_line.tensorboard(logdir))


def main(argv):
    del argv
    try:
        task = cluster.task_from_env()
    except ValueError as e:
        return command_line.error(e)
    if task is not None and not task.is_chief:
        # Workers and parameter servers of a cluster search serve the chief.
        print(f"{task.role} {task.index} of the cluster: serving the chief")
        cluster.serve(task)
        return 0
    if not FLAGS.logdir:
        return command_line.error("--logdir is required")
    try:
        execution = child_dispatch.Execution(
            FLAGS.parallel_children, FLAGS.devices_per_child, task)
        ignored = [f"--{name}"
                   for name in common_flags.final_training_only_flags()
                   if FLAGS[name].value is not None]
        if ignored and FLAGS.strategy not in _SHARED_WEIGHTS:
            raise ValueError(f"{', '.join(ignored)}: scripts/train.py flags; "
                             "search children do not use them (ENAS's and "
                             "DARTS's shared weights do: --strategy=enas or "
                             "darts)")
        config = config_from_flags()
        search_config.check_search_config(config)
        child_dispatch.check_execution(execution, config)
        if config.kind == "image":
            common_flags.check_data_fits_model(config.dataset)
        text = common_flags.flags_text()
        _check_same_flags(FLAGS.logdir, text)
        run.check_run_directory(FLAGS.logdir, config)
    except (spaces.SpaceError, ValueError) as e:
        return command_line.error(e)
    # Checkpoint saving logs INFO lines through absl; progress is ours.
    logging.set_verbosity(logging.WARNING)
    try:
        distribute.split_cpu(FLAGS.cpu_devices)
        run_class = run.run_class(config)
        extra = ({"execution": execution} if run_class is run.SearchRun
                 else {})
        searcher = run_class(config, FLAGS.logdir, relaunch_flags=text,
                             **extra)
        result = searcher.run()
    except (ConnectionError, ValueError, run_lock.RunDirectoryInUse,
            child_dispatch.ClusterFailure) as e:
        return command_line.error(e)
    _report(config, result)
    return 0


if __name__ == "__main__":
    command_line.run(main, interrupted="the same command resumes from the "
                     "last finished child")
