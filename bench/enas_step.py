"""ENAS step costs on this machine, at the search scripts' sizes.

  python bench/enas_step.py [--spaces=enas_macro,enas_micro]
      [--batch_sizes=32,128] [--steps=8] [--repeats=3]

For each space, as configs/enas_{macro,micro}_cifar10_search.cfg sets it
(macro: 12 layers, 36 filters, 6 branches; micro: 6 + 2 layers, 20 filters,
5 nodes, auxiliary head), on random CIFAR-shaped images (32 x 32 x 3, 10
classes), through the ENAS loop's own code (``EnasRun``):

1. Shared step: the compiled training step of the search (the controller
   samples an architecture inside the step; forward, backward, Nesterov SGD
   with decay), seconds per step: the median over ``--repeats`` epochs of
   ``--steps`` steps, after one warm-up epoch that traces.
2. Fixed step: the first sampled architecture built by nas_tf's fixed
   builders (``builders.build_model``, the model train.py retrains) and
   trained by the same compiled loop; the ratio shared / fixed.
3. Controller: ``Controller.sample`` of one architecture; one controller
   sample as the loop runs it (sample, reward on one validation minibatch
   with the shared weights, a history line) plus its share of a REINFORCE
   update every ``m`` samples; both in ms per sample.
4. One search epoch on CIFAR-10 (45,000 training images; ``train_steps x
   m`` controller samples): shared phase = its steps x the shared step,
   controller phase = its samples x the per-sample time, estimated from
   the measurements above.

Prints the figures and writes them as JSON to ``--output``.
"""

import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from nas_tf import builders  # noqa: E402
from nas_tf import config as config_lib  # noqa: E402
from nas_tf import controller as controller_lib  # noqa: E402
from nas_tf.controller import reinforce  # noqa: E402
from nas_tf.data import images  # noqa: E402
from nas_tf.search import enas_config  # noqa: E402
from nas_tf.search import enas_run  # noqa: E402
from nas_tf.search import search_config  # noqa: E402
from nas_tf.training import image_trainer  # noqa: E402
from nas_tf.training import momentum_sgd  # noqa: E402
from nas_tf.training import replica_loop  # noqa: E402
from nas_tf.utils import fileio  # noqa: E402
import cpu_remapper_flag  # noqa: E402  (bench/, beside this file)

FLAGS = flags.FLAGS
flags.DEFINE_list("spaces", ["enas_macro", "enas_micro"], "Spaces to time.")
flags.DEFINE_list("batch_sizes", ["32", "128"], "Batch sizes to time.")
flags.DEFINE_integer("steps", 8, "Training steps per timed epoch.")
flags.DEFINE_integer("repeats", 3, "Timed epochs (the median is kept).")
flags.DEFINE_integer("samples", 20, "Controller samples timed.")
flags.DEFINE_string("output", "bench_results/enas_step.json",
                    "Where the figures go (JSON).")

CIFAR10_TRAIN = 45000  # the searches' training split (5,000 validate)

# What configs/enas_*_cifar10_search.cfg set.
SEARCHES = {
    "enas_macro": dict(
        space_params={"num_layers": 12, "num_branches": 6},
        child=config_lib.ChildConfig(filters=36, dropout=0.1,
                                     auxiliary=False),
        train_steps=50,
        train={}),
    "enas_micro": dict(
        space_params={"num_nodes": 5},
        child=config_lib.ChildConfig(num_cells=6, filters=20, auxiliary=True,
                                     drop_path_rate=0.4, dropout=0.1),
        train_steps=30,
        train=dict(weight_decay=2e-4, aux_weight=0.4, train_aux_head=False,
                   drop_path_ramp="step")),
}


def _data(batch: int, steps: int) -> images.ImageData:
    rng = np.random.default_rng(0)

    def split(n):
        return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                rng.integers(0, 10, n))

    return images.ImageData.from_splits(
        "random_cifar", 10, split(batch * steps), split(2 * batch), None)


def _config(space: str, batch: int, steps: int):
    search = SEARCHES[space]
    base = enas_config.EnasConfig()
    train = dataclasses.replace(base.train, batch_size=batch,
                                steps_per_epoch=steps, **search["train"])
    return search_config.SearchConfig(
        space=space, space_params=search["space_params"], strategy="enas",
        dataset="random_cifar",
        controller=controller_lib.CONTROLLER_PRESETS[space],
        reinforce=reinforce.REINFORCE_PRESETS[space], child=search["child"],
        enas=enas_config.EnasConfig(train=train,
                                    controller_train_steps=1,
                                    derive_samples=1),
        reward="acc")


def _median_epoch(train_epoch, dataset, steps) -> float:
    train_epoch(dataset, tf.constant(0, tf.int64))  # traces
    times = []
    for r in range(FLAGS.repeats):
        began = time.perf_counter()
        float(train_epoch(dataset, tf.constant((r + 1) * steps, tf.int64))[0])
        times.append((time.perf_counter() - began) / steps)
    return statistics.median(times)


def _fixed_step(searcher, arch, dataset, steps) -> float:
    cfg = searcher.config
    child = dataclasses.replace(cfg.child, num_classes=10, image_size=32,
                                image_channels=3)
    model = builders.build_model(searcher.space, arch, child)
    train = cfg.enas.train
    variables = image_trainer.trained_variables(model, train)
    optimizer = momentum_sgd.MomentumSgd(
        variables, 0.05, momentum=0.9, nesterov=True,
        weight_decay=train.weight_decay)
    epoch = replica_loop.compile_train_epoch(
        searcher.device_strategy, model, image_trainer.loss_fn(train),
        variables, optimizer,
        image_trainer.drop_path_step_ramp(model, train, steps))
    return _median_epoch(epoch, dataset, steps)


def _time_space(space: str, batch: int, logdir: str) -> dict:
    steps = FLAGS.steps
    config = _config(space, batch, steps)
    data = _data(batch, steps)
    searcher = enas_run.EnasRun(config, logdir, data, log=lambda _: None)
    try:
        dataset = images.train_dataset(data, batch, 0, 0).cache()
        shared = _median_epoch(searcher._train_epoch, dataset, steps)
        arch = searcher.space.from_tokens([int(v) for v in (
            searcher.controller.sample(searcher.space, 1, (0, 1))
            .tokens.numpy()[0])])
        fixed = _fixed_step(searcher, arch, dataset, steps)
        sample = _controller_sample_ms(searcher)
        per_sample = _controller_phase_ms(searcher)
    finally:
        searcher.lock.release()
    m = config.reinforce.num_aggregate
    samples = SEARCHES[space]["train_steps"] * m
    shared_phase = CIFAR10_TRAIN // batch * shared
    controller_phase = samples * per_sample / 1000
    return {
        "space": space, "batch_size": batch,
        "params": int(sum(np.prod(v.shape)
                          for v in searcher.supernet.trainable_variables)),
        "shared_step_s": shared, "fixed_step_s": fixed,
        "shared_over_fixed": shared / fixed,
        "controller_sample_ms": sample,
        "controller_sample_reward_update_ms": per_sample,
        "num_aggregate": m,
        "epoch_shared_phase_s": shared_phase,
        "epoch_controller_phase_s": controller_phase,
        "epoch_controller_samples": samples,
    }


def _controller_sample_ms(searcher) -> float:
    sample = searcher.controller.sample
    sample(searcher.space, 1, (0, 0))
    began = time.perf_counter()
    for k in range(FLAGS.samples):
        sample(searcher.space, 1, (0, k + 1)).tokens.numpy()
    return 1000 * (time.perf_counter() - began) / FLAGS.samples


def _controller_phase_ms(searcher) -> float:
    """Per sample: the loop's controller phase, whose samples each update
    after every ``m``; the first phase traces and is not timed."""
    searcher._controller_phase(0)
    m = searcher.config.reinforce.num_aggregate
    phases = max(1, FLAGS.samples // m)
    began = time.perf_counter()
    for epoch in range(1, phases + 1):
        searcher._controller_phase(epoch)
    return 1000 * (time.perf_counter() - began) / (phases * m)


def main(argv):
    del argv
    cpu_remapper_flag.apply()
    figures = {"machine": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "tensorflow": tf.__version__,
               "threads": {"intra_op": tf.config.threading
                           .get_intra_op_parallelism_threads(),
                           "inter_op": tf.config.threading
                           .get_inter_op_parallelism_threads()},
               "grappler_remapper": tf.config.optimizer
               .get_experimental_options().get("remapping", True),
               "load_average": os.getloadavg(), "results": []}
    for space in FLAGS.spaces:
        for batch in map(int, FLAGS.batch_sizes):
            with tempfile.TemporaryDirectory() as logdir:
                row = _time_space(space, batch, logdir)
            figures["results"].append(row)
            print(f"{space} batch {batch}: shared step "
                  f"{row['shared_step_s']:.3f} s, fixed "
                  f"{row['fixed_step_s']:.3f} s (shared/fixed "
                  f"{row['shared_over_fixed']:.2f}); controller sample "
                  f"{row['controller_sample_ms']:.1f} ms, sample + reward + "
                  f"update {row['controller_sample_reward_update_ms']:.1f} "
                  f"ms; one CIFAR-10 epoch: shared phase "
                  f"{row['epoch_shared_phase_s']:.0f} s, controller phase "
                  f"{row['epoch_controller_phase_s']:.0f} s "
                  f"({row['epoch_controller_samples']} samples)", flush=True)
    figures["load_average_after"] = os.getloadavg()
    fileio.write_file_atomically(FLAGS.output,
                                 json.dumps(figures, indent=2) + "\n")
    print(f"written to {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
