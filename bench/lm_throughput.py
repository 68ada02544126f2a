"""Language-model training throughput: a searched cell against Keras' LSTM.

  python bench/lm_throughput.py [--arch=DARTS_V2_RNN] [--steps=5]

Times full training steps (forward, backward, clipped SGD update) of the
DARTS PTB model (embedding = hidden = 850, vocabulary 10,000, batch 64,
BPTT 35, its dropouts on) with the given cell, and of an embedding ->
``keras.layers.LSTM(850)`` -> dense decoder model of the same sizes (an
untied decoder of the same shape, no dropout: Keras' own LSTM as a user
would stack it), each step compiled with ``tf.function``. Prints words per
second and writes the figures as JSON to ``--output``.
"""

import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from nas_tf import config  # noqa: E402
from nas_tf.utils import fileio  # noqa: E402
from nas_tf import spaces  # noqa: E402
from nas_tf.builders import build_model  # noqa: E402
import cpu_remapper_flag  # noqa: E402  (bench/, beside this file)

FLAGS = flags.FLAGS
flags.DEFINE_string("arch", "DARTS_V2_RNN", "A published recurrent cell.")
flags.DEFINE_integer("hidden_size", 850, "Cell units = embedding size.")
flags.DEFINE_integer("vocab_size", 10000, "Vocabulary.")
flags.DEFINE_integer("batch_size", 64, "Batch.")
flags.DEFINE_integer("bptt", 35, "Window length.")
flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing).")
flags.DEFINE_integer("steps", 5, "Timed steps.")
flags.DEFINE_string("output", "bench_results/lm_throughput.json",
                    "Where the figures are written (JSON).")


def _sgd_step(model, forward):
    """A compiled step: mean cross-entropy, clip 0.25, SGD lr 20."""
    @tf.function(jit_compile=False)
    def step(tokens, targets):
        with tf.GradientTape() as tape:
            logits = forward(tokens)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(targets,
                                                               logits))
        weights = model.trainable_weights
        grads, _ = tf.clip_by_global_norm(tape.gradient(loss, weights), 0.25)
        for g, w in zip(grads, weights):
            w.assign_sub(20.0 * tf.convert_to_tensor(g))
        return loss
    return step


def _searched_cell_step():
    entry = spaces.PUBLISHED[FLAGS.arch]
    space = spaces.get_space(entry.space, **entry.params)
    arch = spaces.resolve_architecture(space, FLAGS.arch)
    model = build_model(space, arch, config.LmConfig(
        vocab_size=FLAGS.vocab_size, hidden_size=FLAGS.hidden_size), seed=0)
    return model, _sgd_step(
        model, lambda t: model.forward(t, training=True).logits)


def _lstm_step():
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(FLAGS.vocab_size, FLAGS.hidden_size),
        keras.layers.LSTM(FLAGS.hidden_size, return_sequences=True),
        keras.layers.Dense(FLAGS.vocab_size),
    ])
    return model, _sgd_step(model, lambda t: model(t, training=True))


def _words_per_second(step):
    rng = np.random.default_rng(0)
    shape = (FLAGS.batch_size, FLAGS.bptt + 1)
    batches = [rng.integers(0, FLAGS.vocab_size, shape).astype("int32")
               for _ in range(2)]
    for i in range(FLAGS.warmup):
        b = batches[i % 2]
        float(step(b[:, :-1], b[:, 1:]))
    began = time.perf_counter()
    for i in range(FLAGS.steps):
        b = batches[i % 2]
        float(step(b[:, :-1], b[:, 1:]))
    seconds = (time.perf_counter() - began) / FLAGS.steps
    return FLAGS.batch_size * FLAGS.bptt / seconds, seconds


def main(argv):
    del argv
    cpu_remapper_flag.apply()
    figures = {
        "setting": dict(hidden_size=FLAGS.hidden_size,
                        vocab_size=FLAGS.vocab_size,
                        batch_size=FLAGS.batch_size, bptt=FLAGS.bptt,
                        timed_steps=FLAGS.steps),
        "machine": dict(platform=platform.platform(),
                        cpus=os.cpu_count(),
                        devices=[d.name for d in
                                 tf.config.list_logical_devices()],
                        tensorflow=tf.__version__),
    }
    for name, build in ((FLAGS.arch, _searched_cell_step),
                        ("keras.layers.LSTM", _lstm_step)):
        model, step = build()
        params = int(sum(np.prod(w.shape) for w in model.trainable_weights))
        words, seconds = _words_per_second(step)
        figures[name] = dict(words_per_second=round(words, 1),
                             seconds_per_step=round(seconds, 4),
                             trainable_params=params)
        print(f"{name:>20}: {words:9.0f} words/s  {seconds:.3f} s/step  "
              f"({params:,} parameters)", flush=True)
    fileio.write_file_atomically(
        FLAGS.output, (json.dumps(figures, indent=2) + "\n").encode())
    print(f"figures written to {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
