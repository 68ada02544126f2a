"""Classifies test images with an exported SavedModel (the last step of the
quickstart pipeline).

  python scripts/classify.py --export_dir=runs/quickstart/export \
      --dataset=dominoes --num_images=8

The model is loaded with tf.saved_model.load alone; nas_tf only supplies the
images (the test split of --dataset, as uint8 pixels). Prints one line per
image (label, prediction, probability) and the accuracy over them.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from nas_tf.data import datasets  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("export_dir", None, "SavedModel written by "
                    "scripts/export.py.")
flags.DEFINE_string("dataset", "dominoes", "Dataset whose test images are "
                    "classified (dominoes or a tfds image dataset).")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_integer("num_images", 8, "Test images to classify.")
flags.DEFINE_integer("seed", 0, "Seed of a generated dataset.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.export_dir or not os.path.isdir(FLAGS.export_dir):
        print(f"classify.py: error: --export_dir={FLAGS.export_dir} is not a "
              f"SavedModel directory (write one with scripts/export.py)",
              file=sys.stderr)
        return 2
    if FLAGS.num_images < 1:
        print(f"classify.py: error: --num_images={FLAGS.num_images}; it must "
              f"be at least 1", file=sys.stderr)
        return 2
    try:
        model = tf.saved_model.load(FLAGS.export_dir)
        serve = model.signatures["serving_default"]
        about = model.signatures["architecture"]()
        expected = serve.structured_input_signature[1].get("images")
        if expected is None:
            raise ValueError("it is not an image classifier (its "
                             "serving_default takes no images)")
        data = datasets.load_image_data(FLAGS.dataset, FLAGS.data_dir,
                                      seed=FLAGS.seed)
        if tuple(expected.shape[1:]) != data.test_images.shape[1:]:
            raise ValueError(f"it takes images of shape "
                             f"{tuple(expected.shape[1:])}, {FLAGS.dataset}"
                             f" has {data.test_images.shape[1:]}")
    except (ConnectionError, OSError, KeyError, ValueError) as e:
        print(f"classify.py: error: cannot classify {FLAGS.dataset} images "
              f"with {FLAGS.export_dir}: {e}", file=sys.stderr)
        return 2
    print(f"loaded {FLAGS.export_dir}: {about['space'].numpy().decode()} "
          f"{about['architecture'].numpy().decode()}")
    count = min(FLAGS.num_images, len(data.test_labels))
    pixels = data.test_images[:count].astype(np.float32)
    probabilities = serve(images=tf.constant(pixels))["probabilities"].numpy()
    predicted = probabilities.argmax(axis=-1)
    for i in range(count):
        print(f"image {i}: label {data.test_labels[i]}  predicted "
              f"{predicted[i]}  p={probabilities[i, predicted[i]]:.3f}")
    hits = int(np.sum(predicted == data.test_labels[:count]))
    print(f"{hits}/{count} correct")
    return 0


if __name__ == "__main__":
    app.run(main)
