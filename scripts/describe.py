"""Prints the size of an architecture and of its search space.

  python scripts/describe.py --flagfile=configs/darts_cifar10_final.cfg \
      --arch=DARTS_V2 [--draw=cells.png]

  python scripts/describe.py --flagfile=configs/darts_ptb_final.cfg \
      --arch=DARTS_V2_RNN

Prints ``trainable_params``, ``total_params``, ``mult_adds`` (auxiliary head
left out; for a language model, per predicted word) and ``space_size``
(exact), one per line.
"""

import sys

from absl import app
from absl import flags

import common_flags
from nas_tf import describe
from nas_tf import drawing
from nas_tf.utils import fileio
from nas_tf import spaces
from nas_tf.builders import build_model

FLAGS = flags.FLAGS
flags.DEFINE_string("arch", None,
                    "Token string of the space, or a published name "
                    f"({', '.join(sorted(spaces.PUBLISHED))}).")
flags.DEFINE_string("draw", None, "Write a PNG drawing of the cells here.")
flags.mark_flag_as_required("arch")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        space = common_flags.space_from_flags()
        arch = spaces.resolve_architecture(space, FLAGS.arch)
        config = common_flags.model_config_from_flags(space)
        summary = describe.summarize(build_model(space, arch, config))
    except (spaces.SpaceError, ValueError) as e:
        print(f"describe.py: error: {e}", file=sys.stderr)
        return 2
    print(f"space: {space!r}")
    print(f"architecture: {space.format(arch)}")
    print(f"trainable_params: {summary.trainable_params}")
    print(f"total_params: {summary.total_params}")
    print(f"mult_adds: {summary.mult_adds}")
    print(f"space_size: {space.size()}")
    if FLAGS.draw:
        fileio.write_file_atomically(
            FLAGS.draw, drawing.draw_architecture(space, arch))
        print(f"drawing: {FLAGS.draw}")
    return 0


if __name__ == "__main__":
    app.run(main)
