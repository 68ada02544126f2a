"""The DARTS search of a recurrent cell: the language-model architect's
unrolled gradient with the quirks of rnn/architect.py (in float64, against
double backprop and numerical derivatives), its dropout masks, the window
walk of rnn/train_search.py, and the loop's run directory, TensorBoard and
kill-and-resume."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import summary_tags

from conftest import run_script
from nas_tf import config as config_lib
from nas_tf import spaces
from nas_tf.data import synthetic_text
from nas_tf.search import darts_config
from nas_tf.search import darts_lm_run
from nas_tf.search import run
from nas_tf.search import search_config
from nas_tf.supernets import darts_alpha
from nas_tf.supernets import darts_rnn
from nas_tf.training import replica_loop

VOCAB, HIDDEN, STEPS = 11, 5, 3
EPOCHS = 2


# -- the architect -----------------------------------------------------------
def _no_dropout(**changes):
    return config_lib.LmConfig(**{
        **dict(vocab_size=VOCAB, hidden_size=HIDDEN, init_range=0.5,
               output_dropout=0.0, hidden_dropout=0.0, x_dropout=0.0,
               input_dropout=0.0, embedding_dropout=0.0), **changes})


def _batch(rng, dtype, batch=3, time=6):
    tokens = rng.integers(0, VOCAB, (batch, time + 1))
    return (tf.constant(tokens[:, :-1], tf.int32),
            tf.constant(tokens[:, 1:], tf.int32),
            [tf.constant(0.3 * rng.standard_normal((batch, HIDDEN)), dtype)])


@pytest.fixture(scope="module")
def float64_lm():
    """A 3-node search LM in float64 (without the batch norm, whose moving
    moments are float32 in darts_rnn.py), training and validation windows
    starting from nonzero states."""
    before = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        keras.utils.set_random_seed(1)
        space = spaces.get_space("darts_rnn", steps=STEPS)
        model = darts_rnn.build(space, _no_dropout(), seed=1,
                                batch_norm=False)
        arch = darts_alpha.ArchitectureWeights(
            (darts_lm_run.KIND,), 5, range(1, STEPS + 1), seed=3,
            init_scale=0.5, dtype=tf.float64)
        architect = darts_lm_run.RnnArchitect(model, arch, 5e-7, 0.25)
        # lr 20 scaled by a half-length window (17 / 35) would move these
        # weights far; a smaller step keeps w' near w.
        architect.learning_rate.assign(2.0)
    finally:
        # Built: the weights keep float64; the other tests make float32.
        keras.config.set_floatx(before)
    rng = np.random.default_rng(0)
    return architect, _batch(rng, tf.float64), _batch(rng, tf.float64)


def _relative(a, b):
    a = np.concatenate([np.ravel(x) for x in a])
    b = np.concatenate([np.ravel(x) for x in b])
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def _train_gradient(architect, weights, batch, alphas):
    with tf.GradientTape() as tape:
        tape.watch(weights)
        loss, _ = architect.loss(weights, batch, alphas)
    return darts_lm_run._dense(tape.gradient(loss, weights), weights)


def test_finite_difference_matches_exact_product(float64_lm):
    """At r = 1e-6 / ||v|| the central difference is the double-backprop
    product; the code's 0.01 crosses ReLU kinks (see
    darts_architect_test)."""
    architect, train, valid = float64_lm
    exact, exact_loss, _, exact_coef = architect.gradient("exact", train,
                                                          valid)
    first, _, _, one = architect.gradient("first", train, valid)
    radius = architect.radius
    try:
        architect.radius = 1e-6
        fd, fd_loss, _, fd_coef = architect.gradient("second", train, valid)
    finally:
        architect.radius = radius
    assert float(one) == 1.0
    assert float(fd_coef) == float(exact_coef)
    assert float(fd_loss) == pytest.approx(float(exact_loss), rel=1e-12)
    error = _relative(fd, exact)
    assert error < 1e-6, error
    assert _relative(first, exact) > 1e4 * error


@pytest.mark.parametrize("clip", [0.1, 0.25, 100.0])
def test_second_order_keeps_the_clip_quirks(float64_lm, clip):
    """rnn/architect.py: with c = clip / (||g|| + 1e-6), w' = w - xi (min(c,
    1) g + wd w); the implicit term is scaled by xi * c even when c > 1 (no
    clipping: _clip returns c anyway), and v = grad_w' L_val is clipped
    too. So the gradient is ``direct + (c / min(c, 1)) * s_v * (dF -
    direct)``, where F(alpha) = L_val(w'(alpha), alpha) with min(c, 1)
    held, dF its numerical derivative, direct = grad_alpha L_val at fixed
    w', and s_v = min(1, clip / (||v|| + 1e-6))."""
    architect, train, valid = float64_lm
    saved = architect.clip
    try:
        architect.clip = clip
        got, _, _, coef = architect.gradient("exact", train, valid)
    finally:
        architect.clip = saved
    weights, alphas = architect.current()
    norm = float(tf.linalg.global_norm(
        _train_gradient(architect, weights, train, alphas)))
    c = clip / (norm + 1e-6)
    assert float(coef) == pytest.approx(c, rel=1e-12)
    scale = min(c, 1.0)
    xi = float(architect.learning_rate)

    def unrolled(alpha_values):
        g = _train_gradient(architect, weights, train, alpha_values)
        return [w - xi * (scale * d + 5e-7 * w) for w, d in zip(weights, g)]

    moved = unrolled(alphas)
    with tf.GradientTape() as tape:
        tape.watch(alphas + moved)
        loss, _ = architect.loss(moved, valid, alphas)
    grads = tape.gradient(loss, alphas + moved)
    direct = grads[0].numpy()
    v_norm = float(tf.linalg.global_norm(
        darts_lm_run._dense(grads[1:], moved)))
    s_v = min(1.0, clip / (v_norm + 1e-6))
    # The three cases: g and v clipped; the code's 0.25, where g is not
    # (c amplifies) but v is; neither, c far above 1.
    assert {0.1: (c < 1, s_v < 1), 0.25: (c > 1, s_v < 1),
            100.0: (c > 10, s_v == 1.0)}[clip] == (True, True), (c, s_v)
    h = 1e-5
    for row, col in ((0, 1), (2, 4), (5, 2)):
        delta = np.zeros(alphas[0].shape)
        delta[row, col] = h
        values = [float(architect.loss(unrolled([a]), valid, [a])[0])
                  for a in (alphas[0] + delta, alphas[0] - delta)]
        numeric = (values[0] - values[1]) / (2 * h)
        implicit = (float(got[0][row, col]) - direct[row, col]) / (
            (c / scale) * s_v)
        assert implicit == pytest.approx(numeric - direct[row, col],
                                         rel=1e-5, abs=1e-9)


def test_first_order_is_the_validation_gradient_and_next_state(float64_lm):
    architect, train, valid = float64_lm
    grads, loss, outputs, _ = architect.gradient("first", train, valid)
    alpha = architect.architecture.variables_list[0]
    inputs, targets, state = valid
    with tf.GradientTape() as tape:
        weights = tf.nn.softmax(alpha, axis=-1)
        out = architect.model.forward(inputs, weights, state, training=True)
        direct = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(targets,
                                                           out.logits))
    assert float(loss) == pytest.approx(float(direct), rel=1e-12)
    np.testing.assert_allclose(grads[0], tape.gradient(direct, alpha),
                               rtol=1e-10, atol=1e-14)
    # hidden_valid carries on from the validation forward.
    np.testing.assert_allclose(outputs.state[0], out.state[0], rtol=1e-12)


def test_every_pass_draws_its_own_dropout_masks():
    """A step's passes run the seeds on and leave them for the weights'
    step (new masks); the eigenvalue monitor's gradient leaves them, so it
    is one function of alpha."""
    space = spaces.get_space("darts_rnn", steps=STEPS)
    model = darts_rnn.build(space, config_lib.LmConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN), seed=0)
    arch = darts_alpha.ArchitectureWeights((darts_lm_run.KIND,), 5,
                                           range(1, STEPS + 1), seed=0)
    architect = darts_lm_run.RnnArchitect(model, arch, 5e-7, 0.25)
    architect.learning_rate.assign(1.0)
    rng = np.random.default_rng(0)
    train, valid = _batch(rng, tf.float32), _batch(rng, tf.float32)

    def seeds():
        return [v.numpy().copy() for v in
                replica_loop.seed_generator_states(model)]

    before = seeds()
    _, alphas = architect.current()
    a = architect.alpha_gradient(valid, alphas)
    b = architect.alpha_gradient(valid, alphas)
    np.testing.assert_array_equal(a[0], b[0])
    assert all((x == y).all() for x, y in zip(seeds(), before))
    architect.gradient("first", train, valid)
    after_first = seeds()
    assert any((x != y).any() for x, y in zip(after_first, before))
    architect.gradient("second", train, valid)
    assert any((x != y).any() for x, y in zip(seeds(), after_first))


def test_windows_walk_as_train_search():
    """int(bptt) or int(bptt / 2) (probability 0.05), lr scaled by that
    over bptt, cut at the end, starting while start < n - 2; validation
    windows at the training position modulo n - 1."""
    n = 4000
    batched = np.arange(4 * n).reshape(4, n)
    windows = list(darts_lm_run.search_windows(
        batched, 35, np.random.default_rng(0)))
    starts = [s for s, _ in windows]
    lengths = {w.seq_len for _, w in windows[:-1]}
    assert lengths == {35, 17}
    assert starts[0] == 0 and starts[-1] < n - 2
    for (s, w), (t, _) in zip(windows, windows[1:]):
        assert t - s == w.seq_len and w.lr_scale == w.seq_len / 35
        np.testing.assert_array_equal(w.targets, batched[:, s + 1:t + 1])
    last_start, last = windows[-1]
    drawn = round(last.lr_scale * 35)
    assert last.seq_len == min(drawn, n - 1 - last_start)
    assert last_start + drawn >= n - 2
    fixed = list(darts_lm_run.search_windows(batched, 35, None, False))
    assert {w.seq_len for _, w in fixed[:-1]} == {35}
    inputs, targets = darts_lm_run.valid_window(batched[:, :50], 60, 35)
    # 60 % 49 = 11; 35 steps fit before the last target.
    np.testing.assert_array_equal(inputs, batched[:, 11:46])
    np.testing.assert_array_equal(targets, batched[:, 12:47])
    inputs, _ = darts_lm_run.valid_window(batched[:, :50], 40, 35)
    assert inputs.shape[1] == 9


# -- the loop ----------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus():
    return synthetic_text.synthetic_corpus(0, 3000, 600, 100)


def _config(corpus, **darts_changes):
    darts = darts_config.DartsConfig(
        arch_learning_rate=3e-3, arch_beta_1=0.9, arch_beta_2=0.999,
        arch_weight_decay=1e-3, hessian_every=1, hessian_iterations=2)
    return search_config.SearchConfig(
        space="darts_rnn", space_params={"steps": STEPS}, strategy="darts",
        dataset="synthetic_text", seed=3,
        # The search's dropouts (train_search.py).
        lm=config_lib.LmConfig(vocab_size=len(corpus.vocab), hidden_size=16,
                               embedding_dropout=0.0),
        lm_train=config_lib.LmTrainConfig(
            epochs=EPOCHS, batch_size=8, bptt=10, learning_rate=2.0,
            weight_decay=5e-7, nonmono=0, eval_batch_size=4, max_steps=4,
            log_every=2),
        darts=dataclasses.replace(darts, **darts_changes))


def _state(searcher):
    return ([v.numpy() for v in
             replica_loop.model_variables(searcher.supernet)] +
            [v.numpy() for v in searcher.architecture.variables_list])


@pytest.fixture(scope="module")
def finished(corpus, tmp_path_factory):
    logdir = tmp_path_factory.mktemp("darts_lm")
    lines = []
    config = _config(corpus)
    searcher = run.run_class(config)(config, str(logdir), corpus,
                                     lines.append)
    assert isinstance(searcher, darts_lm_run.DartsLmRun)
    result = searcher.run()
    return logdir, result, _state(searcher), lines


def _history(logdir):
    return [json.loads(line) for line in
            open(os.path.join(logdir, run.HISTORY_FILE))]


def test_history_has_one_genotype_per_epoch(finished, corpus):
    logdir, result, _, lines = finished
    records = _history(logdir)
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))
    space = _config(corpus).space_at(0)
    for record in records:
        arch = space.parse(record["tokens"])
        assert space.format(arch) == record["tokens"]
        assert record["tokens"].startswith("Genotype(recurrent=[")
        metrics = record["metrics"]
        for key in ("train_loss", "train_ppl", "alpha_loss", "valid_ppl",
                    "eigenvalue"):
            assert np.isfinite(metrics[key]), key
        assert metrics["windows"] == 4
        alpha = np.array(metrics["alpha"])
        assert alpha.shape == (darts_rnn.num_edges(STEPS), 5)
        np.testing.assert_allclose(alpha.sum(axis=1), 1.0, atol=1e-4)
        assert record["reward"] == pytest.approx(
            _config(corpus).reward_formula()(metrics["valid_ppl"]))
    assert records[0]["metrics"]["alpha"] != records[1]["metrics"]["alpha"]
    best = open(os.path.join(logdir, run.BEST_FILE)).read().strip()
    assert best == records[-1]["tokens"] == result.best_tokens
    flags = open(os.path.join(logdir, run.BEST_SPACE_FILE)).read()
    assert "--space=darts_rnn" in flags and f"--steps={STEPS}" in flags
    assert any(line.startswith(f"[epoch {EPOCHS}/{EPOCHS}] train ppl")
               for line in lines)
    assert any(line.startswith("  epoch 1 window 2: train ppl")
               for line in lines)


def test_tensorboard_has_the_darts_tags(finished):
    tags = summary_tags(finished[0])
    assert {"darts/train_loss", "darts/train_ppl", "darts/alpha_loss",
            "darts/lr", "child/valid_ppl", "alpha/recurrent",
            "derived/architecture", "derived/drawing",
            "collapse/eigenvalue"} <= tags


class _Killed(Exception):
    pass


def test_killed_run_resumes_as_if_uninterrupted(finished, corpus, tmp_path,
                                                monkeypatch):
    logdir, _, state, _ = finished
    original = darts_lm_run.DartsLmRun._record

    def dying(self, epoch, stats):
        record = original(self, epoch, stats)
        if epoch == 1:  # the history line is written, the checkpoint not
            raise _Killed
        return record

    monkeypatch.setattr(darts_lm_run.DartsLmRun, "_record", dying)
    with pytest.raises(_Killed):
        darts_lm_run.DartsLmRun(_config(corpus), str(tmp_path), corpus,
                                lambda _: None).run()
    monkeypatch.undo()
    lines = []
    searcher = darts_lm_run.DartsLmRun(_config(corpus), str(tmp_path),
                                       corpus, lines.append)
    assert lines[0] == f"resuming {tmp_path}: 1 of {EPOCHS} epochs done"
    searcher.run()
    strip = [dict(r, wall_time=None) for r in _history(tmp_path)]
    assert strip == [dict(r, wall_time=None) for r in _history(logdir)]
    for a, b in zip(_state(searcher), state):
        np.testing.assert_array_equal(a, b)


def test_config_checks(corpus):
    config = _config(corpus)
    search_config.check_search_config(config)
    with pytest.raises(ValueError, match="partial_channels, perturbation: "
                       "darts_cnn options"):
        search_config.check_search_config(_config(
            corpus, partial_channels=2, perturbation="random"))
    with pytest.raises(ValueError, match="weight_decay_mode='loss'"):
        search_config.check_search_config(dataclasses.replace(
            config, lm_train=dataclasses.replace(
                config.lm_train, weight_decay_mode="loss")))
    with pytest.raises(ValueError, match="space 'darts_rnn' builds language "
                       "models"):
        search_config.check_search_config(dataclasses.replace(
            config, dataset="dominoes"))


@pytest.mark.slow
def test_second_order_search_runs(corpus, tmp_path):
    # One node: a smaller cell to compile (the gradient itself is checked
    # above).
    config = dataclasses.replace(
        _config(corpus, order="second", hessian_every=0),
        space_params={"steps": 1})
    result = darts_lm_run.DartsLmRun(config, str(tmp_path), corpus,
                                     lambda _: None).run()
    assert len(result.history) == EPOCHS
    for record in result.history:
        assert np.isfinite(record["metrics"]["alpha_loss"])
        assert record["metrics"]["clip_coef"] > 0


@pytest.mark.slow
def test_preset_searches_and_the_genotype_retrains(tmp_path):
    """The preset from the command line at toy sizes, then the printed
    train.py command with the same sizes."""
    logdir = tmp_path / "search"
    sizes = ["--dataset=synthetic_text", "--vocab_size=257",
             "--hidden_size=16", "--batch_size=16", "--bptt=12"]
    code, out, err = run_script(
        "search.py", "--preset=darts_ptb_search", *sizes, "--epochs=1",
        "--max_steps=5", f"--logdir={logdir}")
    assert code == 0, err
    assert "derived architecture" in out
    tokens = open(logdir / run.BEST_FILE).read().strip()
    assert tokens.startswith("Genotype(recurrent=[")
    config = json.loads(open(logdir / run.CONFIG_FILE).read())
    assert config["lm_train"]["batch_size"] == 16
    assert config["lm"]["hidden_size"] == 16
    assert config["darts"]["arch_learning_rate"] == 3e-3
    command = next(line.split() for line in out.splitlines()
                   if "train.py" in line)
    assert "--preset=darts_ptb_final" in command
    at = next(i for i, word in enumerate(command)
              if word.endswith("train.py"))
    code, out, err = run_script(
        "train.py", *command[at + 1:], *sizes,
        "--epochs=1", "--max_steps=5", "--eval_batch_size=8",
        "--test_batch_size=8")
    assert code == 0, err
    assert "best valid ppl" in out
