"""Every published architecture and random samples of every space build at a
small size (image classifiers, or language models for recurrent spaces), run
forward and one gradient step, and round-trip their tokens and their Keras
config."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf import config
from nas_tf import spaces
from nas_tf.builders import ChildModel
from nas_tf.builders import LanguageModel
from nas_tf.builders import build_child
from nas_tf.builders import build_model
from nas_tf.spaces.published import PUBLISHED

SMALL = {
    "darts_cnn": dict(num_cells=5, filters=8, auxiliary=True,
                      drop_path_rate=0.2),
    "nasnet": dict(num_cells=3, filters=8, stem_filters=12, auxiliary=True,
                   drop_path_rate=0.3, dropout=0.1),
    "enas_micro": dict(num_cells=3, filters=8, auxiliary=True,
                       drop_path_rate=0.4, dropout=0.2),
    "enas_macro": dict(filters=8, dropout=0.1),
    "nasrl_cnn": dict(),
}
SPACE_PARAMS = {
    "enas_macro": dict(num_layers=6),
    "nasrl_cnn": dict(num_layers=5, predict_strides=True, pool_layers=(2,)),
}
IMAGENET_STEM = dict(stem="imagenet", image_size=32, num_classes=7)


def _is_recurrent(space_name):
    return spaces.SPACES.get(space_name).family == "recurrent"


def _cases(recurrent=False):
    """Every published architecture, two samples of every space, and the
    ImageNet stems; the second sample and the stems only in the full run
    (``slow``)."""
    cases = []
    for name, entry in sorted(PUBLISHED.items()):
        if name != "DARTS":  # an alias of DARTS_V2
            cases.append((entry.space, entry.params, name, {}))
    slow = []
    for space_name in spaces.SPACES.names():
        params = SPACE_PARAMS.get(space_name, {})
        space = spaces.get_space(space_name, **params)
        for seed, into in ((1, cases), (2, slow)):
            into.append((space_name, params,
                         space.format(space.sample(seed)), {}))
    slow.append(("nasnet", {}, "NASNet-A", IMAGENET_STEM))
    slow.append(("darts_cnn", {}, "DARTS_V2", IMAGENET_STEM))
    return ([c for c in cases if _is_recurrent(c[0]) == recurrent] +
            [pytest.param(*c, marks=pytest.mark.slow) for c in slow
             if _is_recurrent(c[0]) == recurrent])


def _loss(outputs, labels):
    outputs = outputs if isinstance(outputs, list) else [outputs]
    weights = [1.0, 0.4]  # auxiliary weight of all three originals
    losses = [tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True)) for logits in outputs]
    return sum(w * l for w, l in zip(weights, losses))


@pytest.mark.parametrize("space_name, params, text, overrides", _cases(),
                         ids=lambda v: str(v)[:24])
def test_build_forward_step_and_round_trips(space_name, params, text,
                                            overrides):
    space = spaces.get_space(space_name, **params)
    arch = spaces.resolve_architecture(space, text)
    assert space.parse(space.format(arch)) == arch
    child = config.ChildConfig(
        **{"image_size": 16, **SMALL[space_name], **overrides})
    model = build_child(space, arch, child)

    images = tf.random.uniform((4, child.image_size, child.image_size, 3))
    labels = tf.constant([0, 1, 2, 3])
    logits = _logits(model, images)
    assert len(model.outputs) == (2 if child.auxiliary else 1)
    assert logits.shape == (4, child.num_classes)
    assert np.all(np.isfinite(logits))

    model.set_drop_path_progress(0.5)
    before = [v.numpy().copy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = _loss(model(images, training=True), labels)
    grads = tape.gradient(loss, model.trainable_variables)
    assert np.isfinite(loss.numpy())
    assert all(g is not None for g in grads)
    tf.keras.optimizers.SGD(0.1).apply_gradients(
        zip(grads, model.trainable_variables))
    changed = [not np.array_equal(b, v.numpy())
               for b, v in zip(before, model.trainable_variables)]
    assert sum(changed) > len(changed) // 2

    # Rebuilt from its config as a saved file holds it (JSON), the model is
    # the same network: as many weights, and the same outputs from them.
    clone = ChildModel.from_config(json.loads(json.dumps(model.get_config())))
    assert clone.architecture == arch
    assert clone.count_params() == model.count_params()
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(_logits(clone, images), _logits(model, images),
                               rtol=1e-5, atol=1e-5)


SMALL_LM = config.LmConfig(vocab_size=30, hidden_size=8, output_dropout=0.3,
                           hidden_dropout=0.2, x_dropout=0.3,
                           input_dropout=0.1, embedding_dropout=0.1)


@pytest.mark.parametrize("space_name, params, text, overrides",
                         _cases(recurrent=True), ids=lambda v: str(v)[:24])
def test_language_model_step_and_round_trips(space_name, params, text,
                                             overrides):
    del overrides
    space = spaces.get_space(space_name, **params)
    arch = spaces.resolve_architecture(space, text)
    assert space.parse(space.format(arch)) == arch
    model = build_model(space, arch, SMALL_LM, seed=0)
    tokens = tf.constant(np.random.default_rng(0).integers(0, 30, (3, 7)))
    out = model.forward(tokens)
    assert out.logits.shape == (3, 7, 30)
    assert np.all(np.isfinite(out.logits))
    with tf.GradientTape() as tape:
        logits = model.forward(tokens[:, :-1], out.state,
                               training=True).logits
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tokens[:, 1:], logits))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)
    assert np.isfinite(loss.numpy())

    clone = LanguageModel.from_config(model.get_config())
    clone.build()
    clone.set_weights(model.get_weights())
    assert clone.architecture == arch
    np.testing.assert_allclose(clone(tokens), model(tokens), rtol=1e-5,
                               atol=1e-5)


def _logits(model, images):
    outputs = model(images, training=False)
    return np.asarray(outputs[0] if isinstance(outputs, list) else outputs)


def test_keras_file_round_trip(tmp_path):
    space = spaces.get_space("darts_cnn")
    arch = spaces.resolve_architecture(space, "DARTS_V1")
    model = build_child(space, arch, config.ChildConfig(
        num_cells=3, filters=8, image_size=16))
    path = str(tmp_path / "child.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ChildModel)
    assert loaded.architecture == arch
    images = tf.random.uniform((2, 16, 16, 3))
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(),
                               rtol=1e-5, atol=1e-5)
