"""Search overhead: controller cost, per-child fixed cost, memory per child.

  python bench/search_overhead.py [--updates=20] [--children=4] [--epochs=4]
      [--rss_children=50] [--rss_steps=5]

Three measurements, each the part of a search that is not child training:

1. Controller: per architecture, the time of ``Controller.sample`` plus
   ``Reinforce.update`` (random rewards) for ``enas_micro`` (its controller
   and REINFORCE presets) and ``nasrl_cnn`` at 6 layers (the start of the
   NAS-RL depth schedule) and 12 (``nasrl`` presets), with ``m`` the
   preset's ``num_aggregate``. The first call of each compiled function
   traces it; that time is reported on its own, then ``--updates`` batches
   are timed. ``Controller.score``, which the nasrl strategy also runs once
   per batch for the entropy bonus, is timed alongside.
2. Per-child fixed cost: ``--children`` nasrl_cnn children on the generated
   ``dominoes`` images through ``ChildEvaluator``. Overhead = build + (first
   epoch - a later epoch), the first epoch holding the tracing of the
   child's step functions; it is set against the child's training time.
   Single epochs on CPU vary by a second or so from one to the next, about
   as much as the tracing costs, so read the mean, not one child.
3. Memory: ``--rss_children`` short children (1 epoch of ``--rss_steps``
   steps) in a row, the resident set size read after each, to show whether
   memory grows from child to child.

Prints the figures and writes them as JSON to ``--output``.
"""

import json
import os
import platform
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.eager import context as eager_context  # noqa: E402

from nas_tf.search import children  # noqa: E402
from nas_tf import controller as controller_lib  # noqa: E402
from nas_tf import distribute  # noqa: E402
from nas_tf.utils import fileio  # noqa: E402
from nas_tf.controller import reinforce  # noqa: E402
from nas_tf.search import search_config  # noqa: E402
from nas_tf import spaces  # noqa: E402
from nas_tf.data import datasets  # noqa: E402
from nas_tf.training.child_trainer import ChildTrainConfig  # noqa: E402
import cpu_remapper_flag  # noqa: E402  (bench/, beside this file)

FLAGS = flags.FLAGS
flags.DEFINE_integer("updates", 20, "Timed controller updates per space.")
flags.DEFINE_integer("warmup", 2, "Controller calls before timing; the "
                     "first one (the trace) is reported separately.")
flags.DEFINE_integer("num_layers", 4, "Layers of the nasrl_cnn children.")
flags.DEFINE_integer("children", 4, "Children for the per-child overhead.")
flags.DEFINE_integer("epochs", 4, "Epochs of those children (at least 2).")
flags.DEFINE_integer("batch_size", 64, "Child batch size.")
flags.DEFINE_float("learning_rate", 0.05, "Child learning rate.")
flags.DEFINE_integer("rss_children", 50, "Children for the memory check.")
flags.DEFINE_integer("rss_steps", 5, "Steps of their single epoch.")
flags.DEFINE_integer("seed", 0, "Run seed (child initialisation, data).")
flags.DEFINE_string("output", "bench_results/search_overhead.json",
                    "Where the figures are written (JSON).")

# (label, space, space params, controller and REINFORCE preset).
CONTROLLER_CASES = (
    ("enas_micro", "enas_micro", {}, "enas_micro"),
    ("nasrl_cnn L=6", "nasrl_cnn", {"num_layers": 6}, "nasrl"),
    ("nasrl_cnn L=12", "nasrl_cnn", {"num_layers": 12}, "nasrl"),
)
RSS_MARKS = (1, 10, 25, 50)


def _timed(fn):
    began = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - began


def _controller_case(name, params, preset):
    space = spaces.get_space(name, **params)
    rl_config = reinforce.REINFORCE_PRESETS[preset]
    controller = controller_lib.Controller(
        space, controller_lib.CONTROLLER_PRESETS[preset],
        skip_target=rl_config.skip_target)
    learner = reinforce.Reinforce(controller, rl_config)
    m = rl_config.num_aggregate
    rng = np.random.default_rng(FLAGS.seed)
    batch = [0]

    def one_batch():
        # Reading the tokens back to numpy is part of the cost: the search
        # turns them into architectures on the host.
        tokens, t_sample = _timed(lambda: controller.sample(
            space, m, (FLAGS.seed, batch[0])).tokens.numpy())
        _, t_score = _timed(
            lambda: controller.score(space, tokens).log_prob.numpy())
        _, t_update = _timed(
            lambda: learner.update(space, tokens, rng.random(m)))
        batch[0] += 1
        return t_sample, t_score, t_update

    trace = one_batch()
    for _ in range(FLAGS.warmup - 1):
        one_batch()
    timed = np.array([one_batch() for _ in range(FLAGS.updates)])
    per_arch_ms = timed.sum(axis=0) / (FLAGS.updates * m) * 1e3
    sample_ms, score_ms, update_ms = (float(v) for v in per_arch_ms)
    return dict(space=repr(space), preset=preset, num_aggregate=m,
                num_tokens=space.num_tokens, timed_updates=FLAGS.updates,
                trace_seconds=dict(sample=round(trace[0], 3),
                                   score=round(trace[1], 3),
                                   update=round(trace[2], 3)),
                ms_per_arch=dict(sample=round(sample_ms, 3),
                                 update=round(update_ms, 3),
                                 sample_plus_update=round(
                                     sample_ms + update_ms, 3),
                                 score=round(score_ms, 3),
                                 strategy_total=round(
                                     sample_ms + score_ms + update_ms, 3)))


def _rss_mb():
    """Current resident set size (VmRSS) and the peak so far, in MB."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f
                  if line.startswith("VmRSS:"))
    # ru_maxrss is in kB on Linux.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0, peak / 1024.0


def _graph_functions():
    """Functions registered with the eager runtime: each child's traced
    steps add some, and they should go when the child is dropped. None where
    this TensorFlow does not list them."""
    try:
        return len(eager_context.context().list_function_names())
    except AttributeError:
        return None


def _evaluator(data, strategy, train_config, log):
    config = search_config.SearchConfig(
        space="nasrl_cnn", space_params={"num_layers": FLAGS.num_layers},
        dataset="dominoes", seed=FLAGS.seed, child_train=train_config)
    search_config.check_search_config(config)
    return config.space_at(0), children.ChildEvaluator(config, data,
                                                       strategy, log=log)


def _child_overhead(data, strategy, log):
    # reward_epochs = epochs: every epoch then validates, so epoch 1 differs
    # from the later ones only by tracing (the trainer validates just the
    # epochs the reward reads).
    space, evaluator = _evaluator(data, strategy, ChildTrainConfig(
        epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate, reward_epochs=FLAGS.epochs), log)
    rows = []
    for i in range(FLAGS.children):
        arch = space.sample(i)
        record, wall = _timed(lambda: evaluator.evaluate(space, arch, i))
        metrics = record["metrics"]
        epochs = metrics.get("epochs", 0)
        if record["status"] != children.OK or epochs < 2:
            log(f"child {i}: {record['status']} after {epochs} epochs; "
                "left out of the overhead figures")
            continue
        build = metrics["build_seconds"]
        train = metrics["train_seconds"]
        first = metrics["first_epoch_seconds"]
        later = (train - first) / (epochs - 1)
        overhead = build + (first - later)
        rows.append(dict(child=i, params=metrics["params"], epochs=epochs,
                         build_seconds=build, train_seconds=train,
                         first_epoch_seconds=first,
                         later_epoch_seconds=round(later, 3),
                         overhead_seconds=round(overhead, 3),
                         overhead_fraction=round(overhead / (build + train),
                                                 4),
                         # evaluate() also counts parameters and collects
                         # garbage after training; this is that remainder.
                         other_seconds=round(wall - build - train, 3)))
        print(f"  child {i}: {metrics['params']:>7,} params  build "
              f"{build:.3f}s  epoch 1 {first:.2f}s  later {later:.2f}s  "
              f"overhead {overhead:.2f}s of {build + train:.2f}s", flush=True)
    return rows


def _memory(data, strategy, log):
    space, evaluator = _evaluator(data, strategy, ChildTrainConfig(
        epochs=1, batch_size=FLAGS.batch_size, steps_per_epoch=FLAGS.rss_steps,
        learning_rate=FLAGS.learning_rate, reward_epochs=1), log)
    before, _ = _rss_mb()
    trace, functions = [], []
    # Indices after those of part 2 so these are other children.
    first_index = FLAGS.children
    for k in range(FLAGS.rss_children):
        i = first_index + k
        evaluator.evaluate(space, space.sample(i), i)
        rss, peak = _rss_mb()
        trace.append((round(rss, 1), round(peak, 1)))
        functions.append(_graph_functions())
        if (k + 1) in RSS_MARKS or (k + 1) % 10 == 0:
            print(f"  after child {k + 1:>3}: RSS {rss:7.1f} MB  peak "
                  f"{peak:7.1f} MB  graph functions {functions[-1]}",
                  flush=True)
    marks = {str(n): trace[n - 1][0] for n in RSS_MARKS if n <= len(trace)}
    growth = (trace[-1][0] - trace[min(10, len(trace)) - 1][0]
              if len(trace) >= 10 else None)
    return dict(children=len(trace), rss_before_mb=round(before, 1),
                rss_after_child_mb=marks, peak_mb=trace[-1][1] if trace
                else None,
                growth_10_to_last_mb=None if growth is None
                else round(growth, 1),
                rss_per_child_mb=[r for r, _ in trace],
                graph_functions_per_child=functions)


def _table(figures):
    lines = ["", "Controller, ms per architecture (m = num_aggregate)",
             f"{'space':<16}{'m':>3}{'sample':>9}{'update':>9}{'s+u':>9}"
             f"{'score':>9}{'trace s (sample/score/update)':>33}"]
    for label, c in figures["controller"].items():
        ms, tr = c["ms_per_arch"], c["trace_seconds"]
        lines.append(
            f"{label:<16}{c['num_aggregate']:>3}{ms['sample']:>9.2f}"
            f"{ms['update']:>9.2f}{ms['sample_plus_update']:>9.2f}"
            f"{ms['score']:>9.2f}"
            f"{tr['sample']:>15.2f} /{tr['score']:>6.2f} /"
            f"{tr['update']:>6.2f}")
    rows = figures["child_overhead"]["children"]
    lines += ["", f"Per-child overhead, nasrl_cnn L={FLAGS.num_layers}, "
              f"{FLAGS.epochs} epochs (seconds; the mean leaves out the "
              "process's first child)",
              f"{'child':>5}{'params':>9}{'build':>8}{'epoch 1':>9}"
              f"{'later':>8}{'overhead':>10}{'train':>8}{'share':>8}"]
    for r in rows:
        lines.append(
            f"{r['child']:>5}{r['params']:>9,}{r['build_seconds']:>8.3f}"
            f"{r['first_epoch_seconds']:>9.2f}{r['later_epoch_seconds']:>8.2f}"
            f"{r['overhead_seconds']:>10.2f}{r['train_seconds']:>8.2f}"
            f"{r['overhead_fraction']:>8.1%}")
    mean = figures["child_overhead"].get("mean")
    if mean:
        lines.append(
            f"{'mean':>5}{'':>9}{mean['build_seconds']:>8.3f}"
            f"{mean['first_epoch_seconds']:>9.2f}"
            f"{mean['later_epoch_seconds']:>8.2f}"
            f"{mean['overhead_seconds']:>10.2f}{mean['train_seconds']:>8.2f}"
            f"{mean['overhead_fraction']:>8.1%}")
    mem = figures["memory"]
    lines += ["", f"Memory over {mem['children']} children (MB; RSS before "
              f"them {mem['rss_before_mb']:.1f})",
              "  " + "  ".join(f"child {n}: {v:.1f}" for n, v in
                               mem["rss_after_child_mb"].items())]
    if mem["growth_10_to_last_mb"] is not None:
        lines.append(f"  peak {mem['peak_mb']:.1f}  growth child 10 -> "
                     f"{mem['children']}: {mem['growth_10_to_last_mb']:+.1f}")
    functions = mem["graph_functions_per_child"]
    if len(functions) >= 10 and None not in functions:
        lines.append(f"  graph functions registered: {functions[9]} after "
                     f"child 10, {functions[-1]} after child "
                     f"{mem['children']}")
    return "\n".join(lines)


def main(argv):
    del argv
    cpu_remapper_flag.apply()
    if FLAGS.epochs < 2:
        raise app.UsageError("--epochs must be at least 2: the overhead "
                             "needs a later epoch to compare with")
    began = time.perf_counter()
    notes = []

    def log(line):
        notes.append(line)
        print("  " + line, flush=True)

    figures = {
        "setting": dict(updates=FLAGS.updates, num_layers=FLAGS.num_layers,
                        children=FLAGS.children, epochs=FLAGS.epochs,
                        batch_size=FLAGS.batch_size,
                        learning_rate=FLAGS.learning_rate,
                        rss_children=FLAGS.rss_children,
                        rss_steps=FLAGS.rss_steps, seed=FLAGS.seed),
        "machine": dict(platform=platform.platform(), cpus=os.cpu_count(),
                        devices=[d.name for d in
                                 tf.config.list_logical_devices()],
                        tensorflow=tf.__version__,
                        # Other work on the machine slows every figure.
                        load_average_at_start=os.getloadavg()),
        "controller": {},
    }
    print("Controller sample + update:", flush=True)
    for label, name, params, preset in CONTROLLER_CASES:
        case = _controller_case(name, params, preset)
        figures["controller"][label] = case
        ms = case["ms_per_arch"]
        print(f"  {label}: {ms['sample_plus_update']:.2f} ms/arch (sample "
              f"{ms['sample']:.2f}, update {ms['update']:.2f}; traces "
              f"{case['trace_seconds']})", flush=True)

    data = datasets.load_image_data("dominoes", seed=FLAGS.seed)
    strategy = distribute.make_strategy("auto")
    print(f"Per-child overhead ({type(strategy).__name__}):", flush=True)
    rows = _child_overhead(data, strategy, log)
    keys = ("build_seconds", "train_seconds", "first_epoch_seconds",
            "later_epoch_seconds", "overhead_seconds", "other_seconds")
    # The process's first child also pays one-time costs (the first tf.data
    # pipeline and graph of the process), so the mean leaves it out when
    # there are others.
    steady = [r for r in rows if r["child"] > 0] or rows
    mean = {k: round(float(np.mean([r[k] for r in steady])), 3)
            for k in keys} if steady else {}
    if steady:
        mean["overhead_fraction"] = round(mean["overhead_seconds"] / (
            mean["build_seconds"] + mean["train_seconds"]), 4)
        mean["children"] = [r["child"] for r in steady]
    figures["child_overhead"] = dict(children=rows, mean=mean)

    print(f"Memory over {FLAGS.rss_children} children:", flush=True)
    figures["memory"] = _memory(data, strategy, log)
    figures["notes"] = notes
    figures["wall_seconds"] = round(time.perf_counter() - began, 1)
    figures["machine"]["load_average_at_end"] = os.getloadavg()

    print(_table(figures))
    fileio.write_file_atomically(
        FLAGS.output, (json.dumps(figures, indent=2) + "\n").encode())
    print(f"\n{figures['wall_seconds']:.0f} s in all; figures written to "
          f"{FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
