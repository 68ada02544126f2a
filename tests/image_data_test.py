"""Image data for child training: the generated dominoes, the tf.data
pipelines, the TFDS loader (mocked) and its fast failure offline; nothing
here may touch the network."""

import socket
import time

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

from nas_tf import spaces
from nas_tf.builders import build_child
from nas_tf.config import ChildConfig
from nas_tf.data import datasets
from nas_tf.data import dominoes
from nas_tf.data import images
from nas_tf.data import netcheck

SMALL = dict(num_train=90, num_valid=30, num_test=21)
PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY",
              "all_proxy", "ALL_PROXY")


# Any lookup of a remote host fails these tests (see conftest.py).
pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture(scope="module")
def small():
    return dominoes.generate_dominoes(seed=3, **SMALL)


# -- dominoes ----------------------------------------------------------------

def test_dominoes_are_deterministic_per_seed():
    a = dominoes.generate_dominoes(seed=1, **SMALL)
    b = dominoes.generate_dominoes(seed=1, **SMALL)
    c = dominoes.generate_dominoes(seed=2, **SMALL)
    for split in ("train", "valid", "test"):
        for x, y in zip(a.split(split), b.split(split)):
            np.testing.assert_array_equal(x, y)
        assert not np.array_equal(a.split(split)[0], c.split(split)[0])
    # A split's images do not depend on the other splits' sizes.
    d = dominoes.generate_dominoes(seed=1, num_train=60, num_valid=30,
                                   num_test=21)
    np.testing.assert_array_equal(a.valid_images, d.valid_images)


def test_dominoes_shapes_balance_and_statistics(small):
    assert small.name == "dominoes"
    assert small.num_classes == len(dominoes.CLASSES) == 3
    size = dominoes.IMAGE_SIZE
    assert (small.image_size, small.image_channels) == (size, 1)
    for split, n in (("train", 90), ("valid", 30), ("test", 21)):
        x, y = small.split(split)
        assert x.shape == (n, size, size, 1) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.int64
        counts = np.bincount(y, minlength=3)
        assert counts.max() - counts.min() <= 1, (split, counts)
    scaled = small.train_images.astype(np.float64) / 255
    assert small.mean.dtype == small.std.dtype == np.float32
    np.testing.assert_allclose(small.mean, [scaled.mean()], rtol=1e-5)
    np.testing.assert_allclose(small.std, [scaled.std()], rtol=1e-5)
    rgb = dominoes.generate_dominoes(seed=0, channels=3, image_size=16,
                                     **SMALL)
    assert rgb.train_images.shape[1:] == (16, 16, 3)
    assert rgb.mean.shape == rgb.std.shape == (3,)


@pytest.mark.parametrize("variant", sorted(dominoes.VARIANTS))
def test_dominoes_images_hold_the_promised_dots(variant):
    options = dominoes.VARIANTS[variant]
    data = dominoes.generate_dominoes(seed=0, noise=0.0, **options, **SMALL)
    d = options.get("distance", dominoes.DISTANCE)
    steps = {0: {(0, d)}, 1: {(d, 0)}, 2: {(d, d), (d, -d)}}
    for image, label in zip(data.train_images, data.train_labels):
        dots = sorted(map(tuple, np.argwhere(image[..., 0] > 0)))
        # 3-4 dominoes and 1-3 distractors.
        assert 2 * 3 + 1 <= len(dots) <= 2 * 4 + 3
        close = {(q[0] - p[0], q[1] - p[1]) for i, p in enumerate(dots)
                 for q in dots[i + 1:] if dominoes._aligned(p, q, d + 1)}
        assert close and close <= steps[int(label)], (label, close)


def test_dominoes_reject_bad_arguments():
    with pytest.raises(ValueError, match="distance=0"):
        dominoes.generate_dominoes(distance=0)
    with pytest.raises(ValueError, match="min_dominoes=4"):
        dominoes.generate_dominoes(min_dominoes=4, max_dominoes=3)
    with pytest.raises(ValueError, match="cannot place 30 dominoes"):
        dominoes.generate_dominoes(min_dominoes=30, max_dominoes=30,
                                   **SMALL)


def test_load_image_data_draws_dominoes_with_the_seed():
    data = datasets.load_image_data("dominoes", validation_size=30, seed=4)
    assert [len(data.split(s)[1]) for s in ("train", "valid", "test")] == [
        dominoes.NUM_TRAIN, 30, dominoes.NUM_TEST]
    assert data.class_names == dominoes.CLASSES
    final = datasets.load_image_data("dominoes", final=True, seed=4)
    assert final.class_names == dominoes.CLASSES
    assert len(final.train_labels) == dominoes.NUM_TRAIN + dominoes.NUM_VALID
    assert len(final.valid_labels) == 0
    np.testing.assert_array_equal(final.train_images[:dominoes.NUM_TRAIN],
                                  data.train_images)
    np.testing.assert_array_equal(final.test_images, data.test_images)


def test_load_image_data_draws_the_named_dominoes_variant():
    # The registry names every variant without importing the generator.
    assert set(dominoes.VARIANTS) <= set(datasets.GENERATED)
    near = datasets.load_image_data("dominoes_near", seed=4)
    assert near.name == "dominoes_near"
    assert datasets.dataset_kind("dominoes_near") == "image"
    assert datasets.image_dataset_spec("dominoes_near") == dominoes.spec()
    np.testing.assert_array_equal(
        near.train_images, dominoes.generate_dominoes(
            seed=4, distance=2).train_images)


# -- pipelines ---------------------------------------------------------------

def _as_arrays(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return xs, ys


def test_train_dataset_is_deterministic_per_seed_and_epoch(small):
    first = _as_arrays(images.train_dataset(small, 16, seed=5))
    again = _as_arrays(images.train_dataset(small, 16, seed=5))
    other_seed = _as_arrays(images.train_dataset(small, 16, seed=6))
    next_epoch = _as_arrays(images.train_dataset(small, 16, seed=5, epoch=1))
    assert len(first[0]) == 90 // 16
    for x, y in zip(*first):
        assert x.shape == (16, small.image_size, small.image_size, 1)
        assert x.dtype == np.float32
        assert y.shape == (16,) and y.dtype == np.int32
    for a, b in zip(first[0] + first[1], again[0] + again[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0][0], other_seed[0][0])
    assert not np.array_equal(first[0][0], next_epoch[0][0])


def _raw(data, batch):
    """Undoes the normalisation: uint8-valued pixels."""
    return np.round((batch * data.std + data.mean) * 255)


def test_without_augmentation_an_epoch_is_a_permutation(small):
    xs, ys = _as_arrays(images.train_dataset(small, 10, seed=0,
                                             augment=False))
    raw = _raw(small, np.concatenate(xs))
    assert len(raw) == 90
    originals = {x.tobytes(): y for x, y in zip(small.train_images,
                                                 small.train_labels)}
    seen = [x.astype(np.uint8).tobytes() for x in raw]
    assert sorted(seen) == sorted(originals)
    assert [originals[s] for s in seen] == list(np.concatenate(ys))


def test_augmentation_crops_and_flips_a_padded_image():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, (24, 8, 8, 2), dtype=np.uint8)
    y = np.arange(24) % 2
    data = images.ImageData.from_splits("noise", 2, (x, y), None, None)
    pad = images.PAD
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    flipped_any = False
    for epoch in range(2):
        (batch, labels), = images.train_dataset(data, 24, seed=1,
                                                epoch=epoch)
        for image, label in zip(_raw(data, batch.numpy()), labels.numpy()):
            assert image.shape == (8, 8, 2)
            matches = [
                (i, flip) for i in range(24) if y[i] == label
                for flip in (False, True)
                for r in range(2 * pad + 1) for c in range(2 * pad + 1)
                if np.array_equal(
                    image, (padded[i, r:r + 8, c:c + 8, :][:, ::-1]
                            if flip else padded[i, r:r + 8, c:c + 8, :]))]
            assert matches, "an augmented image is no crop of its original"
            flipped_any |= any(flip for _, flip in matches)
    assert flipped_any


def test_eval_dataset_covers_each_example_once_in_order(small):
    xs, ys = _as_arrays(images.eval_dataset(small, "test", 8))
    assert [len(y) for y in ys] == [8, 8, 5]
    np.testing.assert_array_equal(np.concatenate(ys), small.test_labels)
    np.testing.assert_array_equal(_raw(small, np.concatenate(xs)),
                                  small.test_images)


def test_pipelines_name_bad_arguments(small):
    with pytest.raises(ValueError, match="'train'.*allowed: valid, test"):
        images.eval_dataset(small, "train", 8)
    final = images.without_validation(small)
    assert len(final.train_labels) == 120 and len(final.valid_labels) == 0
    with pytest.raises(ValueError, match="'valid' split of dominoes is "
                       "empty"):
        images.eval_dataset(final, "valid", 8)
    with pytest.raises(ValueError, match="batch_size=91"):
        images.train_dataset(small, 91, seed=0)


# -- TFDS --------------------------------------------------------------------

def test_tfds_splits_keep_the_last_training_images_for_validation(
        tmp_path, monkeypatch):
    # Under mock_data the dataset looks unprepared, so the reachability
    # check runs; it must not reach out.
    monkeypatch.setattr(netcheck, "can_connect", lambda *args: True)
    with tfds.testing.mock_data(num_examples=40):
        data = images.load_tfds_images("cifar10", data_dir=str(tmp_path),
                                       validation_size=10)
        final = images.load_tfds_images("cifar10", data_dir=str(tmp_path),
                                        final=True)
    assert (data.image_size, data.image_channels, data.num_classes) == (
        32, 3, 10)
    assert [len(data.split(s)[1]) for s in ("train", "valid", "test")] == [
        30, 10, 40]
    assert [len(final.split(s)[1]) for s in ("train", "valid", "test")] == [
        40, 0, 40]
    np.testing.assert_array_equal(data.valid_images, final.train_images[30:])
    np.testing.assert_array_equal(data.train_labels, final.train_labels[:30])
    scaled = data.train_images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(data.mean, scaled.mean(0), rtol=1e-5)
    np.testing.assert_allclose(data.std, scaled.std(0), rtol=1e-5)
    with tfds.testing.mock_data(num_examples=40):
        with pytest.raises(ValueError, match="validation_size=40"):
            images.load_tfds_images("cifar10", data_dir=str(tmp_path),
                                    validation_size=40)


def test_unprepared_tfds_data_fails_fast_offline(tmp_path, monkeypatch):
    attempts = []

    def unreachable(host, port, timeout):
        attempts.append((host, port))
        return False

    monkeypatch.setattr(netcheck, "can_connect", unreachable)
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    start = time.monotonic()
    with pytest.raises(ConnectionError) as error:
        datasets.load_image_data("cifar10", data_dir=str(tmp_path))
    assert time.monotonic() - start < 5
    assert attempts == [("www.cs.toronto.edu", 443)]
    message = str(error.value)
    for hint in (str(tmp_path), "www.cs.toronto.edu", "download_and_prepare",
                 "data_dir", str(tmp_path / "downloads" / "manual"),
                 "cifar-10-binary.tar.gz"):
        assert hint in message
    assert not (tmp_path / "cifar10").exists()


def test_archives_in_the_manual_dir_skip_the_reachability_check(
        tmp_path, monkeypatch):
    def unexpected(*args):
        raise AssertionError("reachability checked with the files at hand")

    monkeypatch.setattr(netcheck, "can_connect", unexpected)
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "cifar-10-binary.tar.gz").write_bytes(b"")
    builder = tfds.builder("cifar10", data_dir=str(tmp_path))
    images._check_downloadable(builder, manual)


def test_unknown_and_unsuitable_datasets_are_named():
    with pytest.raises(ValueError, match="'cifar_10'.*cifar10.*dominoes"):
        datasets.load_image_data("cifar_10")
    with pytest.raises(ValueError, match="'imdb_reviews'.*label, text"):
        datasets.image_dataset_spec("imdb_reviews")


def test_image_dataset_spec_reads_no_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    start = time.monotonic()
    assert datasets.image_dataset_spec("cifar10") == (32, 3, 10)
    assert datasets.image_dataset_spec("mnist") == (28, 1, 10)
    assert datasets.image_dataset_spec("dominoes") == (
        dominoes.IMAGE_SIZE, 1, 3)
    assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_reachability_check_uses_the_proxy_of_the_url_scheme(monkeypatch):
    for var in PROXY_VARS + ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert netcheck.url_endpoint("http://a.example/x") == ("a.example", 80)
    assert netcheck.url_endpoint("https://a.example:8443/x") == (
        "a.example", 8443)
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    assert netcheck.url_endpoint("http://a.example/x") == (
        "proxy.example", 3128)
    assert netcheck.url_endpoint("https://a.example/x") == ("a.example", 443)


def test_unreachable_checks_all_endpoints_at_once():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        open_port = server.getsockname()[1]
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            closed_port = other.getsockname()[1]
        start = time.monotonic()
        down = netcheck.unreachable(
            [("127.0.0.1", open_port), ("127.0.0.1", closed_port)], 2.0)
    assert down == [("127.0.0.1", closed_port)]
    assert time.monotonic() - start < 2.0


# -- the dominoes reward filter shapes ----------------------------------------

def _accuracy(data, layers, epochs):
    """Validation accuracy of a nasrl_cnn chain of `layers` (filter height,
    width) with 24 filters each, after `epochs` of Adam.

    BatchNorm normalises with the validation batch's own statistics: after
    a few short epochs the moving averages still lag the weights, which
    makes single inference-mode readings of one network noisy.
    """
    sizes = {s: i for i, s in enumerate((1, 3, 5, 7))}
    tokens = []
    for k, (height, width) in enumerate(layers):
        # Filters index 0 (24); each layer reads the one before.
        tokens += [sizes[height], sizes[width], 0]
        tokens += [int(i == k - 1) for i in range(k)]
    space = spaces.get_space("nasrl_cnn", num_layers=len(layers))
    arch = space.from_tokens(tokens)
    keras.utils.set_random_seed(0)
    model = build_child(space, arch, ChildConfig(
        num_classes=data.num_classes, image_size=data.image_size,
        image_channels=data.image_channels))
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True), metrics=["accuracy"])
    for epoch in range(epochs):
        model.fit(images.train_dataset(data, 32, seed=0, epoch=epoch),
                  shuffle=False, verbose=0)
    (x, y), = images.eval_dataset(data, "valid", len(data.valid_labels))
    predictions = np.argmax(model(x, training=True), axis=-1)
    return float(np.mean(predictions == y.numpy()))


@pytest.mark.slow
def test_wide_filters_beat_pointwise_ones():
    data = dominoes.generate_dominoes(seed=0)
    pointwise = _accuracy(data, [(1, 1), (1, 1)], epochs=3)
    wide = _accuracy(data, [(5, 5), (7, 7)], epochs=3)
    assert pointwise < 0.45, pointwise
    assert wide > 0.8, wide
