"""The PTB TFDS builder and `load_ptb`, on small PTB-style files; nothing
here may touch the network."""

import pathlib
import shutil
import socket
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from nas_tf.data import ptb

FIXTURES = pathlib.Path(__file__).resolve().parent / "testdata" / "ptb"
FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")



def _fixture_lines(name):
    return (FIXTURES / name).read_text().splitlines()


# Any lookup of a remote host fails these tests (see conftest.py).
pytestmark = pytest.mark.usefixtures("no_network")


class PtbBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """The standard TFDS checks, fed from the fixture files as the manual
    directory (so no download is attempted)."""

    DATASET_CLASS = ptb.Ptb
    EXAMPLE_DIR = str(FIXTURES)
    SPLITS = {"train": 6, "validation": 3, "test": 4}
    # The builder downloads nothing when the manual directory has the files.
    SKIP_CHECKSUMS = True


def test_prepared_splits_keep_line_order(tmp_path):
    builder = ptb.Ptb(data_dir=str(tmp_path))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(FIXTURES), try_download_gcs=False))
    for split, name in zip(("train", "validation", "test"), FILES):
        lines = _fixture_lines(name)
        assert builder.info.splits[split].num_examples == len(lines)
        examples = list(tfds.as_numpy(builder.as_dataset(split=split)))
        assert [int(e["line"]) for e in examples] == list(range(len(lines)))
        assert [e["text"].decode() for e in examples] == lines


def test_load_ptb_builds_the_corpus_like_the_originals(tmp_path):
    corpus = ptb.load_ptb(data_dir=str(tmp_path), manual_dir=str(FIXTURES))
    assert corpus.name == "ptb"
    train_lines = _fixture_lines("ptb.train.txt")
    expected_train = [w for line in train_lines
                      for w in line.split() + ["<eos>"]]
    assert corpus.vocab.decode(corpus.train) == expected_train
    assert corpus.vocab.words == tuple(dict.fromkeys(expected_train))
    for split, name in (("valid", "ptb.valid.txt"), ("test", "ptb.test.txt")):
        ids = getattr(corpus, split)
        lines = _fixture_lines(name)
        assert ids.dtype == np.int32
        assert corpus.vocab.decode(ids).count("<eos>") == len(lines)
        assert corpus.vocab.decode(ids) == [
            w for line in lines for w in line.split() + ["<eos>"]]
    np.testing.assert_array_equal(
        corpus.vocab.encode(corpus.vocab.decode(corpus.test)), corpus.test)
    assert "<unk>" in corpus.vocab and "N" in corpus.vocab


def test_load_ptb_reuses_prepared_data_without_network(tmp_path, monkeypatch):
    first = ptb.load_ptb(data_dir=str(tmp_path), manual_dir=str(FIXTURES))

    def unexpected(*args):
        raise AssertionError("reachability checked for prepared data")

    monkeypatch.setattr(ptb, "_can_connect", unexpected)
    again = ptb.load_ptb(data_dir=str(tmp_path))
    assert again.vocab.words == first.vocab.words
    np.testing.assert_array_equal(again.train, first.train)


def test_load_ptb_fails_fast_when_the_host_is_unreachable(tmp_path,
                                                          monkeypatch):
    attempts = []

    def unreachable(host, port, timeout):
        attempts.append((host, port, timeout))
        return False

    monkeypatch.setattr(ptb, "_can_connect", unreachable)
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    start = time.monotonic()
    with pytest.raises(ConnectionError) as error:
        ptb.load_ptb(data_dir=str(tmp_path))
    assert time.monotonic() - start < 5
    assert attempts == [("raw.githubusercontent.com", 443,
                         ptb.CONNECT_TIMEOUT_SECONDS)]
    message = str(error.value)
    for hint in ("--manual_dir=DIR", "--data_dir", *FILES, ptb.URL_ROOT):
        assert hint in message
    # Nothing half-prepared is left behind.
    assert not (tmp_path / "ptb").exists()


def test_load_ptb_names_files_missing_from_the_manual_dir(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    shutil.copy(FIXTURES / "ptb.train.txt", manual)
    with pytest.raises(ValueError, match="lacks ptb.valid.txt, ptb.test.txt"):
        ptb.load_ptb(data_dir=str(tmp_path / "data"), manual_dir=str(manual))
    with pytest.raises(ValueError, match="not a directory"):
        ptb.load_ptb(data_dir=str(tmp_path / "data"),
                     manual_dir=str(tmp_path / "nowhere"))


def test_can_connect_answers_quickly_on_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert ptb._can_connect("127.0.0.1", port, timeout=2.0)
    # The port is closed now: refused at once.
    start = time.monotonic()
    assert not ptb._can_connect("127.0.0.1", port, timeout=2.0)
    assert time.monotonic() - start < 2.0


def test_reachability_goes_through_a_configured_proxy(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert ptb._download_endpoint() == ("proxy.example", 3128)
