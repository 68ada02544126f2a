"""Streamed ImageNet: the TFDS stream (on tfds.testing.mock_data, whose
imagenet2012 images are 5 to 49 pixels high and wide, rarely square), its
fast failure when the data is missing, and train.py with the ImageNet
presets on mocked data, exported. Nothing here may touch the network."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from conftest import ROOT
from conftest import run_script
from conftest import script_env
from nas_tf import config as config_lib
from nas_tf import spaces
from nas_tf.data import datasets
from nas_tf.data import imagenet_preprocessing
from nas_tf.data import streaming_images
from nas_tf.training import final_training
from nas_tf.training import image_trainer
from nas_tf.training import streaming_trainer
from nas_tf.training import trained_run

pytestmark = pytest.mark.usefixtures("no_network")

ARCHIVES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
NUM_EXAMPLES = 10


@pytest.fixture
def manual_dir(tmp_path):
    """A manual download directory with (empty) ImageNet archives: enough
    for the check; mock_data makes preparing a no-op."""
    folder = tmp_path / "manual"
    folder.mkdir()
    for name in ARCHIVES:
        (folder / name).write_bytes(b"")
    return str(folder)


def _open(kind, manual_dir, size=16):
    return streaming_images.open_tfds_stream(
        "imagenet2012", size, kind, manual_dir=manual_dir)


def test_imagenet_is_streamed_at_the_networks_size():
    assert datasets.is_streamed("imagenet2012")
    assert not datasets.is_streamed("cifar10")
    assert not datasets.is_streamed("dominoes")
    assert datasets.image_dataset_spec("imagenet2012") == (None, 3, 1000)
    assert streaming_images.default_preprocessing("nasnet") == "inception"
    assert streaming_images.default_preprocessing("darts_cnn") == "darts"


@pytest.mark.parametrize("kind", imagenet_preprocessing.KINDS)
def test_stream_batches_are_drawn_from_seed_and_epoch(manual_dir, kind):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        data = _open(kind, manual_dir)
        raw = [tuple(ex["image"].shape)
               for ex in data.builder.as_dataset(split="train")]

        def epoch(seed, number):
            return [(x.numpy(), y.numpy())
                    for x, y in data.train_dataset(4, seed, number)]

        first, again, later = epoch(1, 0), epoch(1, 0), epoch(1, 1)
    assert len({shape[:2] for shape in raw}) > 1  # sizes vary
    assert any(h != w for h, w, _ in raw)
    assert (data.num_train_examples, data.num_eval_examples) == (
        NUM_EXAMPLES, NUM_EXAMPLES)
    assert (data.num_classes, data.image_channels, data.eval_split) == (
        1000, 3, "validation")
    # 10 // 4 batches, the partial one dropped.
    assert len(first) == 2
    for (x, y), (x2, y2) in zip(first, again):
        assert x.shape == (4, 16, 16, 3) and x.dtype == np.float32
        assert y.dtype == np.int32 and ((0 <= y) & (y < 1000)).all()
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, later))
    mean, std = imagenet_preprocessing.normalization(kind)
    np.testing.assert_array_equal(data.mean, np.float32(mean))
    np.testing.assert_array_equal(data.std, np.float32(std))


def test_evaluation_covers_the_validation_split_once_in_order(manual_dir):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        data = _open("inception", manual_dir)
        stored = list(data.builder.as_dataset(
            split="validation",
            decoders={"image": tfds.decode.SkipDecoding()}))
        batches = list(data.eval_dataset(4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    labels = np.concatenate([y.numpy() for _, y in batches])
    np.testing.assert_array_equal(labels,
                                  [int(ex["label"]) for ex in stored])
    # Each input is the evaluation crop of the stored (JPEG) image.
    expected = imagenet_preprocessing.eval_image(
        tf.io.decode_jpeg(stored[5]["image"]), "inception", 16)
    np.testing.assert_allclose(batches[1][0][1], expected, atol=1e-6)


def test_bad_stream_arguments_are_named(manual_dir):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        with pytest.raises(ValueError, match="'vgg'; allowed: darts"):
            _open("vgg", manual_dir)
        data = _open("darts", manual_dir)
        with pytest.raises(ValueError, match="batch_size=11; allowed: 1..10"):
            data.train_dataset(11, seed=0)
    with pytest.raises(ValueError, match="cutout=16: streamed"):
        streaming_trainer.StreamingImageTrainer(
            None, data, image_trainer.ImageTrainConfig(cutout=16), None, "")


def _request(tmp_path, **kwargs):
    space = spaces.get_space("darts_cnn")
    return final_training.TrainingRequest(
        space=space, arch=spaces.resolve_architecture(space, "DARTS_V2"),
        dataset="imagenet2012", data_dir=str(tmp_path / "tfds"),
        model=config_lib.ChildConfig(stem="imagenet", image_size=224),
        recipe=image_trainer.ImageTrainConfig(), distribute="one_device",
        **kwargs)


def test_missing_imagenet_fails_at_once_saying_how_to_provide_it(tmp_path):
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as error:
        final_training.train(_request(tmp_path), str(tmp_path / "run"),
                             log=lambda line: None)
    assert time.monotonic() - start < 10
    message = str(error.value)
    for hint in ("'imagenet2012' is not prepared", str(tmp_path / "tfds"),
                 str(tmp_path / "tfds" / "downloads" / "manual"),
                 *ARCHIVES, "image-net.org", "manual_dir", "data_dir",
                 "download_and_prepare"):
        assert hint in message
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "tfds" / "imagenet2012").exists()
    # A manual directory holding one archive: the other is named missing.
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / ARCHIVES[0]).write_bytes(b"")
    with pytest.raises(FileNotFoundError,
                       match=f"prepared from {ARCHIVES[1]}, which {manual}"):
        streaming_images.open_tfds_stream(
            "imagenet2012", 224, "darts", data_dir=str(tmp_path / "tfds"),
            manual_dir=str(manual))


# train.py as a user runs it, inside tfds.testing.mock_data.
_TRAIN_ON_MOCKED_DATA = r'''
import runpy
import sys

import tensorflow_datasets as tfds

sys.path.insert(0, "scripts")
sys.argv = ["scripts/train.py"] + sys.argv[1:]
with tfds.testing.mock_data(num_examples=8):
    runpy.run_path("scripts/train.py", run_name="__main__")
'''

# nasnet --num_blocks=2: per block input1, input2, op1, op2, combine.
SMALL_NASNET = "0 1 9 0 0 2 1 4 0 0 0 1 5 8 0 2 0 0 4 0"

# Tiny networks for the presets: few cells and filters, 32 x 32 inputs, one
# step of one epoch.
_TINY = ["--image_size=32", "--filters=4", "--epochs=1", "--batch_size=4",
         "--steps_per_epoch=1", "--distribute=one_device"]


def _train_preset(preset, arch, logdir, manual_dir, *extra):
    result = subprocess.run(
        [sys.executable, "-c", _TRAIN_ON_MOCKED_DATA, f"--preset={preset}",
         f"--arch={arch}", f"--logdir={logdir}", f"--manual_dir={manual_dir}",
         *_TINY, *extra],
        cwd=ROOT, env=script_env(), capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr
    assert "on imagenet2012: 8 train, 8 test images" in result.stdout
    assert "epoch 1/1" in result.stdout and "test acc" in result.stdout
    return trained_run.read_spec(str(logdir))


@pytest.mark.slow
def test_darts_imagenet_preset_trains_and_exports_what_it_trained_on(
        tmp_path, manual_dir):
    logdir = tmp_path / "darts"
    spec = _train_preset("darts_imagenet_final", "DARTS_V2", logdir,
                         manual_dir, "--num_cells=2")
    assert spec.preprocessing == "darts"
    mean, std = imagenet_preprocessing.normalization("darts")
    assert spec.normalization == {"mean": [float(np.float32(v)) for v in mean],
                                  "std": [float(np.float32(v)) for v in std]}
    assert (spec.model["image_size"], spec.model["num_classes"],
            spec.model["stem"]) == (32, 1000, "imagenet")
    result = json.loads((logdir / trained_run.RESULT).read_text())
    assert result["preset"] == "darts_imagenet_final"
    assert "imagenet_preprocessing=darts" in (logdir / "flags.cfg").read_text()

    # The export normalises raw pixels as training did: the evaluation crop
    # of an image, sent as pixels, gets the trained network's answer on the
    # preprocessed image.
    from nas_tf import export
    export.export_trained_model(str(logdir), str(tmp_path / "export"))
    served = tf.saved_model.load(str(tmp_path / "export"))
    image = tf.constant(np.random.default_rng(0).integers(
        0, 256, (45, 70, 3)), tf.uint8)
    pixels = imagenet_preprocessing.eval_pixels(image, "darts", 32)
    probabilities = served.signatures["serving_default"](
        images=pixels[None])["probabilities"]
    model = spec.build_model()
    trained_run.restore_weights(model, str(logdir))
    logits = model(imagenet_preprocessing.eval_image(image, "darts", 32)[None],
                   training=False)
    logits = logits[0] if isinstance(logits, (list, tuple)) else logits
    np.testing.assert_allclose(probabilities, tf.nn.softmax(logits),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_nasnet_imagenet_preset_trains_with_slims_preprocessing(
        tmp_path, manual_dir):
    # Two-block cells (a 3x3 conv, pools, a 1x1 conv, identities) keep the
    # graph small; the preset's data path is NASNet-A's.
    spec = _train_preset("nasnet_imagenet_mobile_final", SMALL_NASNET,
                         tmp_path / "nasnet", manual_dir, "--num_blocks=2",
                         "--num_cells=2", "--stem_filters=4")
    assert spec.preprocessing == "inception"
    assert spec.normalization == {"mean": [0.5] * 3, "std": [0.5] * 3}
    assert (spec.model["image_size"], spec.model["num_classes"]) == (32, 1000)


@pytest.mark.parametrize("preset,size,kind", [
    ("darts_imagenet_final", 224, "darts"),
    ("nasnet_imagenet_mobile_final", 224, "inception"),
    ("nasnet_imagenet_large_final", 331, "inception")])
def test_imagenet_presets_name_their_preprocessing_and_size(preset, size,
                                                           kind):
    with open(f"{ROOT}/configs/{preset}.cfg") as f:
        flags = [line.strip() for line in f if line.startswith("--")]
    assert "--dataset=imagenet2012" in flags
    assert f"--image_size={size}" in flags
    assert f"--imagenet_preprocessing={kind}" in flags


@pytest.mark.slow
def test_streamed_data_needs_the_networks_input_size(tmp_path):
    code, _, err = run_script("train.py", "--dataset=imagenet2012",
                              "--arch=DARTS_V2", f"--logdir={tmp_path}/a")
    assert code == 2
    assert err.splitlines()[-1] == (
        "train.py: error: dataset 'imagenet2012' has images of many sizes "
        "and is streamed at the network's input size: set --image_size "
        "(224: DARTS and NASNet Mobile, 331: NASNet Large)")
    assert not (tmp_path / "a").exists()
