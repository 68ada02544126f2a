"""Mixed precision and XLA: the dtype policy around model building, dynamic
loss scaling in the custom loop, XLA-compiled steps, and the run
directories that record them."""

import dataclasses
import inspect
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf import config as config_lib
from nas_tf import controller as controller_lib
from nas_tf import distribute
from nas_tf import spaces
from nas_tf.data import dominoes
from nas_tf.data import images
from nas_tf.controller import reinforce
from nas_tf.search import children
from nas_tf.search import enas_config
from nas_tf.search import enas_run
from nas_tf.search import run
from nas_tf.search import search_config
from nas_tf.training import child_trainer
from nas_tf.training import final_training
from nas_tf.training import image_trainer
from nas_tf.training import momentum_sgd
from nas_tf.training import precision
from nas_tf.training import replica_loop
from nas_tf.training import schedules
from nas_tf.training import trained_run

BF16 = precision.PrecisionConfig(mixed_precision="mixed_bfloat16")


@pytest.fixture(scope="module")
def data():
    return dominoes.generate_dominoes(seed=0, num_train=256, num_valid=96,
                                      num_test=32)


def test_precision_config_names_a_bad_policy_and_the_allowed_ones():
    with pytest.raises(ValueError, match="mixed_precision='float16'; "
                       "allowed: float32, mixed_float16, mixed_bfloat16"):
        precision.PrecisionConfig(mixed_precision="float16")
    assert precision.PrecisionConfig("mixed_float16").loss_scaled
    assert not BF16.loss_scaled


def test_the_dtype_policy_is_restored_even_when_building_fails():
    with pytest.raises(RuntimeError, match="cannot be built"):
        with precision.dtype_policy("mixed_bfloat16"):
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError("cannot be built")
    assert keras.config.dtype_policy().name == "float32"


def test_loss_scale_halves_on_a_non_finite_step_and_doubles_after_growth():
    scale = precision.DynamicLossScale(initial_scale=8.0, growth_steps=3)
    # (gradients finite?, scale after, finite steps counted after)
    for finite, expected, count in [
            (True, 8.0, 1), (True, 8.0, 2), (True, 16.0, 0), (False, 8.0, 0),
            (True, 8.0, 1), (True, 8.0, 2), (False, 4.0, 0), (True, 4.0, 1)]:
        scale.update(tf.constant(finite))
        assert (float(scale.scale), int(scale.finite_steps)) == (expected,
                                                                 count)
    # The defaults are Keras's LossScaleOptimizer's.
    keras_defaults = inspect.signature(
        keras.optimizers.LossScaleOptimizer).parameters
    default = precision.DynamicLossScale()
    assert float(default.scale) == keras_defaults["initial_scale"].default
    assert default.growth_steps == \
        keras_defaults["dynamic_growth_steps"].default
    np.testing.assert_allclose(
        [g.numpy() for g in scale.unscale([tf.constant([8.0, -2.0])])],
        [[2.0, -0.5]])


def _dense_model():
    keras.utils.set_random_seed(4)
    return keras.Sequential([keras.Input((14, 14, 1)),
                             keras.layers.Conv2D(3, 3),
                             keras.layers.Flatten(), keras.layers.Dense(3)])


def test_a_non_finite_gradient_on_one_replica_skips_the_step_everywhere():
    # float32 arithmetic with a loss scale: the scaling itself is exact (a
    # power of two), so the first step equals the unscaled one.
    strategy = distribute.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    rng = np.random.default_rng(0)
    batch = (rng.normal(size=(8, 14, 14, 1)).astype(np.float32),
             rng.integers(0, 3, 8).astype(np.int32))
    poisoned = batch[0].copy()
    poisoned[6, 2, 2, 0] = np.inf  # in the second replica's half only

    def trainer(loss_scale):
        with strategy.scope():
            model = _dense_model()
            optimizer = momentum_sgd.MomentumSgd(
                model.trainable_variables, 0.1, weight_decay=1e-3,
                loss_scale=loss_scale)
        train_epoch = replica_loop.compile_train_epoch(
            strategy, model, lambda outputs, labels:
            replica_loop.cross_entropy(labels, outputs, 8),
            model.trainable_variables, optimizer)

        def step(images_):
            return train_epoch(tf.data.Dataset.from_tensors(
                (images_, batch[1])), 0)[0]

        return model, optimizer, step

    def state(scale):
        # Every replica's copy agrees.
        copies = {(float(s), int(n)) for s, n in zip(
            strategy.experimental_local_results(scale.scale),
            strategy.experimental_local_results(scale.finite_steps))}
        assert len(copies) == 1
        return copies.pop()

    plain, _, plain_step = trainer(None)
    with strategy.scope():
        scale = precision.DynamicLossScale(initial_scale=8.0, growth_steps=2)
    model, optimizer, step = trainer(scale)
    loss = step(batch[0])
    np.testing.assert_allclose(float(loss), float(plain_step(batch[0])),
                               rtol=1e-6)  # the unscaled loss is reported
    for a, b in zip(model.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    assert state(scale) == (8.0, 1)

    before = [v.numpy() for v in model.weights + optimizer.accumulators]
    assert not np.isfinite(float(step(poisoned)))
    for a, b in zip(before, model.weights + optimizer.accumulators):
        np.testing.assert_array_equal(a, b.numpy())  # no update, no decay
    assert state(scale) == (4.0, 0)

    step(batch[0])
    step(batch[0])
    assert state(scale) == (8.0, 0)
    assert all(np.isfinite(v.numpy()).all() for v in model.weights)


def _child_config(epochs=4):
    return child_trainer.ChildTrainConfig(
        epochs=epochs, batch_size=32, learning_rate=0.05, reward_epochs=1,
        augment=False)


@pytest.mark.slow
def test_a_mixed_bfloat16_child_trains_like_the_float32_one(data,
                                                           monkeypatch):
    trained = {}
    original = child_trainer.train_child

    def keep(model, *args, precision):
        result = original(model, *args, precision=precision)
        trained[precision.mixed_precision] = (model, result)
        return result

    monkeypatch.setattr(children.child_trainer, "train_child", keep)
    config = search_config.SearchConfig(
        space="nasrl_cnn", space_params={"num_layers": 2}, dataset="dominoes",
        child_train=_child_config())
    space = config.space_at(0)
    arch = space.sample(1)
    for policy in ("float32", "mixed_bfloat16"):
        evaluator = children.ChildEvaluator(
            dataclasses.replace(config, precision=precision.PrecisionConfig(
                mixed_precision=policy)),
            data, distribute.make_strategy("one_device"), log=print)
        assert evaluator.evaluate(space, arch, 0)["status"] == children.OK
        # Nothing leaks to the next model.
        assert keras.config.dtype_policy().name == "float32"

    model, mixed = trained["mixed_bfloat16"]
    assert {layer.compute_dtype for layer in model.layers
            if layer.weights} == {"bfloat16"}
    assert {v.dtype for v in model.weights} == {"float32"}
    logits = model(data.valid_images[:4], training=False)
    assert logits.dtype == tf.bfloat16
    loss = replica_loop.cross_entropy(data.valid_labels[:4], logits, 4)
    assert loss.dtype == tf.float32
    # Measured: 1.124 -> 0.952 in both precisions.
    assert all(a > b for a, b in zip(mixed.train_loss, mixed.train_loss[1:]))
    assert mixed.train_loss[-1] < mixed.train_loss[0] - 0.1
    _, full = trained["float32"]
    np.testing.assert_allclose(mixed.train_loss, full.train_loss, rtol=0.02)
    # Validation accuracy after the last epoch, 96 images: within 0.1 of the
    # float32 child's (measured: 0.635 both; chance is 1/3).
    assert full.valid_accuracy[-1] > 0.5
    assert abs(mixed.valid_accuracy[-1] - full.valid_accuracy[-1]) <= 0.1


@pytest.mark.slow
def test_jit_compiled_steps_train_as_the_uncompiled_ones(data, monkeypatch):
    compiled = []
    original = replica_loop._maybe_jit

    def spy(replica_fn, jit_compile):
        compiled.append(jit_compile)
        return original(replica_fn, jit_compile)

    monkeypatch.setattr(replica_loop, "_maybe_jit", spy)
    space = spaces.get_space("nasrl_cnn", num_layers=2)
    arch = space.sample(1)
    results = []
    for jit in (False, True):
        keras.utils.set_random_seed(2)
        strategy = distribute.make_strategy("one_device")
        with strategy.scope():
            model = children.builders.build_model(
                space, arch, config_lib.ChildConfig(
                    num_classes=data.num_classes, image_size=data.image_size,
                    image_channels=data.image_channels))
        results.append(child_trainer.train_child(
            model, data, _child_config(epochs=2), strategy, seed=0,
            precision=precision.PrecisionConfig(jit_compile=jit)))
    # The training and the evaluation step of the second child are XLA's.
    assert compiled == [False, False, True, True]
    plain, xla = results
    # XLA orders float32 sums its own way: equal to 1e-3 after 16 steps.
    np.testing.assert_allclose(xla.train_loss, plain.train_loss, rtol=1e-3)
    assert abs(xla.valid_accuracy[-1] - plain.valid_accuracy[-1]) <= \
        2 / len(data.valid_labels)


def test_an_op_xla_cannot_compile_stops_with_an_error_naming_the_step():
    class Unsupported(keras.layers.Layer):
        def call(self, x):  # a string op: no XLA kernel
            return x + tf.strings.to_number(tf.strings.as_string(x[:1, :1]))

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), Unsupported(),
                              keras.layers.Dense(2)])
    strategy = tf.distribute.get_strategy()
    optimizer = momentum_sgd.MomentumSgd(model.trainable_variables, 0.1)
    train_epoch = replica_loop.compile_train_epoch(
        strategy, model, lambda outputs, labels: replica_loop.cross_entropy(
            labels, outputs, 4), model.trainable_variables, optimizer,
        jit_compile=True)
    batch = tf.data.Dataset.from_tensors((tf.ones([4, 3]),
                                          tf.zeros([4], tf.int32)))
    with pytest.raises(precision.XlaCompileError,
                       match="XLA cannot compile the training step.*"
                       "without --jit_compile"):
        train_epoch(batch, 0)


def _request(**precision_fields):
    space = spaces.get_space("nasrl_cnn", num_layers=2)
    return final_training.TrainingRequest(
        space=space, arch=space.sample(1), dataset="dominoes", data_dir=None,
        model=config_lib.ChildConfig(),
        recipe=image_trainer.ImageTrainConfig(
            epochs=3, batch_size=32, steps_per_epoch=3, eval_every=3,
            schedule=schedules.LrSchedule(kind="cosine", learning_rate=0.05)),
        distribute="one_device",
        precision=precision.PrecisionConfig(**precision_fields))


class _Interrupt(Exception):
    pass


def _finite_steps(logdir):
    reader = tf.train.load_checkpoint(os.path.join(
        logdir, trained_run.CHECKPOINTS))
    return int(reader.get_tensor(
        "optimizer/loss_scale/finite_steps/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.mark.slow
def test_a_mixed_float16_run_resumes_with_its_loss_scale(data, tmp_path):
    # float16 convolutions are slow on CPU: a small model, trained by the
    # final trainer, stopped after epoch 2 of 3 and resumed.
    strategy = distribute.make_strategy("one_device")
    mixed = precision.PrecisionConfig(mixed_precision="mixed_float16")
    config = image_trainer.ImageTrainConfig(
        epochs=3, batch_size=32, steps_per_epoch=3, eval_every=3,
        augment=False,
        schedule=schedules.LrSchedule(kind="cosine", learning_rate=0.05))
    final = images.without_validation(data)

    def trainer(logdir, epochs=3):
        with strategy.scope(), precision.dtype_policy(mixed.mixed_precision):
            model = _dense_model()
        assert model.layers[0].compute_dtype == "float16"
        return image_trainer.ImageTrainer(
            model, final, dataclasses.replace(config, epochs=epochs),
            strategy, logdir, log=lambda line: None, precision=mixed)

    whole = trainer(str(tmp_path / "whole"))
    whole.run()
    assert keras.config.dtype_policy().name == "float32"
    assert _finite_steps(whole.logdir) == 9  # 3 epochs of 3 finite steps
    cut = str(tmp_path / "cut")
    trainer(cut, epochs=2).run()
    resumed = trainer(cut)
    resumed.run()
    assert _finite_steps(cut) == 9  # the scale's state was restored
    assert float(resumed.optimizer.loss_scale.scale) == 2.0 ** 15
    for a, b in zip(whole.model.weights, resumed.model.weights):
        assert a.dtype == "float32"
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.slow
def test_final_training_in_mixed_bfloat16_records_it_and_refuses_float32(
        tmp_path):
    logdir = str(tmp_path)
    result = final_training.train(
        _request(mixed_precision="mixed_bfloat16"), logdir,
        log=lambda line: None)
    assert keras.config.dtype_policy().name == "float32"
    assert result["test_accuracy"] > 0
    spec = trained_run.read_spec(logdir)
    assert spec.precision == {"mixed_precision": "mixed_bfloat16",
                              "jit_compile": False}
    # The exported model builds in float32 from the float32 weights.
    model = spec.build_model()
    trained_run.restore_weights(model, logdir)
    assert model.compute_dtype == "float32"
    with pytest.raises(ValueError, match="different precision"):
        final_training.check_logdir(logdir, _request())


def test_training_runs_from_before_the_precision_field_resume_in_float32(
        tmp_path):
    spec = json.loads(final_training._spec(_request(), _request().model)
                      .to_json())
    del spec["precision"]
    os.makedirs(tmp_path / trained_run.CHECKPOINTS)
    with open(tmp_path / trained_run.TRAIN_CONFIG, "w") as f:
        json.dump(spec, f)
    tf.train.Checkpoint(epoch=tf.Variable(1)).save(
        str(tmp_path / trained_run.CHECKPOINTS / "ckpt"))
    final_training.check_logdir(str(tmp_path), _request())
    with pytest.raises(ValueError, match="different precision"):
        final_training.check_logdir(
            str(tmp_path), _request(mixed_precision="mixed_bfloat16"))


def test_search_runs_from_before_the_precision_field_resume_in_float32(
        tmp_path):
    config = search_config.SearchConfig(
        space="nasrl_cnn", space_params={"num_layers": 2}, dataset="dominoes")
    written = json.loads(config.to_json())
    del written["precision"]
    with open(tmp_path / run.CONFIG_FILE, "w") as f:
        json.dump(written, f)
    assert run.check_run_directory(str(tmp_path), config)
    assert search_config.SearchConfig.from_json(
        json.dumps(written)).precision == precision.PrecisionConfig()
    with pytest.raises(ValueError, match=r"changed: precision\)"):
        run.check_run_directory(str(tmp_path), dataclasses.replace(
            config, precision=BF16))


def test_language_model_searches_refuse_mixed_precision_and_xla():
    for precision_config in (BF16, precision.PrecisionConfig(
            jit_compile=True)):
        config = search_config.SearchConfig(
            space="nasrl_rnn", space_params={"base": 4},
            dataset="synthetic_text", precision=precision_config)
        with pytest.raises(ValueError,
                           match="language models train in float32"):
            search_config.check_search_config(config)


def test_the_enas_micro_supernet_refuses_xla_but_takes_mixed_precision():
    config = search_config.SearchConfig(
        space="enas_micro", space_params={"num_nodes": 2}, strategy="enas",
        dataset="dominoes", precision=precision.PrecisionConfig(
            mixed_precision="mixed_bfloat16", jit_compile=True))
    with pytest.raises(ValueError, match="not offered for enas_micro"):
        search_config.check_search_config(config)
    search_config.check_search_config(dataclasses.replace(config,
                                                          precision=BF16))


@pytest.mark.slow
def test_the_enas_supernet_trains_in_mixed_bfloat16(data, tmp_path):
    train = image_trainer.ImageTrainConfig(
        epochs=1, batch_size=16, steps_per_epoch=4, grad_clip=0.0,
        schedule=schedules.LrSchedule(kind="constant", learning_rate=0.05))
    # The micro supernet: its shared-weight BatchNorm takes 16-bit images
    # with float32 scale and offset.
    config = search_config.SearchConfig(
        space="enas_micro", space_params={"num_nodes": 2}, strategy="enas",
        dataset="dominoes", seed=1,
        controller=controller_lib.CONTROLLER_PRESETS["enas_micro"],
        reinforce=dataclasses.replace(
            reinforce.REINFORCE_PRESETS["enas_micro"], num_aggregate=2),
        child=config_lib.ChildConfig(num_cells=1, filters=4),
        enas=enas_config.EnasConfig(train=train, controller_train_steps=1,
                                    derive_samples=2),
        reward="acc", precision=BF16)
    lines = []
    searcher = enas_run.EnasRun(config, str(tmp_path), data, lines.append)
    searcher.run()
    assert keras.config.dtype_policy().name == "float32"
    supernet = searcher.supernet
    assert "bfloat16" in {layer.compute_dtype
                          for layer in supernet._flatten_layers()}
    assert {v.dtype for v in supernet.weights} == {"float32"}
    # The controller is built outside the policy: float32 throughout.
    assert {layer.compute_dtype for layer in
            searcher.controller._flatten_layers()} == {"float32"}
    assert any(line.startswith("[epoch 1/1] shared weights: loss ")
               for line in lines)
