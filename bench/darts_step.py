"""DARTS search-step cost on this machine, at train_search.py's sizes.

  python bench/darts_step.py [--orders=first,second] [--batch_sizes=16,64]
      [--precisions=float32,mixed_bfloat16,float32+xla] [--steps=5]
      [--output=bench_results/darts_step.json]

For each order, batch size and precision, in a process of its own (so
that its peak memory is its own): the CIFAR-10 search network of
configs/darts_cifar10_search.cfg (8 cells, C = 16, 4 nodes, all 8 ops on
every edge, 10 classes, 32 x 32 x 3 random images) trained by the DARTS
loop's own compiled step (``DartsRun.search_step``: alpha's update on a
validation batch, first or second order, then the weights' SGD step), as
train_search.py runs ``architect.step`` then the weight step. Prints and
writes:

* ``compile_s``: tracing and the first call;
* ``median_s`` and every timed step (``steps_s``), after the first call;
* ``peak_rss_gb``: the process's peak resident memory.

``--precisions`` times the same step under Keras's mixed policies
(``mixed_bfloat16``, ``mixed_float16``) and, with ``+xla``, with the
network's passes compiled by XLA (``--mixed_precision`` and
``--jit_compile`` of search.py).

The PyTorch reference is timed the same way (``architect.step`` plus one
weight step, after warm-up) with CPU torch in a separate environment; see
the README's DARTS section for those figures and the command.
"""

import dataclasses
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from nas_tf.utils import fileio  # noqa: E402
import cpu_remapper_flag  # noqa: E402  (bench/, beside this file)

FLAGS = flags.FLAGS
flags.DEFINE_list("orders", ["first", "second"],
                  "Orders of alpha's gradient: first, second, exact.")
flags.DEFINE_list("batch_sizes", ["16", "64"], "Batch sizes (train and "
                  "validation batches alike).")
flags.DEFINE_list("precisions", ["float32"], "Dtype policies, each "
                  "optionally with +xla (e.g. mixed_bfloat16+xla).")
flags.DEFINE_integer("steps", 5, "Timed steps after the first call.")
flags.DEFINE_string("output", "bench_results/darts_step.json",
                    "Where the figures go (JSON).")
flags.DEFINE_string("one", None, "ORDER:BATCH: time one configuration in "
                    "this process and print its JSON (used internally).")


def _precision(name: str):
    """``POLICY[+xla]`` -> ``PrecisionConfig``."""
    from nas_tf.training import precision
    policy, _, xla = name.partition("+")
    if xla not in ("", "xla"):
        raise ValueError(f"precision {name!r}: the suffix may only be +xla")
    return precision.PrecisionConfig(policy, jit_compile=bool(xla))


def _time_one(order: str, batch: int, precision_name: str) -> dict:
    import tensorflow as tf

    from nas_tf import config as config_lib
    from nas_tf.data import images
    from nas_tf.search import darts_config
    from nas_tf.search import darts_run
    from nas_tf.search import search_config

    cpu_remapper_flag.apply()
    rng = np.random.default_rng(0)
    count = 2 * batch

    def split():
        return (rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8),
                rng.integers(0, 10, count))

    data = images.ImageData.from_splits("random", 10, split(), None, None)
    darts = darts_config.DartsConfig(order=order, hessian_every=0)
    darts = dataclasses.replace(darts, train=dataclasses.replace(
        darts.train, batch_size=batch))
    config = search_config.SearchConfig(
        space="darts_cnn", strategy="darts", dataset="random",
        child=config_lib.ChildConfig(num_cells=8, filters=16),
        darts=darts, precision=_precision(precision_name))
    with tempfile.TemporaryDirectory() as logdir:
        searcher = darts_run.DartsRun(config, logdir, data, lambda _: None)
        train = next(iter(images.train_dataset(
            searcher.weights_data, batch, 0, 0)))
        valid = next(iter(images.train_dataset(
            searcher.alpha_data, batch, 1, 0)))
        extra = searcher._extra()

        def step(k):
            out = searcher.search_step(train, valid, k, extra)
            return float(out["train_loss"])  # waits for the step

        began = time.perf_counter()
        step(0)
        compile_s = time.perf_counter() - began
        times = []
        for k in range(FLAGS.steps):
            began = time.perf_counter()
            step(k + 1)
            times.append(time.perf_counter() - began)
        searcher.lock.release()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return {"impl": "nas_tf", "order": order, "batch": batch,
            "precision": precision_name,
            "compile_s": round(compile_s, 2),
            "median_s": round(statistics.median(times), 3),
            "steps_s": [round(t, 3) for t in times],
            "peak_rss_gb": round(peak, 2), "tf": tf.__version__,
            "cpus": os.cpu_count()}


def main(argv):
    del argv
    if FLAGS.one:
        order, batch, precision_name = FLAGS.one.split(":")
        print(json.dumps(_time_one(order, int(batch), precision_name)))
        return 0
    for name in FLAGS.precisions:
        _precision(name)  # a bad name stops here, before any run
    results = []
    for order, batch, name in itertools.product(
            FLAGS.orders, FLAGS.batch_sizes, FLAGS.precisions):
        command = [sys.executable, __file__, f"--one={order}:{batch}:{name}",
                   f"--steps={FLAGS.steps}"]
        if FLAGS.cpu_remapper:
            command.append("--cpu_remapper")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n"
                               f"{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"{order} order, batch {batch}, {name}: "
              f"{result['median_s']:.2f} s/step (median of {FLAGS.steps}; "
              f"compile {result['compile_s']:.0f} s), peak RSS "
              f"{result['peak_rss_gb']:.2f} GB", flush=True)
    report = {"machine": platform.machine(), "cpus": os.cpu_count(),
              "results": results}
    fileio.write_file_atomically(FLAGS.output,
                                 json.dumps(report, indent=1) + "\n")
    print(f"written to {FLAGS.output}")
    return 0


if __name__ == "__main__":
    app.run(main)
