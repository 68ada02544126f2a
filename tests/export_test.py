"""nas_tf.export and scripts/export.py: the SavedModel of a trained run runs
without nas_tf and matches the Keras model; unfinished runs and existing
export directories are refused, and a failed export leaves nothing behind.

Training run directories are written here directly (spec, checkpoint,
result), the way scripts/train.py leaves them.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_script
from nas_tf import config as config_lib
from nas_tf import export
from nas_tf import spaces
from nas_tf.training import trained_run

BIN = pathlib.Path(sys.executable).parent
NORMALIZATION = {"mean": [0.4], "std": [0.25]}


def _spec(kind, space_name, space_params, model_config, **kwargs):
    space = spaces.get_space(space_name, **space_params)
    return trained_run.TrainedModelSpec(
        kind=kind, space=space_name, space_params=space_params,
        architecture=space.format(space.sample(0)),
        model=model_config.to_dict(), **kwargs)


# The dominoes dataset's images: 14 x 14, one channel, three classes.
IMAGE_SPEC = _spec(
    trained_run.IMAGE, "nasrl_cnn", {"num_layers": 2},
    config_lib.ChildConfig(num_classes=3, image_size=14, image_channels=1),
    dataset="dominoes", normalization=NORMALIZATION)
TEXT_SPEC = _spec(
    trained_run.TEXT, "darts_rnn", {"steps": 2},
    config_lib.LmConfig(vocab_size=11, hidden_size=6),
    dataset="synthetic_text", seed=3)
AUX_SPEC = _spec(
    trained_run.IMAGE, "darts_cnn", {"steps": 2},
    config_lib.ChildConfig(num_classes=3, image_size=14, image_channels=1,
                           num_cells=3, filters=4, auxiliary=True),
    dataset="dominoes", normalization=NORMALIZATION)

IMAGES = np.random.RandomState(0).randint(0, 256, (4, 14, 14, 1),
                                          dtype=np.uint8)
TOKENS = np.random.RandomState(1).randint(0, 11, (2, 5)).astype(np.int32)


def _write_run(logdir, spec, finished=True):
    """A training run directory of ``spec`` with weights moved away from
    their initial values (so an export that skipped the checkpoint would
    not match); returns the model."""
    model = spec.build_model()
    rng = np.random.RandomState(2)
    for weight in model.weights:
        if "float" in str(weight.dtype):
            # Positive shifts keep BatchNorm variances valid.
            weight.assign(weight.numpy() + rng.uniform(0, 0.2, weight.shape))
    checkpoint = tf.train.Checkpoint(model=model,
                                     epoch=tf.Variable(1, dtype=tf.int64))
    tf.train.CheckpointManager(
        checkpoint, os.path.join(logdir, trained_run.CHECKPOINTS),
        max_to_keep=1).save()
    trained_run.write_spec(logdir, spec)
    if finished:
        trained_run.write_result(logdir, {"test_accuracy": 0.5})
    return model


def _expected_probabilities(model, images):
    mean = np.array(NORMALIZATION["mean"], np.float32)
    std = np.array(NORMALIZATION["std"], np.float32)
    outputs = model((images / np.float32(255.0) - mean) / std,
                    training=False)
    logits = outputs[0] if isinstance(outputs, list) else outputs
    return keras.ops.convert_to_numpy(keras.ops.softmax(logits))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An exported image run and language-model run, with the Keras models'
    outputs on IMAGES and TOKENS."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, spec in (("image", IMAGE_SPEC), ("text", TEXT_SPEC)):
        logdir, export_dir = str(root / name), str(root / f"{name}_export")
        model = _write_run(logdir, spec)
        result = export.export_trained_model(logdir, export_dir)
        if name == "image":
            expected = _expected_probabilities(model, IMAGES)
        else:
            expected = keras.ops.convert_to_numpy(model(TOKENS))
        out[name] = dict(logdir=logdir, export_dir=export_dir, spec=spec,
                         result=result, expected=expected)
    return out


# Runs in a fresh interpreter where nas_tf cannot be imported.
_LOAD_WITHOUT_NAS_TF = r"""
import json, sys
sys.modules["nas_tf"] = None  # the editable install would find it
try:
    import nas_tf
    sys.exit("nas_tf is importable")
except ImportError:
    pass
import numpy as np
import tensorflow as tf

image_dir, text_dir, images_path, tokens_path = sys.argv[1:]
images = np.load(images_path)
image = tf.saved_model.load(image_dir)
text = tf.saved_model.load(text_dir)
serve = image.signatures["serving_default"]
print(json.dumps({
    "float": serve(images=tf.constant(images, tf.float32))[
        "probabilities"].numpy().tolist(),
    "uint8": image.serve(tf.constant(images))[
        "probabilities"].numpy().tolist(),
    "logits": text.signatures["serving_default"](
        token_ids=tf.constant(np.load(tokens_path)))["logits"].numpy().tolist(),
    "signature": {k: v.numpy().decode() for k, v in
                  image.signatures["architecture"]().items()},
    "attributes": {k: getattr(text, k).numpy().decode()
                   for k in ("architecture", "space", "space_params")},
}))
"""


@pytest.mark.slow
def test_saved_models_run_without_nas_tf_and_match_keras(runs, tmp_path):
    np.save(tmp_path / "images.npy", IMAGES)
    np.save(tmp_path / "tokens.npy", TOKENS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_NAS_TF,
         runs["image"]["export_dir"], runs["text"]["export_dir"],
         str(tmp_path / "images.npy"), str(tmp_path / "tokens.npy")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.splitlines()[-1])
    np.testing.assert_allclose(got["float"], runs["image"]["expected"],
                               atol=1e-5)
    np.testing.assert_allclose(got["uint8"], runs["image"]["expected"],
                               atol=1e-5)
    np.testing.assert_allclose(got["logits"], runs["text"]["expected"],
                               atol=1e-5)
    assert got["signature"] == {
        "architecture": IMAGE_SPEC.architecture, "space": "nasrl_cnn",
        "space_params": json.dumps({"num_layers": 2})}
    assert got["attributes"] == {
        "architecture": TEXT_SPEC.architecture, "space": "darts_rnn",
        "space_params": json.dumps({"steps": 2})}


def test_export_result_describes_the_signatures(runs):
    image, text = runs["image"]["result"], runs["text"]["result"]
    assert image.architecture == IMAGE_SPEC.architecture
    assert image.checkpoint.endswith("ckpt-1")
    assert image.signatures == {
        "serving_default": "(images float32 [?, 14, 14, 1]) -> "
                           "probabilities float32 [?, 3]",
        "architecture": "() -> architecture string [], space string [], "
                        "space_params string []"}
    assert text.signatures["serving_default"] == (
        "(token_ids int32 [?, ?]) -> logits float32 [?, ?, 11]")


@pytest.mark.slow
def test_saved_model_cli_lists_both_signatures(runs):
    cli = BIN / "saved_model_cli"
    command = ([str(cli)] if cli.exists() else
               [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"])
    result = subprocess.run(
        command + ["show", "--all", "--dir", runs["image"]["export_dir"]],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for text in ("signature_def['serving_default']",
                 "signature_def['architecture']", "inputs['images']",
                 "outputs['probabilities']", "outputs['architecture']",
                 "outputs['space']"):
        assert text in result.stdout


def test_auxiliary_head_is_left_out(tmp_path):
    logdir = str(tmp_path / "run")
    model = _write_run(logdir, AUX_SPEC)
    export.export_trained_model(logdir, str(tmp_path / "out"))
    loaded = tf.saved_model.load(str(tmp_path / "out"))
    got = loaded.signatures["serving_default"](
        images=tf.constant(IMAGES, tf.float32))["probabilities"]
    np.testing.assert_allclose(got, _expected_probabilities(model, IMAGES),
                               atol=1e-5)


class _ListOfWeights(keras.layers.Layer):
    def build(self, input_shape):
        self.kernels = [self.add_weight((input_shape[-1], 2), name="kernel")]

    def call(self, x):
        return x @ self.kernels[0]


def test_weights_kept_in_a_list_are_reported_missing_from_checkpoints():
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(2, name="dense")
    listed = _ListOfWeights(name="listed")
    model = keras.Model(inputs, [dense(inputs), listed(inputs)])
    assert export.weights_missing_from_checkpoints(model) == [
        "listed/kernel"]


def test_refuses_a_run_that_has_not_finished(tmp_path):
    logdir = str(tmp_path / "run")
    trained_run.write_spec(logdir, IMAGE_SPEC)
    with pytest.raises(ValueError, match=r"run.* has not finished.*"
                       r"result\.json.*scripts/train\.py"):
        export.export_trained_model(logdir, str(tmp_path / "out"))
    assert os.listdir(tmp_path) == ["run"]


def test_refuses_a_directory_without_a_training_run(tmp_path):
    with pytest.raises(ValueError, match="holds no training run"):
        export.export_trained_model(str(tmp_path), str(tmp_path / "out"))
    assert os.listdir(tmp_path) == []


def test_refuses_an_export_dir_that_holds_the_run(tmp_path):
    logdir = tmp_path / "run"
    trained_run.write_spec(str(logdir), IMAGE_SPEC)
    trained_run.write_result(str(logdir), {})
    for export_dir in (logdir, tmp_path):
        with pytest.raises(ValueError, match="is \\(or contains\\) the "
                           "training run"):
            export.export_trained_model(str(logdir), str(export_dir),
                                        overwrite=True)
    assert sorted(os.listdir(logdir)) == ["result.json", "train_config.json"]


def test_existing_export_dir_is_replaced_only_with_overwrite(runs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(ValueError, match="already exists.*--overwrite"):
        export.export_trained_model(runs["image"]["logdir"], str(out))
    assert os.listdir(out) == ["old.txt"]
    export.export_trained_model(runs["image"]["logdir"], str(out),
                                overwrite=True)
    assert "saved_model.pb" in os.listdir(out)
    assert "old.txt" not in os.listdir(out)
    assert os.listdir(tmp_path) == ["out"]  # nothing set aside is left


@pytest.mark.parametrize("existing", [False, True])
def test_failed_save_leaves_no_partial_export(runs, tmp_path, monkeypatch,
                                              existing):
    def failing_save(module, path, signatures=None):
        open(os.path.join(path, "saved_model.pb"), "w").close()
        raise RuntimeError("disk full")

    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "old.txt").write_text("old")
    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_trained_model(runs["image"]["logdir"], str(out),
                                    overwrite=True)
    assert os.listdir(tmp_path) == (["out"] if existing else [])
    if existing:
        assert os.listdir(out) == ["old.txt"]


def _script(*args, cwd):
    return run_script("export.py", *args, timeout=300, cwd=cwd)


@pytest.mark.slow
def test_script_prints_what_it_exported(runs, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = _script(f"--logdir={runs['image']['logdir']}",
                                   f"--export_dir={out}", cwd=tmp_path)
    assert code == 0, stderr
    assert f"to {out}" in stdout
    assert "serving_default: (images float32 [?, 14, 14, 1])" in stdout
    assert "architecture: () -> architecture string []" in stdout
    assert f"architecture: {IMAGE_SPEC.architecture}\n" in stdout
    assert (out / "saved_model.pb").exists()


@pytest.mark.slow
def test_script_error_is_one_line(tmp_path):
    logdir = tmp_path / "run"
    trained_run.write_spec(str(logdir), IMAGE_SPEC)
    code, stdout, stderr = _script(f"--logdir={logdir}",
                                   f"--export_dir={tmp_path}/out",
                                   cwd=tmp_path)
    assert code == 2
    # The whole of stderr is the one line: TensorFlow's start-up notices
    # are kept out of the scripts' output.
    errors = stderr.splitlines()
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"export.py: error: {logdir} holds a "
                                f"training run that has not finished")
    assert sorted(os.listdir(tmp_path)) == ["run"]


@pytest.mark.slow
def test_classify_refuses_a_language_model_export_in_one_line(runs,
                                                              tmp_path):
    code, stdout, stderr = run_script(
        "classify.py", f"--export_dir={runs['text']['export_dir']}",
        timeout=300, cwd=tmp_path)
    assert code == 2 and stdout == ""
    assert stderr.splitlines() == [
        f"classify.py: error: --export_dir={runs['text']['export_dir']} "
        "holds a language model, not an image classifier; classify.py needs "
        "an export of an image model"]
