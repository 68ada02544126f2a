"""The ENAS search on a text corpus (google-research ``enas_lm``: ``search.py``
and ``child.py``; melodyguan/enas ``src/ptb``).

The loop is ``EnasRun``'s; what differs is the shared phase and the
reward:

* Shared phase: one pass over the training stream in BPTT windows, the
  hidden state carried from window to window, a freshly sampled
  architecture for every window (the authors sample one per training step),
  trained by ``LmTrainer``'s own step (clipping, decay, the activation and
  slowness regularisers of ``lm_train``). ``lm_train.max_steps`` caps the
  windows of each epoch.
* Reward: ``80 / ppl`` (the ``enas_*`` presets' formula) of one validation
  window of ``bptt`` words at a random position, from a zero state with
  dropout off, as enas_lm's ``eval_valid`` runs it.
* Each epoch the derived architecture's perplexity over the whole
  validation stream is logged (``derived/valid_ppl_full``): the shared
  model's validation perplexity.
"""

import time

import numpy as np
import tensorflow as tf

from nas_tf import supernets
from nas_tf.search import enas_run
from nas_tf.training import lm_trainer
from nas_tf.training import replica_loop


class _SampledArcModel:
    """The supernet as ``LmTrainer`` sees a language model: a training
    window runs a freshly sampled architecture (its stateless key is a step
    counter the graph advances, checkpointed with the run), an evaluation
    runs ``eval_arc``."""

    def __init__(self, supernet, sample_arc, num_tokens: int):
        self.supernet = supernet
        self.lm_config = supernet.lm_config
        self.cell = supernet.cell
        self.built = True
        self.trainable_weights = supernet.trainable_weights
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.eval_arc = tf.Variable(tf.zeros([num_tokens], tf.int32),
                                    trainable=False)
        self._sample_arc = sample_arc

    def initial_state(self, batch_size):
        return self.supernet.initial_state(batch_size)

    def forward(self, tokens, state=None, training=False):
        if training:
            arc = self._sample_arc(self.step.assign_add(1)).tokens[0]
        else:
            arc = self.eval_arc
        return self.supernet.forward(tokens, arc, state, training=training)


class EnasLmRun(enas_run.EnasRun):
    """An ENAS search of a recurrent cell on a text corpus."""

    @property
    def epochs(self) -> int:
        return self.config.lm_train.epochs

    def _build_shared(self) -> dict:
        cfg, corpus = self.config, self.data
        train = cfg.lm_train
        self.supernet = supernets.build_supernet(self.space, cfg.lm,
                                                 seed=cfg.seed)
        self.model = _SampledArcModel(self.supernet, self._sample_arc,
                                      self.space.num_tokens)
        self.trainer = lm_trainer.LmTrainer(self.model, corpus, train,
                                            log=self.log)
        self.valid_data = self.trainer.valid_data
        if self.valid_data.shape[1] <= train.bptt:
            raise ValueError(
                f"the validation stream of {corpus.name} holds "
                f"{self.valid_data.shape[1]} steps per row at "
                f"eval_batch_size={train.eval_batch_size}; a reward window "
                f"needs bptt + 1 = {train.bptt + 1}")
        supernet = self.supernet

        @tf.function
        def score(arc, inputs, targets):
            state = supernet.initial_state(tf.shape(inputs)[0])
            out = supernet.forward(inputs, arc, state, training=False)
            return tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(
                    targets, out.logits))

        @tf.function
        def sample_and_score(key, inputs, targets):
            out = self._sample_arc(key)
            return out, score(out.tokens[0], inputs, targets)

        self.score, self._sample_and_score = score, sample_and_score
        return {"supernet": replica_loop.model_variables(self.supernet),
                "arc_steps": self.model.step}

    def _valid_window(self, *key):
        """A validation window of ``bptt`` words at a random position."""
        bptt = self.config.lm_train.bptt
        rng = np.random.default_rng([self.config.seed, *key])
        start = int(rng.integers(0, self.valid_data.shape[1] - bptt))
        window = self.valid_data[:, start:start + bptt + 1]
        return (tf.constant(window[:, :-1], tf.int32),
                tf.constant(window[:, 1:], tf.int32))

    def _sampled_metric(self, key, epoch, k):
        out, nll = self._sample_and_score(tf.constant(key, tf.int64),
                                          *self._valid_window(epoch, k))
        return out, lm_trainer.perplexity(float(nll))

    def _arc_metrics(self, arcs, epoch):
        window = self._valid_window(epoch, self.samples_per_epoch)
        return [lm_trainer.perplexity(float(self.score(arc, *window)))
                for arc in arcs]

    def _better(self, a, b):
        return a < b  # perplexity

    def _shared_phase(self, epoch: int) -> str:
        train = self.config.lm_train
        rng = np.random.default_rng([self.config.seed, epoch])
        lr = train.epoch_learning_rate(epoch + 1)
        began = time.time()
        nll, windows = self.trainer._train_epoch(epoch + 1, rng, False, 0)
        ppl = lm_trainer.perplexity(nll)
        self._shared_summaries(epoch, nll, lr, "--clip_norm", train_ppl=ppl)
        return (f"train ppl {ppl:.2f} | {windows} windows | lr {lr:.4g} | "
                f"{time.time() - began:.1f} s")

    def _derive(self, epoch: int) -> dict:
        derived = super()._derive(epoch)
        self.model.eval_arc.assign(list(derived["arch"].tokens))
        derived["valid_ppl_full"] = lm_trainer.perplexity(
            self.trainer.evaluate(self.valid_data))
        with self.writer.as_default(step=epoch + 1):
            tf.summary.scalar("derived/valid_ppl_full",
                              derived["valid_ppl_full"])
        self.log(f"[epoch {epoch + 1}/{self.epochs}] derived cell: "
                 f"validation ppl {derived['valid_ppl_full']:.2f} (whole "
                 f"validation stream, shared weights)")
        return derived
