"""Trains a language model with the originals' final recipe.

DARTS ``rnn/train.py`` (after AWD-LSTM): plain SGD on variable-length BPTT
windows with the learning rate scaled by the window length, the gradient's
global norm clipped, weight decay, the slowness (and optional activation)
regulariser; after every epoch the validation perplexity decides whether to
switch to averaged SGD (the non-monotone trigger); the best validation
weights, averaged ones once averaging has started, give the test
perplexity. enas_lm's fixed model is the same loop with its own settings
(``configs/enas_lm_ptb_final.cfg``).
"""

import dataclasses
import json
import math
import os
import time
from typing import Callable, List, Optional

import numpy as np
import tensorflow as tf

from nas_tf import config as config_lib
from nas_tf.utils import fileio
from nas_tf.utils import progress
from nas_tf.data import lm_batches
from nas_tf.data import lm_corpus


@dataclasses.dataclass
class LmResult:
    """What a training run reports.

    Attributes:
      valid_ppl: Best validation perplexity.
      test_ppl: Test perplexity of the best validation weights.
      epochs: Epochs run.
      steps: Training steps run.
      averaging_epoch: Epoch after which averaged SGD started, or None.
      history: One dict per epoch (epoch, train_ppl, valid_ppl, averaged,
        seconds).
    """

    valid_ppl: float
    test_ppl: float
    epochs: int
    steps: int
    averaging_epoch: Optional[int]
    history: List[dict]


def should_start_averaging(earlier_losses, val_loss, nonmono) -> bool:
    """DARTS/AWD's non-monotone trigger: the loss is worse than the best of
    the evaluations before the last ``nonmono`` ones."""
    return (nonmono > 0 and len(earlier_losses) > nonmono
            and val_loss > min(earlier_losses[:-nonmono]))


def perplexity(mean_nll: float) -> float:
    # Overflow guard: a diverged model reports inf, not an exception.
    return math.exp(mean_nll) if mean_nll < 700 else math.inf


class LmTrainer:
    """One model, one corpus, one recipe; ``run()`` trains and tests.

    Args:
      model: A built ``LanguageModel``.
      corpus: An ``LmCorpus`` with the model's vocabulary size.
      config: ``LmTrainConfig``.
      logdir: Where TensorBoard events go (``lm/*`` scalars); None: none.
      log: Receives progress lines.
      checkpoint_dir: Checkpoint here after every epoch and resume from the
        last one; None: no checkpoints (search children).
    """

    # Beside the checkpoints: what run() tracks in Python (epoch, best
    # losses, the window sampler's state), written after each checkpoint.
    PROGRESS_FILE = "lm_progress.json"

    def __init__(self, model, corpus: lm_corpus.LmCorpus,
                 config: config_lib.LmTrainConfig,
                 logdir: Optional[str] = None,
                 log: Callable[[str], None] = print,
                 checkpoint_dir: Optional[str] = None):
        lm_corpus.check_vocab_size(corpus, model.lm_config.vocab_size)
        if not model.built:
            model.build()
        self.model, self.corpus, self.config = model, corpus, config
        self.log = log
        self.train_data = lm_batches.batchify(corpus.train, config.batch_size)
        self.valid_data = lm_batches.batchify(corpus.valid,
                                              config.eval_batch_size)
        self.test_data = lm_batches.batchify(corpus.test,
                                             config.test_batch_size)
        self.weights = list(model.trainable_weights)
        self.averages = [tf.Variable(tf.zeros_like(w), trainable=False)
                         for w in self.weights]
        self.average_count = tf.Variable(0.0, trainable=False)
        # The step size of the next averaged step (see _compile_train).
        self.asgd_eta = tf.Variable(float(config.learning_rate),
                                    trainable=False)
        self.writer = (tf.summary.create_file_writer(logdir) if logdir
                       else tf.summary.create_noop_writer())
        self.manager = None
        if checkpoint_dir:
            self.best = [tf.Variable(w.numpy(), trainable=False)
                         for w in self.weights]
            self.manager = tf.train.CheckpointManager(tf.train.Checkpoint(
                model=model, averages=self.averages, best=self.best,
                average_count=self.average_count, asgd_eta=self.asgd_eta),
                checkpoint_dir, max_to_keep=2)
        state_spec = [tf.TensorSpec([None, n], tf.float32)
                      for n in model.cell.state_size]
        tokens = tf.TensorSpec([None, None], tf.int32)
        self._train_sgd = self._compile_train(tokens, state_spec, False)
        self._train_avg = self._compile_train(tokens, state_spec, True)
        self._eval = tf.function(self._eval_step, input_signature=[
            tokens, tokens, state_spec], reduce_retracing=True)

    # -- steps ---------------------------------------------------------------
    def _loss(self, inputs, targets, state):
        cfg = self.config
        out = self.model.forward(inputs, state, training=True)
        nll = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            targets, out.logits))
        loss = nll
        if cfg.activation_reg:
            h = (out.dropped_outputs if cfg.activation_reg_on == "dropped"
                 else out.raw_outputs)
            loss += cfg.activation_reg * tf.reduce_mean(tf.square(h))
        if cfg.slowness_reg:
            raw = out.raw_outputs
            steps = tf.square(raw[:, 1:] - raw[:, :-1])
            # A one-step window has no step to penalise (not a NaN mean).
            loss += cfg.slowness_reg * tf.math.divide_no_nan(
                tf.reduce_sum(steps), tf.cast(tf.size(steps), tf.float32))
        if cfg.weight_decay and cfg.weight_decay_mode == "loss":
            loss += cfg.weight_decay * tf.add_n(
                [tf.reduce_sum(tf.square(w)) for w in self.weights])
        return nll, loss, out.state

    def _compile_train(self, tokens, state_spec, average):
        cfg = self.config

        def step(inputs, targets, state, lr):
            with tf.GradientTape() as tape:
                nll, loss, new_state = self._loss(inputs, targets, state)
            grads = tape.gradient(loss, self.weights)
            grads, _ = tf.clip_by_global_norm(grads, cfg.clip_norm)
            if average:
                # PyTorch's ASGD (t0=0, lambd=0), as DARTS runs it: a plain
                # SGD step whose size is the one set for the previous step
                # (ASGD computes eta after its update, and DARTS scales lr
                # before each step), then ax = w on the first two averaged
                # steps and the running mean of the iterates after that.
                step_size = self.asgd_eta.read_value()
                self.asgd_eta.assign(lr)
            else:
                step_size = lr
            for g, w in zip(grads, self.weights):
                g = tf.convert_to_tensor(g)
                if cfg.weight_decay_mode == "gradient":
                    g += cfg.weight_decay * w
                w.assign_sub(step_size * g)
            if average:
                self.average_count.assign_add(1.0)
                rate = 1.0 / tf.maximum(1.0, self.average_count - 1.0)
                for a, w in zip(self.averages, self.weights):
                    a.assign_add((w - a) * rate)
            return nll, new_state

        return tf.function(step, input_signature=[
            tokens, tokens, state_spec, tf.TensorSpec([], tf.float32)])

    def _eval_step(self, inputs, targets, state):
        out = self.model.forward(inputs, state, training=False)
        nll = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            targets, out.logits))
        return nll, tf.cast(tf.size(targets), tf.float32), out.state

    # -- loops ---------------------------------------------------------------
    def evaluate(self, batched) -> float:
        """Mean per-word NLL over fixed bptt windows of ``batched``."""
        state = self.model.initial_state(batched.shape[0])
        total = count = 0.0
        for w in lm_batches.fixed_windows(batched, self.config.bptt):
            nll, n, state = self._eval(w.inputs, w.targets, state)
            total += float(nll)
            count += float(n)
        return total / count

    def _swap_in_averages(self):
        kept = [w.numpy() for w in self.weights]
        for w, a in zip(self.weights, self.averages):
            w.assign(a)
        return kept

    def _restore(self, values):
        for w, v in zip(self.weights, values):
            w.assign(v)

    def _train_epoch(self, epoch, rng, averaging, steps):
        cfg = self.config
        state = self.model.initial_state(cfg.batch_size)
        windows = (lm_batches.variable_windows(
            self.train_data, cfg.bptt, rng, cfg.max_seq_len_delta)
            if cfg.variable_bptt else
            lm_batches.fixed_windows(self.train_data, cfg.bptt))
        expected = lm_batches.num_windows(self.train_data.shape[1], cfg.bptt,
                                          cfg.variable_bptt)
        step_fn = self._train_avg if averaging else self._train_sgd
        base_lr = cfg.epoch_learning_rate(epoch)
        pending, total, words = [], 0.0, 0.0
        start = interval = time.time()

        def settle():
            # Read the losses back once per report, not once per step, so
            # the host does not wait on every step.
            nonlocal total, words
            for nll, size in pending:
                nll = float(nll)
                if not math.isfinite(nll):
                    raise FloatingPointError(
                        f"training loss is {nll} in epoch {epoch} (after "
                        f"step {steps + batch}); the model diverged")
                total += nll * size
                words += size
            pending.clear()

        for batch, w in enumerate(windows, start=1):
            lr = np.float32(base_lr * w.lr_scale)
            nll, state = step_fn(w.inputs, w.targets, state, lr)
            pending.append((nll, w.inputs.size))
            if batch % cfg.log_every == 0:
                settle()
                now = time.time()
                self.log(
                    f"epoch {epoch} | {batch}/~{expected} batches | lr "
                    f"{base_lr:.4g} | "
                    f"{1000 * (now - interval) / cfg.log_every:.0f} ms/batch "
                    f"| {words / (now - start):.0f} words/s | ppl "
                    f"{perplexity(total / words):.2f} | epoch ends in ~"
                    f"{max(0, expected - batch) * (now - start) / batch:.0f}"
                    f" s")
                interval = now
            if cfg.max_steps and steps + batch >= cfg.max_steps:
                break
        settle()
        return total / max(words, 1.0), batch

    def run(self, test: bool = True) -> LmResult:
        """Trains; ``test=False`` skips the test split (a search must not
        look at it) and reports a NaN test perplexity."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        history, best_losses = [], []
        stored_loss, best_weights = math.inf, None
        averaging_epoch, steps, done = None, 0, 0
        resumed = self._resume(rng)
        if resumed:
            (done, steps, stored_loss, best_losses, averaging_epoch,
             history) = (resumed[k] for k in (
                 "epoch", "steps", "stored_loss", "best_losses",
                 "averaging_epoch", "history"))
            if math.isfinite(stored_loss):
                best_weights = [b.numpy() for b in self.best]
            self.log(f"resuming after epoch {done}")
        self.log(f"training {self.model.space.name} "
                 f"{self.model.space.format(self.model.architecture)} on "
                 f"{self.corpus.name}: {self.train_data.size} train words, "
                 f"batch {cfg.batch_size}, bptt {cfg.bptt}")
        for epoch in range(done + 1, cfg.epochs + 1):
            began = time.time()
            averaging = averaging_epoch is not None
            train_nll, batches = self._train_epoch(epoch, rng, averaging,
                                                   steps)
            steps += batches
            kept = self._swap_in_averages() if averaging else None
            val_loss = self.evaluate(self.valid_data)
            if val_loss < stored_loss:
                # Under averaging the saved best are the averaged weights
                # (DARTS "Saving Averaged!").
                stored_loss = val_loss
                best_weights = [w.numpy() for w in self.weights]
            if kept is not None:
                self._restore(kept)
            record = dict(epoch=epoch, train_ppl=perplexity(train_nll),
                          valid_ppl=perplexity(val_loss), averaged=averaging,
                          learning_rate=cfg.epoch_learning_rate(epoch),
                          seconds=time.time() - began)
            history.append(record)
            self._summaries(steps, record)
            left = (cfg.epochs - epoch) * record["seconds"]
            self.log(f"end of epoch {epoch} | {record['seconds']:.1f} s | "
                     f"lr {record['learning_rate']:.4g} | train ppl "
                     f"{record['train_ppl']:.2f} | valid ppl "
                     f"{record['valid_ppl']:.2f}"
                     f"{' (averaged weights)' if averaging else ''} | ETA "
                     f"{progress.duration(left)}")
            if not averaging and should_start_averaging(
                    best_losses, val_loss, cfg.nonmono):
                averaging_epoch = epoch
                # A new ASGD starts with eta = its lr and no average.
                self.asgd_eta.assign(cfg.epoch_learning_rate(epoch + 1))
                self.average_count.assign(0.0)
                self.log(f"validation loss {val_loss:.4f} is worse than the "
                         f"best before the last {cfg.nonmono} epochs "
                         f"({min(best_losses[:-cfg.nonmono]):.4f}): "
                         f"switching to averaged SGD")
            if not averaging:
                best_losses.append(val_loss)
            self._checkpoint(dict(
                epoch=epoch, steps=steps, stored_loss=stored_loss,
                best_losses=best_losses, averaging_epoch=averaging_epoch,
                history=history, rng=rng.bit_generator.state), best_weights)
            if cfg.max_steps and steps >= cfg.max_steps:
                break
        if best_weights is None:
            raise FloatingPointError(
                f"the validation loss was never finite in {len(history)} "
                f"epochs; the model diverged")
        self._restore(best_weights)
        if self.manager is not None:
            # The last checkpoint holds the weights the result reports (an
            # export reads the model from it); resuming still finds the
            # last epoch's pair, which is kept.
            self.manager.save(checkpoint_number=len(history) + 1)
        test_loss = self.evaluate(self.test_data) if test else math.nan
        result = LmResult(perplexity(stored_loss),
                          perplexity(test_loss) if test else math.nan,
                          len(history), steps, averaging_epoch, history)
        with self.writer.as_default():
            tf.summary.scalar("lm/test_ppl", result.test_ppl, step=steps)
        self.writer.flush()
        self.log(f"best valid ppl {result.valid_ppl:.2f} | test ppl "
                 f"{result.test_ppl:.2f}")
        return result

    def _checkpoint(self, state, best_weights):
        if self.manager is None:
            return
        if best_weights is not None:
            for variable, value in zip(self.best, best_weights):
                variable.assign(value)
        self.manager.save(checkpoint_number=state["epoch"])
        fileio.write_file_atomically(
            os.path.join(self.manager.directory, self.PROGRESS_FILE),
            json.dumps(state))

    def _resume(self, rng) -> Optional[dict]:
        """Restores the checkpoint the progress file names (a kill between
        the two writes leaves the previous pair, which is still kept)."""
        if self.manager is None:
            return None
        path = os.path.join(self.manager.directory, self.PROGRESS_FILE)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            state = json.load(f)
        name = f"ckpt-{state['epoch']}"
        matches = [c for c in self.manager.checkpoints
                   if os.path.basename(c) == name]
        if not matches:
            raise ValueError(f"{self.manager.directory}: the checkpoint of "
                             f"epoch {state['epoch']} is missing")
        self.manager.checkpoint.restore(
            matches[0]).assert_existing_objects_matched()
        rng.bit_generator.state = state["rng"]
        return state

    def _summaries(self, step, record):
        with self.writer.as_default():
            tf.summary.scalar("lm/train_ppl", record["train_ppl"], step=step)
            tf.summary.scalar("lm/valid_ppl", record["valid_ppl"], step=step)
            tf.summary.scalar("lm/averaged", float(record["averaged"]),
                              step=step)
            tf.summary.scalar("lm/learning_rate", record["learning_rate"],
                              step=step)
        self.writer.flush()


def train_language_model(model, corpus, config, logdir=None,
                         log=print, test=True) -> LmResult:
    """Trains ``model`` on ``corpus`` with ``config``; see ``LmTrainer``."""
    return LmTrainer(model, corpus, config, logdir, log).run(test)
