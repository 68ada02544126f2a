"""Trains one architecture from scratch and tests it; the same command again
resumes it.

  python scripts/train.py --flagfile=configs/darts_cifar10_final.cfg \
      --arch=DARTS_V2 --logdir=runs/darts_v2
  python scripts/train.py --flagfile=configs/quickstart_train.cfg \
      --arch_file=runs/quickstart/best_arch.txt --logdir=runs/quickstart/final

Image models train on the final split (training and validation images
together) and are tested on the test split; language models train with the
LM recipe and report validation and test perplexity. The run directory gets
flags.cfg, train_config.json, checkpoints/ (every epoch), TensorBoard
events (scalars, hparams, the architecture drawn) and, once finished,
result.json, which scripts/export.py needs.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

import common_flags
from nas_tf import distribute
from nas_tf.utils import fileio
from nas_tf import spaces
from nas_tf.training import trained_run
from nas_tf.training import final_training

FLAGS = flags.FLAGS

flags.DEFINE_string("arch", None, "Architecture: a token string or a "
                    "published name (DARTS_V2, NASNET_A, ...).")
flags.DEFINE_string("arch_file", None, "File holding the token string "
                    "(a search's best_arch.txt).")
flags.DEFINE_string("logdir", None, "Run directory (created; reused to "
                    "resume).")
flags.DEFINE_string("dataset", None, "dominoes (generated), a tfds image "
                    "dataset, or ptb / synthetic_text. Unset: cifar10 for "
                    "image spaces, ptb for recurrent ones.")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_enum("distribute", "auto", distribute.KINDS,
                  "auto, mirrored (all GPUs, or --cpu_devices) or "
                  "one_device.")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many "
                     "logical devices (for --distribute=mirrored).")


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


def _preset() -> str:
    """The name of the (last) --flagfile on the command line, if any."""
    names = [arg.split("=", 1)[1] for arg in sys.argv[1:]
             if arg.startswith("--flagfile=")]
    return os.path.splitext(os.path.basename(names[-1]))[0] if names else ""


def request_from_flags() -> final_training.TrainingRequest:
    space = common_flags.space_from_flags()
    arch = spaces.resolve_architecture(space, _architecture_text())
    recurrent = space.family == "recurrent"
    return final_training.TrainingRequest(
        space=space, arch=arch,
        dataset=FLAGS.dataset or ("ptb" if recurrent else "cifar10"),
        data_dir=FLAGS.data_dir,
        model=common_flags.model_config_from_flags(space),
        recipe=(common_flags.lm_train_config_from_flags(
            final_training.LM_RECIPE) if recurrent
            else common_flags.image_train_config_from_flags()),
        preset=_preset(), distribute=FLAGS.distribute)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.logdir:
        print("train.py: error: --logdir is required", file=sys.stderr)
        return 2
    try:
        request = request_from_flags()
        final_training.check_logdir(FLAGS.logdir, request)
    except (spaces.SpaceError, ValueError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    finished = trained_run.read_result(FLAGS.logdir)
    if finished is not None:
        print(f"{FLAGS.logdir} has finished training: {finished}")
        return 0
    # Checkpoint saving logs INFO lines through absl; progress is ours.
    logging.set_verbosity(logging.WARNING)
    distribute.split_cpu(FLAGS.cpu_devices)
    try:
        os.makedirs(FLAGS.logdir, exist_ok=True)
        fileio.write_file_atomically(
            os.path.join(FLAGS.logdir, "flags.cfg"), common_flags.flags_text())
        result = final_training.train(request, FLAGS.logdir)
    except (ConnectionError, OSError, ValueError, FloatingPointError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    print(f"finished: {result}")
    print("export it:")
    print(f"  python scripts/export.py --logdir={FLAGS.logdir} "
          f"--export_dir={FLAGS.logdir}/export")
    return 0


if __name__ == "__main__":
    app.run(main)
