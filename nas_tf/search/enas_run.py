"""The ENAS search: shared weights and controller trained in turn (Pham et
al. 2018, sec. 2.2; melodyguan/enas ``src/cifar10/main.py``).

Each epoch has two phases:

1. **Shared weights.** One pass over the training split; every minibatch
   trains the supernet with an architecture the controller samples afresh
   for it (M = 1; under a MirroredStrategy each replica samples its own).
   Sampling, forward and backward pass are one compiled step: the
   architecture is a tensor, so nothing retraces.
2. **Controller.** ``controller_train_steps x num_aggregate`` samples, each
   rewarded on one validation minibatch without augmentation (the
   supernet's ``reward_training`` mode: batch statistics for micro, moving
   statistics for macro, as the code's ``build_valid_rl``), one REINFORCE
   update per ``num_aggregate`` samples. Each sample is a line of
   ``history.jsonl`` with its epoch.

At the end of every epoch ``derive_samples`` architectures are sampled and
scored with the shared weights on one validation minibatch (the same for
all, so they compare fairly); the best is the epoch's derived architecture,
and the last epoch's is written to ``best_arch.txt``.

Everything random is keyed by the run's seed and a position: the
architecture of training step ``s`` on replica ``r`` (stateless seed), the
data order of epoch ``e``, the validation minibatch of sample ``k``, and
the dropout and drop-path masks come from the supernet's seed generators,
which are checkpointed with its weights. A checkpoint follows each phase
(with the epoch and the phase), so a killed run redoes at most the phase it
was in and ends exactly as an uninterrupted one would on CPU.
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

from nas_tf import controller as controller_lib
from nas_tf import supernets
from nas_tf.controller import reinforce
from nas_tf.data import images
from nas_tf.search import review as search_review
from nas_tf.search import run
from nas_tf.training import image_trainer
from nas_tf.training import momentum_sgd
from nas_tf.training import precision
from nas_tf.training import replica_loop
from nas_tf.utils import progress

# Stateless seeds [seed, key]: training step s on replica r uses key
# s * _REPLICA_STRIDE + r; controller sample k uses -(k + 1); derive sample
# j of epoch e uses -(_DERIVE_OFFSET + e * derive_samples + j).
_REPLICA_STRIDE = 1024
_DERIVE_OFFSET = 2 ** 40


class EnasRun(run.SearchRun):
    """One ENAS search of ``config`` (``strategy="enas"``) in ``logdir``."""

    def _build(self) -> dict:
        cfg = self.config
        self.space = cfg.space_at(0)
        self.controller = controller_lib.Controller(
            self.space, cfg.controller, skip_target=cfg.reinforce.skip_target)
        self.learner = reinforce.Reinforce(self.controller, cfg.reinforce)
        self._sample = self.controller.sample_fn(self.space)
        self._seed = tf.constant(cfg.seed, tf.int64)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.phase = tf.Variable(0, dtype=tf.int64, trainable=False)
        return {"epoch": self.epoch, "phase": self.phase,
                **self._build_shared(), **self.learner.checkpoint_items()}

    def _sample_arc(self, key):
        """Inside a ``tf.function``: the architecture of stateless ``key``."""
        return self._sample(tf.stack([self._seed, key]), 1)

    # -- what depends on the kind of data (EnasLmRun: language models) -------
    @property
    def epochs(self) -> int:
        return self.config.enas.train.epochs

    def _build_shared(self) -> dict:
        """Builds the supernet, its training and its scoring; returns their
        checkpoint items."""
        cfg, data = self.config, self.data
        enas, strategy = cfg.enas, self.device_strategy
        child = dataclasses.replace(
            cfg.child, num_classes=data.num_classes,
            image_size=data.image_size, image_channels=data.image_channels)
        with strategy.scope():
            # The controller stays float32: only the supernet computes in
            # mixed precision.
            with precision.dtype_policy(cfg.precision.mixed_precision):
                self.supernet = supernets.build_supernet(self.space, child,
                                                         seed=cfg.seed)
            variables = image_trainer.trained_variables(self.supernet,
                                                        enas.train)
            self.optimizer = momentum_sgd.MomentumSgd(
                variables, enas.train.schedule(0),
                momentum=enas.train.momentum, nesterov=enas.train.nesterov,
                weight_decay=enas.train.weight_decay,
                clip_norm=enas.train.grad_clip,
                loss_scale=precision.make_loss_scale(cfg.precision))
        self.steps = image_trainer.steps_per_epoch(data, enas.train)

        def arc_of_step(step, replica):
            key = step * _REPLICA_STRIDE + tf.cast(replica, tf.int64)
            return self._sample_arc(key).tokens[0]

        self._train_epoch = replica_loop.compile_train_epoch(
            strategy, self.supernet, image_trainer.loss_fn(enas.train),
            variables, self.optimizer,
            image_trainer.drop_path_step_ramp(self.supernet, enas.train,
                                              self.steps),
            arc_sampler=arc_of_step, skip_unused=enas.skip_unused_weights,
            jit_compile=cfg.precision.jit_compile)
        arc_hits = replica_loop.compile_arc_hits(
            strategy, self.supernet, self.supernet.reward_training,
            cfg.precision.jit_compile)
        valid = images.eval_dataset(data, "valid", len(data.valid_labels))
        valid_images, valid_labels = next(iter(valid))

        @tf.function
        def score(arc, rows):
            return arc_hits(tf.gather(valid_images, rows),
                            tf.gather(valid_labels, rows), arc)

        @tf.function
        def sample_and_score(key, rows):
            out = self._sample_arc(key)
            return out, score(out.tokens[0], rows)

        self._sample_and_score, self.score = sample_and_score, score
        self.num_valid = len(data.valid_labels)
        self.valid_batch = min(enas.train.batch_size, self.num_valid)
        return {"supernet": replica_loop.model_variables(self.supernet),
                "shared_optimizer": self.optimizer}

    def _valid_rows(self, *key) -> tf.Tensor:
        rng = np.random.default_rng([self.config.seed, *key])
        return tf.constant(rng.choice(self.num_valid, self.valid_batch,
                                      replace=False), tf.int32)

    def _sampled_metric(self, key: int, epoch: int, k: int):
        """Samples the architecture of stateless ``key`` and measures it on
        validation minibatch ``k`` of ``epoch``: (ControllerOutput,
        metric)."""
        out, hits = self._sample_and_score(tf.constant(key, tf.int64),
                                           self._valid_rows(epoch, k))
        return out, float(hits) / self.valid_batch

    def _arc_metrics(self, arcs, epoch: int) -> list:
        """The metric of each of ``arcs`` on one validation minibatch (the
        same for all: the one after the epoch's controller samples)."""
        rows = self._valid_rows(epoch, self.samples_per_epoch)
        return [float(self.score(arc, rows)) / self.valid_batch
                for arc in arcs]

    def _better(self, a: float, b: float) -> bool:
        return a > b

    def _resumed_line(self) -> str:
        what = ("shared weights" if int(self.phase) == 0 else "controller")
        return (f"epoch {int(self.epoch) + 1} of {self.epochs} resumes at "
                f"its {what} phase")

    @property
    def samples_per_epoch(self) -> int:
        return (self.config.enas.controller_train_steps *
                self.config.reinforce.num_aggregate)

    # -- the loop ------------------------------------------------------------
    def _run(self) -> run.SearchResult:
        epochs = self.epochs
        # Samples of an unfinished controller phase are done again.
        self.history.truncate(int(self.epoch) * self.samples_per_epoch)
        self.review.update_best()
        began, first_epoch = time.time(), int(self.epoch)
        self.derived = None
        for epoch in range(first_epoch, epochs):
            if int(self.phase) == 0:
                shared = self._shared_phase(epoch)
                self.phase.assign(1)
                self.manager.save(checkpoint_number=2 * epoch + 1)
                self.log(f"[epoch {epoch + 1}/{epochs}] shared weights: "
                         f"{shared}")
            stats = self._controller_phase(epoch)
            self.derived = self._derive(epoch)
            self.epoch.assign(epoch + 1)
            self.phase.assign(0)
            self.manager.save(checkpoint_number=2 * epoch + 2)
            self._epoch_summaries(epoch + 1, stats)
            per_epoch = (time.time() - began) / (epoch + 1 - first_epoch)
            self.log(f"[epoch {epoch + 1}/{epochs}] controller: "
                     f"{stats['samples']} samples | mean reward "
                     f"{stats['mean_reward']:.4f} | baseline "
                     f"{stats['baseline']:.4f} | {stats['seconds']:.1f} s | "
                     f"derived ({self._metric} "
                     f"{self.derived['metric']:.4f}) "
                     f"{self.derived['tokens']} | ETA "
                     f"{progress.duration(per_epoch * (epochs - epoch - 1))}")
        if self.derived is None:  # resumed after the last epoch
            self.derived = self._derive(epochs - 1)
        return self._finish()

    def _shared_phase(self, epoch: int) -> str:
        """Trains the shared weights for one epoch; returns its progress
        line."""
        train = self.config.enas.train
        began = time.time()
        lr = train.schedule(epoch)
        self.optimizer.learning_rate.assign(lr)
        dataset = images.train_dataset(
            self.data, train.batch_size, self.config.seed, epoch,
            augment=train.augment, cutout=train.cutout,
            cutout_anchor=train.cutout_anchor)
        if train.steps_per_epoch:
            dataset = dataset.take(train.steps_per_epoch)
        loss, hits = self._train_epoch(
            dataset, tf.constant(epoch * self.steps, tf.int64))
        loss = float(loss)
        accuracy = float(hits) / (self.steps * train.batch_size)
        self._shared_summaries(epoch, loss, lr, "--grad_clip",
                               accuracy=accuracy)
        return (f"loss {loss:.4f} | train acc {accuracy:.4f} | lr {lr:.5f} | "
                f"{time.time() - began:.1f} s")

    def _shared_summaries(self, epoch, loss, lr, clip_flag, **scalars):
        """Stops on a non-finite loss; writes ``shared/*`` of ``epoch``."""
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"the shared weights' loss became {loss} in epoch "
                f"{epoch + 1}; lower --learning_rate or set {clip_flag}")
        with self.writer.as_default(step=epoch + 1):
            tf.summary.scalar("shared/loss", loss)
            tf.summary.scalar("shared/lr", lr)
            for name, value in scalars.items():
                tf.summary.scalar(f"shared/{name}", value)

    def _controller_phase(self, epoch: int) -> dict:
        cfg = self.config
        m, per_epoch = cfg.reinforce.num_aggregate, self.samples_per_epoch
        formula = cfg.reward_formula()
        began = time.time()
        tokens, shaped, rewards, updates = [], [], [], []
        entropy, skips = [], []
        for k in range(per_epoch):
            index = epoch * per_epoch + k
            out, metric = self._sampled_metric(-(index + 1), epoch, k)
            reward = formula(metric)
            arch = self.space.from_tokens(
                [int(v) for v in out.tokens.numpy()[0]])
            self._record(index, epoch, arch, reward, metric)
            rewards.append(reward)
            tokens.append(arch.tokens)
            shaped.append(float(reinforce.shaped_reward(
                [reward], out, cfg.reinforce)[0]))
            entropy.append(float(out.entropy.numpy()[0]))
            skips.append(float(out.skip_count.numpy()[0]))
            if len(tokens) == m:
                if cfg.enas.controller_updates:
                    updates.append(self.learner.update(self.space, tokens,
                                                       shaped))
                tokens, shaped = [], []
        stats = {"samples": per_epoch, "mean_reward": float(np.mean(rewards)),
                 "baseline": float(self.learner.baseline.value.numpy()),
                 "entropy": float(np.mean(entropy)),
                 "seconds": time.time() - began}
        if updates:
            stats["loss"] = float(np.mean([u["loss"] for u in updates]))
        possible = sum(d.num_tokens for d in self.space.decisions
                       if d.kind == "skips")
        if possible:
            # general_controller.py's skip_rate: skips / (L (L - 1) / 2).
            stats["skip_rate"] = float(np.mean(skips)) / possible
        return stats

    def _record(self, index, epoch, arch, reward, metric):
        record = {"step": index, "child": index + 1, "epoch": epoch + 1,
                  "tokens": self.space.format(arch),
                  "decision_values": list(arch.tokens),
                  "space": self.space.name,
                  "space_params": self.space.params, "reward": reward,
                  "status": "ok", "metrics": {self._metric: metric}}
        self.history.append(run.json_record(record))
        self.review.write_rewards(record)
        self.review.update_best()

    def _derive(self, epoch: int) -> dict:
        """The best of ``derive_samples`` sampled architectures on one
        validation minibatch."""
        count = self.config.enas.derive_samples
        key = -(_DERIVE_OFFSET + epoch * count)
        sampled = self.controller.sample(self.space, count,
                                         (self.config.seed, key))
        metrics = self._arc_metrics(tf.unstack(sampled.tokens), epoch)
        best = 0
        for i, metric in enumerate(metrics):
            if self._better(metric, metrics[best]):
                best = i
        arch = self.space.from_tokens(
            [int(v) for v in sampled.tokens.numpy()[best]])
        return {"arch": arch, "tokens": self.space.format(arch),
                "metric": metrics[best],
                "reward": self.config.reward_formula()(metrics[best])}

    # -- reporting -----------------------------------------------------------
    def _epoch_summaries(self, epoch: int, stats: dict) -> None:
        samples = epoch * self.samples_per_epoch
        with self.writer.as_default(step=samples):
            for key in ("baseline", "entropy", "loss", "skip_rate"):
                if key in stats:
                    tf.summary.scalar(f"controller/{key}", stats[key])
        with self.writer.as_default(step=epoch):
            tf.summary.scalar(f"derived/{self._metric}",
                              self.derived["metric"])
            tf.summary.text("derived/architecture", self.derived["tokens"])
            image = self._derived_drawing()
            if image is not None:
                tf.summary.image(
                    "derived/drawing", image[tf.newaxis],
                    description="The architecture derived at this epoch: "
                    "the best of the sampled ones on one validation "
                    "minibatch, with the shared weights.")
        self.writer.flush()

    def _derived_drawing(self):
        return search_review.architecture_image(
            self.space, self.derived["arch"], self.log)

    def _finish(self) -> run.SearchResult:
        derived = self.derived
        run.write_best(self.logdir, derived["tokens"], self.space)
        rewards = [r["reward"] for r in self.history.records]
        per_epoch = self.samples_per_epoch
        self.log(f"search finished: {self.epochs} epochs, "
                 f"{len(rewards)} controller samples; mean reward of the "
                 f"first epoch {np.mean(rewards[:per_epoch]):.4f}, of the "
                 f"last {np.mean(rewards[-per_epoch:]):.4f}")
        self.log(f"derived architecture ({self._metric} "
                 f"{derived['metric']:.4f} on one minibatch): "
                 f"{derived['tokens']}")
        return run.SearchResult(derived["tokens"], derived["reward"],
                                list(self.history.records), self.space.name,
                                dict(self.space.params))
