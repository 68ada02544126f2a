"""The DARTS search of a convolutional cell (Liu et al. 2018, Alg. 1;
quark0/darts ``cnn/train_search.py``).

The training images are split in two (``train_portion``, the first part
for the weights and the rest for alpha, as the original's index split);
every epoch takes one pass over the weights' part, each iteration
updating alpha on the next batch of a shuffled pass over alpha's part
(a fresh batch every step), then the weights (``darts_step``). After the
epoch the alpha part is evaluated with the moving statistics (the
original's ``infer``), the genotype is derived, and the epoch becomes a
line of ``history.jsonl`` (genotype, both losses and accuracies, the
collapse monitors). The last epoch's genotype is ``best_arch.txt``, unless
an early-stopping rule (DARTS+, DARTS-ES) ends the search first.

Everything random is keyed by the run's seed: the data order and
augmentation of epoch e, SDARTS's noise of step s, the initial weights and
alpha. A checkpoint follows every epoch, so a killed run redoes at most
the epoch it was in and ends as an uninterrupted one would on CPU.
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

from nas_tf.data import images
from nas_tf.search import darts_architect
from nas_tf.search import darts_step
from nas_tf.search import review as search_review
from nas_tf.search import run
from nas_tf.search import search_config
from nas_tf.supernets import darts_alpha
from nas_tf.supernets import darts_cnn
from nas_tf.training import coupled_adam
from nas_tf.training import image_trainer
from nas_tf.training import momentum_sgd
from nas_tf.training import precision
from nas_tf.training import replica_loop
from nas_tf.utils import function_specialization
from nas_tf.utils import progress

# Seed offset of the alpha half's data order (the weights half uses seed).
_ALPHA_DATA_SEED = 7919
# Pixels per alpha entry in the TensorBoard images of the weights.
_ALPHA_PIXELS = 8


def split_for_darts(data, portion: float):
    """(weights' data, alpha's data): the training images, with the
    held-out validation images put back after them (the original splits
    all 50,000 CIFAR-10 training images), cut at ``portion``. Alpha's
    data holds its images as both its train and valid split."""
    x = np.concatenate([data.train_images, data.valid_images])
    y = np.concatenate([data.train_labels, data.valid_labels])
    cut = int(portion * len(y))
    if cut < 1 or cut >= len(y):
        raise ValueError(f"train_portion={portion} leaves an empty part of "
                         f"the {len(y)} training images")
    weights = dataclasses.replace(data, train_images=x[:cut],
                                  train_labels=y[:cut],
                                  valid_images=x[:0], valid_labels=y[:0])
    alpha = dataclasses.replace(data, train_images=x[cut:],
                                train_labels=y[cut:], valid_images=x[cut:],
                                valid_labels=y[cut:])
    return weights, alpha


def zero_one_loss(weight, kinds):
    """Fair DARTS (``separate_loss.py``): ``-weight * mean((sigmoid(alpha)
    - 0.5)^2)`` over every cell's alpha, pushing each op to 0 or 1. Its
    space has no ``none``, so that column is left out of the mean."""

    def penalty(alphas):
        values = tf.concat([tf.reshape(tf.sigmoid(a[:, 1:]), [-1])
                            for a in alphas[:len(kinds)]], axis=0)
        return -weight * tf.reduce_mean(tf.square(values - 0.5))

    return penalty


class DartsRun(run.SearchRun):
    """One DARTS search of ``config`` (``strategy="darts"``) in ``logdir``."""

    def _build(self) -> dict:
        cfg = self.config
        darts = cfg.darts
        self.space = cfg.space_at(0)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.stopped = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.weights_data, self.alpha_data = split_for_darts(
            self.data, darts.train_portion)
        child = dataclasses.replace(
            cfg.child, num_classes=self.data.num_classes,
            image_size=self.data.image_size,
            image_channels=self.data.image_channels)
        strategy = self.device_strategy
        if cfg.precision.jit_compile and strategy.num_replicas_in_sync > 1:
            raise ValueError(search_config.DARTS_XLA_REPLICAS)
        train = darts.train
        with strategy.scope():
            # Only the network computes in 16 bits: alpha, the optimizers
            # and the loss stay float32 (``precision``).
            with precision.dtype_policy(cfg.precision.mixed_precision):
                self.supernet = darts_cnn.build(
                    child, darts.partial_channels, darts.auxiliary_skip,
                    steps=self.space.steps,
                    synchronized_bn=strategy.num_replicas_in_sync > 1,
                    recompute_cells=(darts.recompute_cells
                                     and darts.order != "exact"))
            self.architecture = darts_alpha.ArchitectureWeights(
                darts_cnn.CELL_KINDS, len(darts_cnn.darts_ops.PRIMITIVES),
                [i + 2 for i in range(self.space.steps)], seed=cfg.seed,
                init_scale=darts.init_scale,
                edge_normalization=darts.edge_normalization)
            self.optimizer = momentum_sgd.MomentumSgd(
                self.supernet.trainable_variables, train.schedule(0),
                momentum=train.momentum, nesterov=train.nesterov,
                weight_decay=train.weight_decay, clip_norm=train.grad_clip,
                loss_scale=precision.make_loss_scale(cfg.precision))
            self.arch_optimizer = coupled_adam.CoupledAdam(
                self.architecture.variables_list, darts.arch_learning_rate,
                darts.arch_beta_1, darts.arch_beta_2,
                weight_decay=darts.arch_weight_decay)
        penalty = (zero_one_loss(darts.zero_one_loss_weight,
                                 darts_cnn.CELL_KINDS)
                   if darts.zero_one_loss_weight else None)
        self.architect = darts_architect.Architect(
            self.supernet, self.architecture, self.optimizer,
            image_trainer.loss_fn(train), darts.mixing, penalty,
            darts.fd_radius, jit_compile=cfg.precision.jit_compile)
        self.search_step = darts_step.SearchStep(
            strategy, self.architect, self.optimizer, self.arch_optimizer,
            darts.order, darts.perturbation == "random", cfg.seed)
        self.steps = min(len(self.weights_data.train_labels),
                         len(self.alpha_data.train_labels)) // train.batch_size
        if train.steps_per_epoch:
            self.steps = min(self.steps, train.steps_per_epoch)
        if self.steps < 1:
            smaller = min(len(self.weights_data.train_labels),
                          len(self.alpha_data.train_labels))
            raise ValueError(
                f"batch_size={train.batch_size} is larger than a part of "
                f"the split training images ({smaller}); lower it or "
                f"--train_portion")
        # DARTS-'s skip weight, set every epoch; compiled functions read it.
        self.skip_weight = tf.Variable(darts.auxiliary_skip_beta,
                                       trainable=False, name="skip_weight")
        self._evaluate = replica_loop.compile_evaluate(
            strategy, _FixedMixing(self.supernet, self._mixing),
            jit_compile=cfg.precision.jit_compile)
        self._alpha_gradient = tf.function(
            lambda batch, alphas: self.architect.alpha_gradient(
                batch, alphas, self._extra()))
        return {"epoch": self.epoch, "stopped": self.stopped,
                "supernet": replica_loop.model_variables(self.supernet),
                "architecture": self.architecture.variables_list,
                "weight_optimizer": self.optimizer,
                "arch_optimizer": self.arch_optimizer}

    # -- what depends on the kind of data (DartsLmRun: language models) ----
    @property
    def epochs(self) -> int:
        return self.config.darts.train.epochs

    def _resumed_line(self) -> str:
        return f"{int(self.epoch)} of {self.epochs} epochs done"

    def _epoch_line(self, stats: dict) -> str:
        return (f"train loss {stats['train_loss']:.4f} acc "
                f"{stats['train_accuracy']:.4f} | alpha loss "
                f"{stats['alpha_loss']:.4f} | valid acc "
                f"{stats['valid_accuracy']:.4f} | skips "
                f"{stats['skip_normal']}/{stats['skip_reduce']}")

    def _reward(self, stats: dict) -> float:
        return stats["valid_accuracy"]

    def _alpha_record(self):
        """Alpha's op weights as history.jsonl keeps them."""
        return {kind: np.round(w, 5).tolist() for kind, w in
                self.architecture.numpy_weights(
                    self.config.darts.mixing).items()}

    def _op_names(self) -> str:
        return ("none, max, avg, skip, sep3, sep5, dil3, dil5")

    def _extra(self) -> dict:
        """What the mixing takes besides alpha: DARTS-'s skip weight."""
        if not self.config.darts.auxiliary_skip:
            return {}
        return {"auxiliary_skip": self.skip_weight}

    def _mixing(self):
        mixing = self.architecture.mixing(self.config.darts.mixing)
        mixing.update(self._extra())
        return mixing

    # -- the loop ------------------------------------------------------------
    def _run(self) -> run.SearchResult:
        darts = self.config.darts
        epochs = self.epochs
        self.history.truncate(int(self.epoch))
        self.review.update_best()
        began, first = time.time(), int(self.epoch)
        for epoch in range(first, epochs):
            if int(self.stopped) >= 0:
                break
            stats = self._train_epoch(epoch)
            stats.update(self._monitors(epoch))
            record = self._record(epoch, stats)
            stop = self._early_stop(epoch, record)
            if stop is not None:
                self.stopped.assign(stop)
            self.epoch.assign(epoch + 1)
            self.manager.save(checkpoint_number=epoch + 1)
            self._summaries(epoch, stats, record)
            per_epoch = (time.time() - began) / (epoch + 1 - first)
            self.log(
                f"[epoch {epoch + 1}/{epochs}] {self._epoch_line(stats)} | "
                f"{stats['seconds']:.1f} s | ETA "
                f"{progress.duration(per_epoch * (epochs - epoch - 1))}\n"
                f"  {record['tokens']}")
            if stop is not None:
                self.log(f"early stop ({darts.early_stop}) after epoch "
                         f"{epoch + 1}: keeping the genotype of epoch "
                         f"{stop + 1}")
                break
        return self._finish()

    def _train_epoch(self, epoch: int) -> dict:
        darts, cfg = self.config.darts, self.config
        train = darts.train
        began = time.time()
        lr = train.schedule(epoch)
        self.optimizer.learning_rate.assign(lr)
        weights = images.train_dataset(
            self.weights_data, train.batch_size, cfg.seed, epoch,
            augment=train.augment, cutout=train.cutout,
            cutout_anchor=train.cutout_anchor)
        # The original draws alpha's batches with the training transform.
        alpha = images.train_dataset(
            self.alpha_data, train.batch_size, cfg.seed + _ALPHA_DATA_SEED,
            epoch, augment=train.augment)
        update_alpha = epoch >= darts.arch_warmup_epochs
        self.skip_weight.assign(darts.auxiliary_skip_weight(epoch))
        extra = self._extra()
        bound = darts.perturbation_bound(epoch)
        totals = {}
        report = max(self.steps // 4, 50)
        for i, (t, v) in enumerate(zip(weights.take(self.steps), alpha)):
            step = epoch * self.steps + i
            out = self.search_step(t, v, step, extra, bound, update_alpha)
            for key, value in out.items():
                totals[key] = totals.get(key, 0.0) + value
            if (i + 1) % report == 0 and i + 1 < self.steps:
                mean = float(totals["train_loss"]) / (i + 1)
                self.log(f"  epoch {epoch + 1} step {i + 1}/{self.steps}: "
                         f"train loss {mean:.4f} | "
                         f"{time.time() - began:.0f} s")
        n, batch = self.steps, train.batch_size
        stats = {"train_loss": float(totals["train_loss"]) / n,
                 "train_accuracy": float(totals["train_hits"]) / (n * batch),
                 "alpha_loss": float(totals.get("valid_loss", np.nan)) / n,
                 "lr": lr}
        if not np.isfinite(stats["train_loss"]):
            raise FloatingPointError(
                f"the weights' loss became {stats['train_loss']} in epoch "
                f"{epoch + 1}; lower --learning_rate")
        valid = images.eval_dataset(self.alpha_data, "valid",
                                    train.batch_size)
        stats["valid_accuracy"] = float(self._evaluate(valid)) / len(
            self.alpha_data.valid_labels)
        stats["seconds"] = time.time() - began
        return stats

    def _monitors(self, epoch: int) -> dict:
        """The derived genotype and the collapse monitors."""
        darts = self.config.darts
        weights = self.architecture.numpy_weights(darts.mixing)
        self.derived = darts_alpha.derive_cnn(self.space, weights)
        pair = self.space.decode(self.derived)
        stats = {f"skip_{kind}": sum(op == "skip_connect"
                                     for node in getattr(pair, kind).nodes
                                     for op in node.ops)
                 for kind in darts_cnn.CELL_KINDS}
        if darts.mixing == "sigmoid":
            nodes = darts_alpha.node_edges(
                [i + 2 for i in range(self.space.steps)])
            kept = {kind: darts_alpha.strongest_edges(weights[kind], nodes, 2)
                    for kind in darts_cnn.CELL_KINDS}
            stats["edges_above_threshold"] = int(sum(
                weights[kind][start + j, k] >= darts.threshold
                for kind in darts_cnn.CELL_KINDS
                for (start, _), picked in zip(nodes, kept[kind])
                for j, k in picked))
        if self._due_for_eigenvalue(epoch):
            rng = np.random.default_rng([self.config.seed, epoch, 1])
            rows = rng.choice(len(self.alpha_data.valid_labels),
                              darts.train.batch_size, replace=False)
            batch = next(iter(images.eval_dataset(
                dataclasses.replace(
                    self.alpha_data,
                    valid_images=self.alpha_data.valid_images[rows],
                    valid_labels=self.alpha_data.valid_labels[rows]),
                "valid", len(rows))))
            stats["eigenvalue"] = self._eigenvalue(batch)
        return stats

    def _due_for_eigenvalue(self, epoch: int) -> bool:
        every = self.config.darts.hessian_every
        return bool(every) and (epoch % every == 0 or
                                epoch == self.epochs - 1)

    def _eigenvalue(self, batch) -> float:
        """The largest eigenvalue of alpha's Hessian of ``batch``'s loss."""
        dtype = self.architecture.variables_list[0].dtype
        # Under the step's options: the network's pass is the step's.
        with function_specialization.off():
            return darts_architect.dominant_eigenvalue(
                lambda values: [g.numpy() for g in self._alpha_gradient(
                    batch, [tf.constant(v, dtype) for v in values])],
                [v.numpy() for v in self.architecture.variables_list],
                self.config.darts.hessian_iterations)

    def _record(self, epoch: int, stats: dict) -> dict:
        arch = self.derived
        metrics = {key: value for key, value in stats.items()
                   if key not in ("seconds",)}
        metrics["alpha"] = self._alpha_record()
        record = {"step": epoch, "child": epoch + 1, "epoch": epoch + 1,
                  "tokens": self.space.format(arch),
                  "decision_values": list(arch.tokens),
                  "space": self.space.name,
                  "space_params": self.space.params,
                  "reward": self._reward(stats), "status": "ok",
                  "metrics": metrics,
                  "wall_time": round(stats["seconds"], 3)}
        record = run.json_record(record)
        self.history.append(record)
        self.review.write_rewards(record)
        self.review.update_best()
        return record

    # -- early stopping ------------------------------------------------------
    def _early_stop(self, epoch: int, record: dict):
        """The 0-based epoch whose genotype the search keeps if a rule
        stops it after ``epoch``, else None."""
        darts = self.config.darts
        if darts.early_stop == "skip_count":
            # DARTS+ (Liang et al. 2019, sec. 3.2): stop once the normal
            # cell has skip_limit skip connections.
            if record["metrics"]["skip_normal"] >= darts.skip_limit:
                return epoch
            return None
        if (darts.early_stop == "eigenvalue" and
                epoch < self.epochs - 1):
            # RobustDARTS does not test after the last epoch.
            return eigenvalue_stop(
                [(r["step"], r["metrics"]["eigenvalue"])
                 for r in self.history.records
                 if "eigenvalue" in r["metrics"]], darts)
        return None

    # -- reporting -----------------------------------------------------------
    def _summaries(self, epoch: int, stats: dict, record: dict) -> None:
        with self.writer.as_default(step=epoch + 1):
            for key in ("train_loss", "train_accuracy", "train_ppl",
                        "alpha_loss", "lr", "clip_coef"):
                if key in stats:
                    tf.summary.scalar(f"darts/{key}", stats[key])
            tf.summary.scalar(f"child/{self._metric}", stats[self._metric])
            for key in ("skip_normal", "skip_reduce", "eigenvalue",
                        "edges_above_threshold"):
                if key in stats:
                    tf.summary.scalar(f"collapse/{key}", stats[key])
            for kind, w in self.architecture.numpy_weights(
                    self.config.darts.mixing).items():
                tf.summary.image(
                    f"alpha/{kind}", _weights_image(w),
                    description=f"The {kind} cell's op weights: one row "
                    "per edge (node by node, sources in order), one "
                    f"column per op ({self._op_names()}); white is 1.")
            tf.summary.text("derived/architecture", record["tokens"])
            image = search_review.architecture_image(self.space,
                                                     self.derived, self.log)
            if image is not None:
                tf.summary.image("derived/drawing", image[tf.newaxis])
        self.writer.flush()

    def _finish(self) -> run.SearchResult:
        records = self.history.records
        index = int(self.stopped) if int(self.stopped) >= 0 else -1
        chosen = records[index]
        run.write_best(self.logdir, chosen["tokens"], self.space)
        self.review.write_table(len(records))
        self.log(f"search finished after {len(records)} epochs; genotype "
                 f"of epoch {chosen['epoch']} ({self._metric} "
                 f"{chosen['metrics'][self._metric]:.4f}):\n"
                 f"  {chosen['tokens']}")
        return run.SearchResult(chosen["tokens"], chosen["reward"],
                                list(records), self.space.name,
                                dict(self.space.params))


def eigenvalue_stop(eigenvalues, darts):
    """DARTS-ES (RobustDARTS ``utils.py`` ``EVLocalAvg``): ``eigenvalues``
    are (epoch, value) in order, one every ``hessian_every`` epochs. Each
    is averaged over the last ``es_window`` (over all while fewer, once
    there are half a window), tagged with the window's centre epoch; the
    search stops when an average exceeds ``es_factor`` times the one
    ``es_delta`` computations earlier, whose epoch is at least
    ``es_start_epoch``, and keeps the genotype of that earlier epoch."""
    window, every = darts.es_window, darts.hessian_every
    averages = []
    for k in range(len(eigenvalues)):
        if k + 1 < -(-window // 2):
            continue
        values = [v for _, v in eigenvalues[max(0, k + 1 - window):k + 1]]
        centre = eigenvalues[k][0] - every * (window // 2)
        averages.append((centre, float(np.mean(values))))
    if len(averages) <= darts.es_delta:
        return None
    (then, before), (_, now) = averages[-1 - darts.es_delta], averages[-1]
    # Power iteration finds the eigenvalue of largest magnitude; a
    # negative average (no dominant positive curvature) never stops it.
    if (then >= darts.es_start_epoch and before > 0 and
            now > darts.es_factor * before):
        return then
    return None


def _weights_image(weights):
    """[1, edges * p, ops * p, 1] image of a [0, 1] weight matrix."""
    w = np.clip(np.asarray(weights, np.float32), 0.0, 1.0)
    w = np.kron(w, np.ones((_ALPHA_PIXELS, _ALPHA_PIXELS), np.float32))
    return w[np.newaxis, :, :, np.newaxis]


class _FixedMixing:
    """The supernet as ``model(images, training=...)`` with the current
    mixing, for ``replica_loop``'s evaluation."""

    def __init__(self, supernet, mixing_fn):
        self.supernet, self.mixing_fn = supernet, mixing_fn

    def __call__(self, images_, training=False):
        return self.supernet(images_, self.mixing_fn(), training=training)
