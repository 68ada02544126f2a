"""Evaluates the policy of an ENAS search: samples architectures from its
trained controller (or, with --untrained, from the controller it started
with) and scores each with the shared weights on a fixed set of validation
images.

  python scripts/policy_eval.py --logdir=runs/enas --num_samples=1000
  python scripts/policy_eval.py --logdir=runs/enas --num_samples=1000 \
      --untrained --hidden_states

Writes to --out_dir (default RUN/policy_eval): trained.json or
untrained.json (every architecture's tokens, validation accuracy and
reward, and their summary), a TensorBoard histogram, and rewards.png with
the distributions of every policy evaluated there so far. With
--hidden_states also hidden_states.png: for 100 sampled architectures, how
much of the controller's hidden state at each decision the value picked at
each earlier decision explains (does the controller remember its earlier
choices?), and the states themselves as hidden_states.npy.
"""

import json
import os

from absl import flags
from absl import logging

if __package__:  # the installed command
    from nas_tf_cli import command_line
else:  # python scripts/policy_eval.py: scripts/ is on sys.path
    import command_line

from nas_tf.search import enas_run  # noqa: E402
from nas_tf.search import policy_eval  # noqa: E402
from nas_tf.search import run  # noqa: E402
from nas_tf.search import search_config  # noqa: E402
from nas_tf.utils import run_lock  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("logdir", None, "An ENAS search's run directory "
                    "(scripts/search.py --strategy=enas --logdir).")
flags.DEFINE_integer("num_samples", 1000, "Architectures to sample and "
                     "score.")
flags.DEFINE_boolean("untrained", False, "Sample from the controller the "
                     "search started with (its seed's initial weights) "
                     "instead of the trained one.")
flags.DEFINE_integer("num_valid", 0, "Validation images each architecture "
                     "is scored on (the first ones; 0: all).")
flags.DEFINE_boolean("hidden_states", False, "Also draw what the "
                     "controller's hidden state remembers of earlier "
                     "choices, over 100 sampled architectures.")
flags.DEFINE_string("out_dir", None, "Output directory. Unset: "
                    "LOGDIR/policy_eval.")


def _searcher(logdir):
    path = os.path.join(logdir, run.CONFIG_FILE)
    if not os.path.exists(path):
        raise ValueError(f"{logdir} holds no search ({path} is missing)")
    with open(path) as f:
        config = search_config.SearchConfig.from_json(f.read())
    if config.strategy != "enas":
        raise ValueError(f"{logdir} holds a {config.strategy!r} search; "
                         "policy evaluation needs an ENAS search's shared "
                         "weights (--strategy=enas)")
    if config.kind != "image":
        raise ValueError(f"{logdir} searched a language model; policy "
                         "evaluation scores image searches only")
    searcher = enas_run.EnasRun(config, logdir, log=lambda _: None)
    if not searcher.manager.latest_checkpoint:
        searcher.lock.release()
        raise ValueError(f"{logdir} has no checkpoint yet: its first shared "
                         "phase has not finished")
    return searcher


def main(argv):
    del argv
    if not FLAGS.logdir:
        return command_line.error("--logdir is required")
    logging.set_verbosity(logging.WARNING)
    try:
        searcher = _searcher(FLAGS.logdir)
    except (ValueError, run_lock.RunDirectoryInUse) as e:
        return command_line.error(e)
    out_dir = FLAGS.out_dir or os.path.join(FLAGS.logdir, "policy_eval")
    try:
        print(f"{FLAGS.logdir}: shared weights after epoch "
              f"{int(searcher.epoch)}; scoring {FLAGS.num_samples} "
              f"architectures of the "
              f"{'untrained' if FLAGS.untrained else 'trained'} controller")
        evaluation = policy_eval.evaluate_policy(
            searcher, FLAGS.num_samples, FLAGS.untrained, FLAGS.num_valid)
        paths = policy_eval.write_policy_evaluation(out_dir, evaluation)
        if FLAGS.hidden_states:
            paths["hidden_states"] = policy_eval.write_choice_memory(
                out_dir, searcher)
    except ValueError as e:
        return command_line.error(e)
    finally:
        searcher.lock.release()
    print(json.dumps(evaluation.summary()))
    for name, path in paths.items():
        print(f"{name}: {path}")
    print("review it in TensorBoard:")
    print("  " + command_line.tensorboard(out_dir))
    return 0


if __name__ == "__main__":
    command_line.run(main)
