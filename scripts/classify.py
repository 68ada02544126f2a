"""Classifies test images with an exported SavedModel (the last step of the
quickstart pipeline).

  python scripts/classify.py --export_dir=runs/quickstart/final/export \
      --dataset=dominoes --num_images=8

The model is loaded with tf.saved_model.load alone; nas_tf only supplies the
images (the test split of --dataset, as uint8 pixels). Prints one line per
image (label, prediction, probability, with the class names where the
dataset has them) and the accuracy over them.
"""

from absl import flags

if __package__:  # the installed nas-classify command
    from nas_tf_cli import command_line
else:  # python scripts/classify.py: scripts/ is on sys.path
    import command_line

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from nas_tf.data import datasets  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("export_dir", None, "SavedModel written by "
                    "scripts/export.py.")
flags.DEFINE_string("dataset", "dominoes", "Dataset whose test images are "
                    "classified (dominoes, dominoes_near or a tfds image "
                    "dataset).")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_integer("num_images", 8, "Test images to classify.")
flags.DEFINE_integer("seed", 0, "Seed of a generated dataset.")


def _load(export_dir):
    """The serving function and the architecture of an image classifier
    export; ValueError for anything else."""
    try:
        model = tf.saved_model.load(export_dir)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"--export_dir={export_dir} is not a SavedModel written by "
            f"export.py ({type(e).__name__})") from None
    missing = {"serving_default", "architecture"} - set(model.signatures)
    if missing:
        raise ValueError(f"--export_dir={export_dir} lacks the signatures "
                         f"{', '.join(sorted(missing))}: it was not written "
                         "by export.py")
    serve = model.signatures["serving_default"]
    if "images" not in serve.structured_input_signature[1]:
        raise ValueError(f"--export_dir={export_dir} holds a language model, "
                         "not an image classifier; classify.py needs an "
                         "export of an image model")
    return serve, model.signatures["architecture"]()


def _name(data, label: int) -> str:
    names = data.class_names
    return f"{label} ({names[label]})" if names else str(label)


def main(argv):
    del argv
    if not FLAGS.export_dir:
        return command_line.error("--export_dir is required (a SavedModel "
                                  "written by export.py)")
    if FLAGS.num_images < 1:
        return command_line.error(f"--num_images={FLAGS.num_images}; it must "
                                  "be at least 1")
    try:
        serve, about = _load(FLAGS.export_dir)
        expected = serve.structured_input_signature[1]["images"]
        data = datasets.load_image_data(FLAGS.dataset, FLAGS.data_dir,
                                        seed=FLAGS.seed)
        if tuple(expected.shape[1:]) != data.test_images.shape[1:]:
            raise ValueError(
                f"--export_dir={FLAGS.export_dir} takes images of shape "
                f"{tuple(expected.shape[1:])}; {FLAGS.dataset} has "
                f"{data.test_images.shape[1:]}")
    except (ConnectionError, OSError, ValueError) as e:
        return command_line.error(e)
    print(f"loaded {FLAGS.export_dir}: {about['space'].numpy().decode()} "
          f"{about['architecture'].numpy().decode()}")
    count = min(FLAGS.num_images, len(data.test_labels))
    pixels = data.test_images[:count].astype(np.float32)
    probabilities = serve(images=tf.constant(pixels))["probabilities"].numpy()
    predicted = probabilities.argmax(axis=-1)
    for i in range(count):
        print(f"image {i}: label {_name(data, data.test_labels[i])}  "
              f"predicted {_name(data, predicted[i])}  "
              f"p={probabilities[i, predicted[i]]:.3f}")
    hits = int(np.sum(predicted == data.test_labels[:count]))
    print(f"{hits}/{count} correct")
    return 0


if __name__ == "__main__":
    command_line.run(main)
