"""The benchmarks' ``--cpu_remapper`` flag (imported for its definition).

nas_tf's scripts turn Grappler's remapper off when no GPU is visible
(``nas_tf/utils/cpu_fusions.py``); a benchmark does the same unless told
otherwise, so its figures are the scripts'.
"""

from absl import flags

from nas_tf.utils import cpu_fusions

flags.DEFINE_bool("cpu_remapper", False,
                  "Keep Grappler's remapper on without a GPU (the scripts "
                  "turn it off: nas_tf/utils/cpu_fusions.py).")


def apply() -> None:
    """Turns the remapper off unless ``--cpu_remapper``; call in main."""
    if not flags.FLAGS.cpu_remapper:
        cpu_fusions.turn_off_cpu_remapper()
