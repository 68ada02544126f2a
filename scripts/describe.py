"""Prints the size of an architecture and of its search space.

  python scripts/describe.py --preset=darts_cifar10_final --arch=DARTS_V2 \
      [--draw=cells.png]

  python scripts/describe.py --preset=darts_ptb_final --arch=DARTS_V2_RNN

  python scripts/describe.py --preset=darts_cifar10_search --supernet

Prints ``trainable_params``, ``total_params``, ``mult_adds`` (auxiliary head
left out; for a language model, per predicted word) and ``space_size``
(exact), one per line. ``--supernet`` describes a DARTS search network
instead: its weights and ``architecture_params`` (alpha).
"""

from absl import flags

if __package__:  # the installed nas-describe command
    from nas_tf_cli import command_line
    from nas_tf_cli import common_flags
else:  # python scripts/describe.py: scripts/ is on sys.path
    import command_line
    import common_flags

from nas_tf import describe
from nas_tf import drawing
from nas_tf import spaces
from nas_tf.builders import build_model
from nas_tf.utils import fileio

FLAGS = flags.FLAGS
flags.DEFINE_string("arch", None,
                    "Token string of the space, or a published name "
                    f"({', '.join(sorted(spaces.PUBLISHED))}).")
flags.DEFINE_string("draw", None, "Write a PNG drawing of the cells here.")
flags.DEFINE_string("dataset", None, "The dataset of a train.py preset; "
                    "describe.py does not read it.")
flags.DEFINE_boolean("supernet", False,
                     "Describe the DARTS search network of the space "
                     "(darts_cnn, darts_rnn) instead of an architecture.")
# Search presets name these too; describe.py does not read them.
flags.DEFINE_string("strategy", None, "The search strategy of a search "
                    "preset (unused here).")
flags.DEFINE_string("train_preset", None, "The retrain preset of a search "
                    "preset (unused here).")
common_flags.define_darts_flags()
for _name in common_flags.key_flags():
    flags.declare_key_flag(_name)


def _describe_supernet():
    from nas_tf.supernets import describe_supernet
    space = common_flags.space_from_flags()
    darts = common_flags.darts_config_from_flags("darts")
    sizes = describe_supernet.count(
        space, common_flags.model_config_from_flags(space),
        darts.partial_channels, darts.auxiliary_skip,
        darts.edge_normalization)
    print(f"space: {space!r}")
    for key, value in sizes.items():
        print(f"{key}: {value}")
    return 0


def main(argv):
    del argv
    if FLAGS.supernet:
        try:
            return _describe_supernet()
        except (spaces.SpaceError, ValueError) as e:
            return command_line.error(e)
    if not FLAGS.arch:
        return command_line.error("--arch is required (a token string or a "
                                  "published name)")
    try:
        space = common_flags.space_from_flags()
        arch = spaces.resolve_architecture(space, FLAGS.arch)
        config = common_flags.model_config_from_flags(space)
        summary = describe.summarize(build_model(space, arch, config))
    except (spaces.SpaceError, ValueError) as e:
        return command_line.error(e)
    print(f"space: {space!r}")
    print(f"architecture: {space.format(arch)}")
    print(f"trainable_params: {summary.trainable_params}")
    print(f"total_params: {summary.total_params}")
    print(f"mult_adds: {summary.mult_adds}")
    print(f"space_size: {space.size()}")
    if FLAGS.draw:
        try:
            fileio.write_file_atomically(
                FLAGS.draw, drawing.draw_architecture(space, arch))
        except OSError as e:
            return command_line.error(f"--draw={FLAGS.draw}: cannot write it "
                                      f"({e.strerror})")
        print(f"drawing: {FLAGS.draw}")
    return 0


if __name__ == "__main__":
    command_line.run(main)
