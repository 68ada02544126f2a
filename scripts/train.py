"""Trains one architecture from scratch and tests it; the same command again
resumes it.

  python scripts/train.py --preset=darts_cifar10_final --arch=DARTS_V2 \
      --logdir=runs/darts_v2
  python scripts/train.py --preset=quickstart_train \
      --arch_file=runs/quickstart/best_arch.txt --logdir=runs/quickstart/final

Image models train on the final split (training and validation images
together) and are tested on the test split; ImageNet (--dataset=imagenet2012
with --data_dir and --manual_dir) is streamed, preprocessed as
--imagenet_preprocessing says, and tested on its validation split; language
models train with the
LM recipe and report validation and test perplexity. The run directory gets
flags.cfg, train_config.json, checkpoints/ (every epoch), TensorBoard
events (scalars, hparams, the architecture drawn) and, once finished,
result.json, which scripts/export.py needs.

Multi-worker: run the same command on every task of a cluster, each with
its own TF_CONFIG and a --logdir on a filesystem they share; they train as
one (MultiWorkerMirroredStrategy) and the chief writes the run directory.
If a task is lost the others stop; relaunching every task resumes after
the last finished epoch.
"""

import os

from absl import flags
from absl import logging

if __package__:  # the installed nas-train command
    from nas_tf_cli import command_line
    from nas_tf_cli import common_flags
else:  # python scripts/train.py: scripts/ is on sys.path
    import command_line
    import common_flags

import tensorflow as tf  # after command_line, which imports it quietly

from nas_tf import distribute
from nas_tf import spaces
from nas_tf.training import final_training
from nas_tf.training import trained_run
from nas_tf.utils import run_lock

FLAGS = flags.FLAGS

flags.DEFINE_string("arch", None, "Architecture: a token string or a "
                    "published name (DARTS_V2, NASNet-A, ENAS_micro, ...).")
flags.DEFINE_string("arch_file", None, "File holding the token string "
                    "(a search's best_arch.txt).")
flags.DEFINE_string("logdir", None, "Run directory (created; reused to "
                    "resume).")
flags.DEFINE_string("dataset", None, "dominoes or dominoes_near (generated), "
                    "a tfds image dataset, or ptb / synthetic_text. Unset: "
                    "cifar10 for image spaces, ptb for recurrent ones.")
common_flags.define_data_flags()
common_flags.define_precision_flags()
flags.DEFINE_enum("distribute", "auto", distribute.KINDS,
                  "auto, mirrored (all GPUs, or --cpu_devices), one_device "
                  "or multi_worker (the TF_CONFIG cluster; auto picks it "
                  "when TF_CONFIG names worker tasks).")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many "
                     "logical devices (for --distribute=mirrored).")
for _name in common_flags.key_flags("final"):
    flags.declare_key_flag(_name)


def _architecture_text() -> str:
    if bool(FLAGS.arch) == bool(FLAGS.arch_file):
        raise ValueError("give exactly one of --arch (tokens or a published "
                         "name) and --arch_file")
    if FLAGS.arch:
        return FLAGS.arch
    try:
        with open(FLAGS.arch_file) as f:
            return f.read().strip()
    except OSError as e:
        raise ValueError(f"--arch_file={FLAGS.arch_file}: {e.strerror}") \
            from None


def request_from_flags() -> final_training.TrainingRequest:
    space = common_flags.space_from_flags()
    arch = spaces.resolve_architecture(space, _architecture_text())
    recurrent = space.family == "recurrent"
    return final_training.TrainingRequest(
        space=space, arch=arch,
        dataset=FLAGS.dataset or ("ptb" if recurrent else "cifar10"),
        data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
        model=common_flags.model_config_from_flags(space),
        recipe=(common_flags.lm_train_config_from_flags(
            final_training.LM_RECIPE) if recurrent
            else common_flags.image_train_config_from_flags()),
        preset=command_line.preset_name(),
        distribute=distribute.resolve_kind(FLAGS.distribute),
        imagenet_preprocessing=FLAGS.imagenet_preprocessing or "",
        precision=common_flags.precision_config_from_flags())


def _cause(error: tf.errors.OpError) -> str:
    """The line of a TensorFlow error's message that says what happened
    (the rest is where in the graph)."""
    lines = [line for line in error.message.splitlines() if line.strip()
             and not line[0].isspace() and not line.startswith(
                 ("Graph execution error", "Detected at node", "[["))]
    return lines[0] if lines else type(error).__name__


def main(argv):
    del argv
    if not FLAGS.logdir:
        return command_line.error("--logdir is required")
    try:
        request = request_from_flags()
        final_training.check_request(request)
        if (request.distribute == distribute.MULTI_WORKER
                and FLAGS.cpu_devices > 1):
            raise ValueError(
                f"--cpu_devices={FLAGS.cpu_devices} splits the CPU for "
                f"--distribute=mirrored; a multi-worker task trains one "
                f"replica per GPU, or one on its CPU")
        if request.kind == trained_run.IMAGE:
            common_flags.check_data_fits_model(request.dataset)
        final_training.check_logdir(FLAGS.logdir, request)
    except (spaces.SpaceError, ValueError) as e:
        return command_line.error(e)
    finished = trained_run.read_result(FLAGS.logdir)
    if finished is not None:
        print(f"{FLAGS.logdir} has finished training: {finished}")
        return 0
    # Checkpoint saving logs INFO lines through absl; progress is ours.
    logging.set_verbosity(logging.WARNING)
    try:
        distribute.split_cpu(FLAGS.cpu_devices)
        result = final_training.train(
            request, FLAGS.logdir, relaunch_flags=common_flags.flags_text())
    except (ConnectionError, OSError, ValueError, FloatingPointError,
            run_lock.RunDirectoryInUse) as e:
        return command_line.error(e)
    except tf.errors.UnavailableError as e:
        # A peer of a multi-worker run died or cannot be reached.
        return command_line.error(
            f"lost contact with a task of the TF_CONFIG cluster "
            f"({_cause(e)}); relaunch every task with the same command to "
            f"resume after the last finished epoch")
    print(f"finished: {result}")
    task = (distribute.multi_worker_task()
            if request.distribute == distribute.MULTI_WORKER else None)
    if task is not None and not task.is_chief:
        print(f"{task.role} {task.index} is done; the chief wrote "
              f"{FLAGS.logdir}")
        return 0
    export = os.path.join(FLAGS.logdir, "export")
    print("export it:")
    print("  " + command_line.command("export", f"--logdir={FLAGS.logdir}",
                                      f"--export_dir={export}"))
    return 0


if __name__ == "__main__":
    command_line.run(main, interrupted="the same command resumes after the "
                     "last finished epoch")
