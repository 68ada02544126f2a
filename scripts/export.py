"""Exports a trained architecture as a SavedModel that runs without nas_tf.

  python scripts/export.py --logdir=runs/qs/final --export_dir=runs/qs/export

--logdir is a run directory of scripts/train.py whose training has finished.
The SavedModel's serving_default signature takes raw images (pixels 0..255)
and returns class probabilities, or takes token ids and returns next-token
logits; its architecture signature returns the architecture's token string
and search space. Prints the export's path, signatures and architecture.
"""

from absl import flags
from absl import logging

if __package__:  # the installed nas-export command
    from nas_tf_cli import command_line
else:  # python scripts/export.py: scripts/ is on sys.path
    import command_line

from nas_tf import export  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("logdir", None, "Finished training run (scripts/train.py "
                    "--logdir).")
flags.DEFINE_string("export_dir", None, "SavedModel directory to write.")
flags.DEFINE_boolean("overwrite", False,
                     "Replace --export_dir if it already exists.")


def main(argv):
    del argv
    missing = [f"--{name}" for name in ("logdir", "export_dir")
               if not FLAGS[name].value]
    if missing:
        return command_line.error(f"{' and '.join(missing)} required")
    # SavedModel writing logs INFO lines through absl; the summary is ours.
    logging.set_verbosity(logging.WARNING)
    try:
        result = export.export_trained_model(FLAGS.logdir, FLAGS.export_dir,
                                             overwrite=FLAGS.overwrite)
    except (OSError, ValueError) as e:
        return command_line.error(e)
    print(f"exported {FLAGS.logdir} (checkpoint {result.checkpoint}) to "
          f"{result.export_dir}")
    print("signatures:")
    for name, text in result.signatures.items():
        print(f"  {name}: {text}")
    print(f"space: {result.space}")
    print(f"architecture: {result.architecture}")
    print(f"load it with: tf.saved_model.load({result.export_dir!r})")
    if result.preprocessing:
        print("its inputs: each image's evaluation crop as pixels 0..255, "
              "nas_tf.data.imagenet_preprocessing.eval_pixels(image, "
              f"{result.preprocessing!r}, size)")
    elif result.kind == "image":
        print("classify test images with it:")
        print("  " + command_line.command(
            "classify", f"--export_dir={result.export_dir}",
            f"--dataset={result.dataset}"))
    return 0


if __name__ == "__main__":
    command_line.run(main)
