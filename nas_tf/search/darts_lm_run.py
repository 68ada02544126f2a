"""The DARTS search of a recurrent cell on a text corpus (Liu et al. 2018,
sec. 3.1.2 and A.1.2; quark0/darts ``rnn/train_search.py`` and
``rnn/architect.py``).

Every epoch walks the training stream once in BPTT windows, the hidden
state carried from window to window and reset at the start of the epoch.
Each window is one iteration:

1. alpha's step on a window of the validation corpus batched at the search
   batch size (the original's ``search_data``), at the position of the
   training window modulo its length, with its own persistent hidden state
   (``hidden_valid``: the validation forward's state carries on);
2. the weights' step on the training window: plain SGD (no momentum) on the
   NLL plus the slowness (TAR) and activation (AR) terms of ``lm_train``,
   the gradient's global norm clipped to ``clip_norm``, weight decay added
   after clipping (``LmTrainer``'s own step).

Both take the learning rate scaled by the window length over ``bptt``.
The windows are train_search.py's: ``bptt`` long, or ``int(bptt / 2)``
with probability 0.05 (without the normal jitter of ``rnn/train.py``);
``lm_train.max_steps`` caps the windows of each epoch (0: all).

After the epoch: the validation perplexity (batch ``eval_batch_size``,
fixed windows, dropout off, the batch norm's moving moments: the original's
``evaluate``), the genotype derived with k = 1 (``derive_rnn``), one line
of ``history.jsonl``, TensorBoard, a checkpoint. ``best_arch.txt`` is the
last epoch's genotype (the original reports the genotype as it goes and
keeps none apart), unless DARTS-ES stops the search first.

``RnnArchitect`` is alpha's gradient for the language model; see its
docstring for the second-order quirks of ``rnn/architect.py`` it keeps.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from nas_tf.data import lm_batches
from nas_tf.search import darts_architect
from nas_tf.search import darts_run
from nas_tf.supernets import darts_alpha
from nas_tf.supernets import darts_rnn
from nas_tf.training import coupled_adam
from nas_tf.training import lm_trainer
from nas_tf.training import replica_loop

KIND = "recurrent"
# train_search.py: bptt / 2 with probability 1 - 0.95.
_P_FULL_BPTT = 0.95
# rnn/architect.py _clip: max_norm / (total_norm + 1e-6).
_CLIP_EPSILON = 1e-6
_SEED_STATE = "seed_generator_state"


def clip_with_coefficient(grads, max_norm):
    """``rnn/architect.py`` ``_clip``: (grads scaled by ``coef`` if ``coef``
    < 1, else unchanged; ``coef``) with ``coef = max_norm / (||grads|| +
    1e-6)``. The coefficient is returned even when it is above 1."""
    norm = tf.linalg.global_norm(grads)
    coef = tf.convert_to_tensor(max_norm, norm.dtype) / (norm + _CLIP_EPSILON)
    scale = tf.minimum(coef, 1.0)
    return [g * scale for g in grads], coef


def _dense(grads, like):
    """Gradients as dense tensors (the embedding's come as slices), zeros
    for a weight the loss does not reach."""
    return [tf.zeros_like(w) if g is None else tf.convert_to_tensor(g)
            for g, w in zip(grads, like)]


class RnnArchitect(darts_architect.Architect):
    """Alpha's gradient for the DARTS search language model
    (``rnn/architect.py``).

    Batches are ``(inputs, targets, state)``: a [batch, time] window, its
    next words and the hidden state it starts from. Losses are the plain
    mean NLL (``model._loss``: no slowness or activation term), at weight
    values given as tensors (a ``keras.StatelessScope``), with dropout and
    the batch norm's batch moments as in training.

    ``gradient(order, train, valid)`` returns ``(grads, validation loss,
    validation LmOutputs, clip coefficient)``; the outputs' ``state`` is
    the validation stream's next hidden state (``hidden_valid``). Orders:

    * ``first``: grad_alpha L_val(w) (the default of train_search.py; the
      clip coefficient is returned as 1).
    * ``second`` (``--unrolled``): with ``g = grad_w L_train(w)`` (the
      training stream's state) and ``c = clip / (||g|| + 1e-6)``, ``g`` is
      scaled by ``c`` if ``c < 1`` and ``w' = w - xi (g + wd w)`` (plain
      SGD: no momentum; ``xi`` the window's learning rate, ``wd`` the
      weights' decay). Then ``v = grad_w' L_val(w')``, clipped to ``clip``
      the same way, and ``grad_alpha L_val(w') - xi * c * H v``, ``H v``
      by central differences of grad_alpha L_train at ``w +- r v``, ``r =
      fd_radius / ||v||``. Kept from the original: ``c`` multiplies the
      implicit term even when it is above 1 and nothing was clipped
      (``_clip`` returns it either way), and ``v`` is clipped.
    * ``exact``: the same with ``H v`` by double backprop (the quantity the
      difference approximates).

    Every pass draws its own dropout masks, as each of the original's
    ``_loss`` calls does: the passes of one step run the dropout seeds on,
    and the step leaves them where its last pass did, so the weights' step
    after it draws new ones. The batch norm's moving moments do not move
    in these passes (the original's move, but a window's weight step
    outweighs them: after its 35 x 9 updates at momentum 0.1 what came
    before weighs 0.9^315).

    Args:
      model: A ``DartsRnnSupernet``.
      architecture: Its ``ArchitectureWeights`` (kind ``recurrent``).
      weight_decay: The weights' SGD decay (``--wdecay``).
      clip: ``--clip`` (0.25), for ``g`` and ``v``.
      mixing_mode, alpha_penalty, radius: As ``Architect``'s.
    """

    def __init__(self, model, architecture, weight_decay, clip,
                 mixing_mode="softmax", alpha_penalty=None, radius=0.01):
        super().__init__(model, architecture, None, None, mixing_mode,
                         alpha_penalty, radius)
        self.weight_decay, self.clip = weight_decay, clip
        # xi: the current window's learning rate (set before each step).
        self.learning_rate = tf.Variable(0.0, trainable=False,
                                         name="window_learning_rate")
        self._seed_indices = [
            i for i, v in enumerate(model.non_trainable_variables)
            if v.path.endswith(_SEED_STATE)]
        # Seed states carried from pass to pass inside ``gradient``.
        self._seeds = None

    def loss(self, weights, batch, alphas, extra=None):
        """(mean NLL, ``LmOutputs``) of ``batch`` at weight values
        ``weights`` and alpha values ``alphas``."""
        inputs, targets, state = batch
        model = self.model
        mixing = self.architecture.mixing(self.mixing_mode, alphas)[KIND]
        variables = model.non_trainable_variables
        frozen = [v.value for v in variables]
        if self._seeds is not None:
            for i in self._seed_indices:
                frozen[i] = self._seeds[i]
        mapping = (list(zip(model.trainable_variables, weights)) +
                   list(zip(variables, frozen)))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = model.forward(inputs, mixing, list(state),
                                    training=True)
        if self._seeds is not None:
            for i in self._seed_indices:
                self._seeds[i] = scope.get_current_value(variables[i])
        nll = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            targets, outputs.logits))
        return nll, outputs

    def alpha_gradient(self, batch, alphas, extra=None):
        weights, _ = self.current()
        alphas = list(alphas)
        with tf.GradientTape() as tape:
            tape.watch(alphas)
            loss, _ = self.loss(weights, batch, alphas)
        return tape.gradient(loss, alphas)

    def gradient(self, order, train_batch, valid_batch, extra=None):
        if order not in darts_architect.ORDERS:
            raise ValueError(f"order={order!r}; allowed: "
                             f"{darts_architect.ORDERS}")
        weights, alphas = self.current()
        variables = self.model.non_trainable_variables
        self._seeds = {i: variables[i].value for i in self._seed_indices}
        try:
            if order == "first":
                with tf.GradientTape() as tape:
                    tape.watch(alphas)
                    loss, outputs = self._validation_loss(
                        weights, valid_batch, alphas, extra)
                grads = tape.gradient(loss, alphas)
                coef = tf.ones([], loss.dtype)
            else:
                grads, loss, outputs, coef = self._unrolled(
                    weights, alphas, train_batch, valid_batch, extra,
                    exact=order == "exact")
            for i in self._seed_indices:
                variables[i].assign(self._seeds[i])
        finally:
            self._seeds = None
        return grads, loss, outputs, coef

    def _unrolled(self, weights, alphas, train_batch, valid_batch, extra,
                  exact):
        dtype = weights[0].dtype
        xi = tf.cast(self.learning_rate, dtype)
        fixed = [tf.stop_gradient(a) for a in alphas]
        with tf.GradientTape() as tape:
            tape.watch(weights)
            train_loss, _ = self.loss(weights, train_batch, fixed)
        train_grads, coef = clip_with_coefficient(
            _dense(tape.gradient(train_loss, weights), weights), self.clip)
        unrolled = [w - xi * (g + self.weight_decay * w)
                    for w, g in zip(weights, train_grads)]
        with tf.GradientTape() as tape:
            tape.watch(unrolled + alphas)
            loss, outputs = self._validation_loss(unrolled, valid_batch,
                                                  alphas, extra)
        grads = tape.gradient(loss, alphas + unrolled)
        d_alpha = grads[:len(alphas)]
        vector, _ = clip_with_coefficient(
            _dense(grads[len(alphas):], unrolled), self.clip)
        product = (self._exact_product if exact else
                   self._difference_product)(weights, alphas, train_batch,
                                             vector)
        grads = [g - xi * coef * p for g, p in zip(d_alpha, product)]
        return grads, loss, outputs, coef

    def _difference_product(self, weights, alphas, batch, vector):
        """``_hessian_vector_product``: (grad_alpha L(w + r v) - grad_alpha
        L(w - r v)) / 2r, the plus side first."""
        r = self.radius / tf.linalg.global_norm(vector)
        sides = []
        for sign in (1.0, -1.0):
            moved = [w + sign * r * d for w, d in zip(weights, vector)]
            with tf.GradientTape() as tape:
                tape.watch(alphas)
                side_loss, _ = self.loss(moved, batch, alphas)
            sides.append(tape.gradient(side_loss, alphas))
        return [(plus - minus) / (2.0 * r) for plus, minus in zip(*sides)]

    def _exact_product(self, weights, alphas, batch, vector):
        """grad_alpha (grad_w L(w, alpha) . v) by double backprop."""
        vector = [tf.stop_gradient(d) for d in vector]
        with tf.GradientTape() as outer:
            outer.watch(alphas)
            with tf.GradientTape() as inner:
                inner.watch(weights)
                loss, _ = self.loss(weights, batch, alphas)
            grads = _dense(inner.gradient(loss, weights), weights)
            dot = tf.add_n([tf.reduce_sum(g * d)
                            for g, d in zip(grads, vector)])
        return outer.gradient(dot, alphas)


def search_windows(batched, bptt, rng, variable=True):
    """``(start, Window)`` of train_search.py's walk over ``batched``: the
    window is ``int(bptt)`` long, or ``int(bptt / 2)`` with probability
    0.05 (``variable``; otherwise always ``bptt``), cut at the data's end;
    the learning rate scales by that length over ``bptt``; windows start
    while ``start < num_steps - 2``."""
    num_steps = batched.shape[1]
    start = 0
    while start < num_steps - 2:
        drawn = bptt
        if variable and rng.random() >= _P_FULL_BPTT:
            drawn = max(1, int(bptt / 2.0))
        seq_len = min(drawn, num_steps - 1 - start)
        yield start, lm_batches.Window(
            batched[:, start:start + seq_len],
            batched[:, start + 1:start + 1 + seq_len], seq_len,
            drawn / bptt)
        start += drawn


def valid_window(batched, position, bptt):
    """``get_batch(search_data, position % (len - 1))``: (inputs, targets)
    of the validation window that goes with a training window starting at
    ``position``."""
    num_steps = batched.shape[1]
    start = position % (num_steps - 1)
    length = min(bptt, num_steps - 1 - start)
    return (batched[:, start:start + length],
            batched[:, start + 1:start + 1 + length])


class _MixedModel:
    """The supernet as ``LmTrainer`` sees a language model: it runs with
    the current mixing weights of alpha, held constant."""

    def __init__(self, supernet, architecture, mixing_mode):
        self.supernet, self.architecture = supernet, architecture
        self.mixing_mode = mixing_mode
        self.lm_config = supernet.lm_config
        self.cell = supernet.cell
        self.space = supernet.space
        self.built = True
        self.trainable_weights = supernet.trainable_weights

    def initial_state(self, batch_size):
        return self.supernet.initial_state(batch_size)

    def forward(self, tokens, state=None, training=False):
        weights = tf.stop_gradient(
            self.architecture.mixing(self.mixing_mode)[KIND])
        return self.supernet.forward(tokens, weights, state,
                                     training=training)


class DartsLmRun(darts_run.DartsRun):
    """One DARTS search of a ``darts_rnn`` cell (``strategy="darts"`` on a
    text corpus) in ``logdir``: ``config.lm`` sizes the search model,
    ``config.lm_train`` is its training (batch, bptt, lr, clip, decay,
    regularisers, epochs), ``config.darts`` alpha's (order, Adam,
    init_scale, fd_radius, warm-up, mixing, the eigenvalue monitor and
    DARTS-ES); ``darts.train`` and ``train_portion`` are the image
    search's and unused here.

    Everything random is keyed by the run's seed (the windows of epoch e
    by (seed, e); the dropout seeds are checkpointed), and both hidden
    states start at zero every epoch, so a killed run redoes at most the
    epoch it was in and ends as an uninterrupted one would on CPU."""

    def _build(self) -> dict:
        cfg, corpus = self.config, self.data
        darts, train = cfg.darts, cfg.lm_train
        self.space = cfg.space_at(0)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.stopped = tf.Variable(-1, dtype=tf.int64, trainable=False)
        # One device: the LM runs outside the device strategy, as ENAS's.
        self.supernet = darts_rnn.build(self.space, cfg.lm, seed=cfg.seed)
        self.architecture = darts_alpha.ArchitectureWeights(
            (KIND,), len(darts_rnn.PRIMITIVES),
            range(1, self.space.steps + 1), seed=cfg.seed,
            init_scale=darts.init_scale)
        self.arch_optimizer = coupled_adam.CoupledAdam(
            self.architecture.variables_list, darts.arch_learning_rate,
            darts.arch_beta_1, darts.arch_beta_2,
            weight_decay=darts.arch_weight_decay)
        self.model = _MixedModel(self.supernet, self.architecture,
                                 darts.mixing)
        self.trainer = lm_trainer.LmTrainer(self.model, corpus, train,
                                            log=self.log)
        self.search_data = lm_batches.batchify(corpus.valid,
                                               train.batch_size)
        penalty = (darts_run.zero_one_loss(darts.zero_one_loss_weight,
                                           (KIND,))
                   if darts.zero_one_loss_weight else None)
        self.architect = RnnArchitect(
            self.supernet, self.architecture, train.weight_decay,
            train.clip_norm, darts.mixing, penalty, darts.fd_radius)
        tokens = tf.TensorSpec([None, None], tf.int32)
        state = [tf.TensorSpec([None, n], tf.float32)
                 for n in self.supernet.cell.state_size]
        self._alpha_step = tf.function(self._alpha_step_fn, input_signature=[
            tokens, tokens, state, tokens, tokens, state,
            tf.TensorSpec([], tf.float32)])
        self._alpha_gradient = tf.function(
            lambda batch, alphas: self.architect.alpha_gradient(batch,
                                                                alphas))
        return {"epoch": self.epoch, "stopped": self.stopped,
                "supernet": replica_loop.model_variables(self.supernet),
                "architecture": self.architecture.variables_list,
                "arch_optimizer": self.arch_optimizer}

    def _alpha_step_fn(self, inputs, targets, state, valid_inputs,
                       valid_targets, valid_state, lr):
        self.architect.learning_rate.assign(lr)
        grads, loss, outputs, coef = self.architect.gradient(
            self.config.darts.order, (inputs, targets, state),
            (valid_inputs, valid_targets, valid_state))
        self.arch_optimizer.apply(tf.distribute.get_strategy(), grads)
        return loss, outputs.state, coef

    @property
    def epochs(self) -> int:
        return self.config.lm_train.epochs

    def _epoch_line(self, stats: dict) -> str:
        coef = (f" | clip coef {stats['clip_coef']:.3g}"
                if "clip_coef" in stats else "")
        return (f"train ppl {stats['train_ppl']:.2f} | alpha loss "
                f"{stats['alpha_loss']:.4f}{coef} | valid ppl "
                f"{stats['valid_ppl']:.2f} | {stats['windows']} windows")

    def _reward(self, stats: dict) -> float:
        return self.config.reward_formula()(stats["valid_ppl"])

    def _alpha_record(self):
        return np.round(self.architecture.numpy_weights(
            self.config.darts.mixing)[KIND], 5).tolist()

    def _op_names(self) -> str:
        return ", ".join(darts_rnn.PRIMITIVES)

    def _train_epoch(self, epoch: int) -> dict:
        cfg = self.config
        darts, train = cfg.darts, cfg.lm_train
        began = time.time()
        rng = np.random.default_rng([cfg.seed, epoch])
        base_lr = train.epoch_learning_rate(epoch + 1)
        update_alpha = epoch >= darts.arch_warmup_epochs
        # train(): both hidden states start at zero every epoch.
        state = self.supernet.initial_state(train.batch_size)
        valid_state = self.supernet.initial_state(train.batch_size)
        train_sums, alpha_sums, coefs = [], [], []
        windows = 0
        for start, w in search_windows(self.trainer.train_data, train.bptt,
                                       rng, train.variable_bptt):
            lr = np.float32(base_lr * w.lr_scale)
            if update_alpha:
                valid = valid_window(self.search_data, start, train.bptt)
                loss, valid_state, coef = self._alpha_step(
                    w.inputs, w.targets, state, *valid, valid_state, lr)
                alpha_sums.append((loss, valid[0].size))
                coefs.append(coef)
            nll, state = self.trainer._train_sgd(w.inputs, w.targets, state,
                                                 lr)
            train_sums.append((nll, w.inputs.size))
            windows += 1
            if windows % train.log_every == 0:
                self.log(f"  epoch {epoch + 1} window {windows}: train ppl "
                         f"{lm_trainer.perplexity(_mean(train_sums)):.2f} | "
                         f"{time.time() - began:.0f} s")
            if train.max_steps and windows >= train.max_steps:
                break
        stats = {"train_loss": _mean(train_sums),
                 "alpha_loss": _mean(alpha_sums) if alpha_sums else np.nan,
                 "lr": base_lr, "windows": windows}
        stats["train_ppl"] = lm_trainer.perplexity(stats["train_loss"])
        if darts.order != "first" and coefs:
            stats["clip_coef"] = float(np.mean([float(c) for c in coefs]))
        if not np.isfinite(stats["train_loss"]):
            raise FloatingPointError(
                f"the weights' loss became {stats['train_loss']} in epoch "
                f"{epoch + 1}; lower --learning_rate")
        stats["valid_ppl"] = lm_trainer.perplexity(
            self.trainer.evaluate(self.trainer.valid_data))
        stats["seconds"] = time.time() - began
        return stats

    def _monitors(self, epoch: int) -> dict:
        """The derived genotype, and the dominant eigenvalue of alpha's
        Hessian of the validation loss (``hessian_every``) on a validation
        window from a zero state."""
        darts, train = self.config.darts, self.config.lm_train
        weights = self.architecture.numpy_weights(darts.mixing)[KIND]
        self.derived = darts_alpha.derive_rnn(self.space, weights)
        stats = {}
        if self._due_for_eigenvalue(epoch):
            rng = np.random.default_rng([self.config.seed, epoch, 1])
            position = int(rng.integers(0, self.search_data.shape[1] - 1))
            inputs, targets = valid_window(self.search_data, position,
                                           train.bptt)
            batch = (tf.constant(inputs), tf.constant(targets),
                     self.supernet.initial_state(train.batch_size))
            stats["eigenvalue"] = self._eigenvalue(batch)
        return stats


def _mean(sums) -> float:
    """Mean per word of (mean loss tensor, words) pairs."""
    words = sum(n for _, n in sums)
    return sum(float(loss) * n for loss, n in sums) / max(words, 1)
