"""scripts/train.py under MultiWorkerMirroredStrategy: two worker processes
on 127.0.0.1 train as one process with two replicas, resume together after
both were killed, and only the chief writes the run directory; TF_CONFIG's
checks."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, script_command, script_env
from nas_tf import config as config_lib
from nas_tf import distribute
from nas_tf import spaces
from nas_tf.training import final_training
from nas_tf.training import image_trainer
from nas_tf.training import schedules
from nas_tf.training import trained_run

ARCH = "1 2 1 3 1 3 1"  # nasrl_cnn, 2 layers
EPOCHS = 3
# Tiny: each process spends most of its time importing TensorFlow and
# tracing the steps.
FLAGS = ["--flagfile=configs/quickstart_train.cfg", "--num_layers=2",
         f"--epochs={EPOCHS}", "--steps_per_epoch=3", "--batch_size=32",
         f"--eval_every={EPOCHS}", f"--arch={ARCH}"]
TIMEOUT = 300


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start(args, tf_config=None, tmpdir=None):
    env = script_env()
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    if tmpdir is not None:  # where a worker's scratch checkpoints go
        os.makedirs(tmpdir, exist_ok=True)
        env["TMPDIR"] = str(tmpdir)
    return subprocess.Popen(script_command("train.py", *FLAGS, *args),
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _start_workers(logdir, ports, tmp_path):
    """One train.py per port, worker 0 the chief."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [_start([f"--logdir={logdir}"],
                   {"cluster": cluster,
                    "task": {"type": "worker", "index": index}},
                   tmpdir=tmp_path / f"tmp{index}")
            for index in range(len(ports))]


class _Reference:
    """The same training in one process with two replicas: the global batch
    split in two as the two workers split it. Started once for the tests
    that compare with it, beside the first one's workers."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.process = _start([f"--logdir={logdir}", "--distribute=mirrored",
                               "--cpu_devices=2"])
        self.output = None

    def finish(self):
        """(exit status, stdout, stderr), once it has ended."""
        if self.output is None:
            (self.output,) = _finish([self.process])
        return self.output


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    one = _Reference(tmp_path_factory.mktemp("reference") / "run")
    yield one
    if one.process.poll() is None:
        _finish([one.process], kill=True)


def _finish(processes, kill=False):
    """(exit status, stdout, stderr) of each process (``kill``: killed
    first); none is left running."""
    try:
        if kill:
            for p in processes:
                p.kill()
        outputs = [p.communicate(timeout=TIMEOUT) for p in processes]
        return [(p.returncode, out, err)
                for p, (out, err) in zip(processes, outputs)]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


def _checkpoint(logdir):
    """Every value of the run's last checkpoint: weights, BatchNorm
    statistics, momentum accumulators, epoch, dropout seeds."""
    reader = tf.train.load_checkpoint(
        os.path.join(logdir, trained_run.CHECKPOINTS))
    return {name: reader.get_tensor(name)
            for name in reader.get_variable_to_shape_map()
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def _assert_trained_alike(logdir, reference):
    # The reference splits every batch over two replicas exactly as the two
    # workers do (a one-replica run is no reference: BatchNorm normalises
    # each replica's rows with their own statistics: one replica's kernels
    # differed by up to 3e-3, its moving means by 0.09). What differs is
    # how the replicas' gradients are summed: a ring all-reduce between
    # processes against a sum on one host. float32 sums in another order
    # may differ in the last bits, hence rtol 1e-5 (atol 1e-6 for values
    # near 0); with two replicas the runs were measured to agree bit for
    # bit.
    ours, theirs = _checkpoint(logdir), _checkpoint(reference)
    assert ours.keys() == theirs.keys()
    assert int(ours["epoch/.ATTRIBUTES/VARIABLE_VALUE"]) == EPOCHS
    for name, value in theirs.items():
        np.testing.assert_allclose(ours[name], value, rtol=1e-5, atol=1e-6,
                                   err_msg=name)


def _scratch_dirs(tmpdir):
    # (Autograph also keeps files there while a process runs.)
    return [n for n in os.listdir(tmpdir) if n.startswith("nas_tf_worker_")]


def _assert_only_the_chief_wrote(logdir, chief_pids, tmp_path):
    names = {p.name for p in logdir.iterdir()}
    events = {n for n in names if n.startswith("events.out.tfevents.")}
    assert names - events == {"flags.cfg", "train_config.json",
                              "checkpoints", "result.json", "run.lock"}
    # Event files end in .<pid>.<counter>.v2.
    assert events and {n.split(".")[-3] for n in events} <= {
        str(pid) for pid in chief_pids}
    assert (logdir / "run.lock").read_text() == str(chief_pids[-1])
    # Worker 1 saved its checkpoints in a scratch directory and deleted it
    # (a relaunched worker also deletes the one its killed predecessor
    # left).
    assert _scratch_dirs(tmp_path / "tmp1") == []


@pytest.mark.slow
def test_two_workers_train_as_one_process_with_two_replicas(tmp_path,
                                                           reference):
    logdir = tmp_path / "run"
    processes = _start_workers(logdir, _free_ports(2), tmp_path)
    (chief, worker) = _finish(processes)
    one = reference.finish()
    for code, out, err in (chief, worker, one):
        assert code == 0, err
    # One global batch over the replicas of both processes.
    assert "CollectiveAllReduceStrategy with 2 replica(s)" in chief[1]
    assert "MirroredStrategy with 2 replica(s)" in one[1]
    assert f"epoch {EPOCHS}/{EPOCHS}" in worker[1]
    assert "worker 1 is done; the chief wrote" in worker[1]
    assert "export it" in chief[1] and "export it" not in worker[1]
    _assert_trained_alike(logdir, reference.logdir)
    # Both tested the same weights on the same images.
    assert trained_run.read_result(logdir)["test_accuracy"] == \
        trained_run.read_result(reference.logdir)["test_accuracy"]
    _assert_only_the_chief_wrote(logdir, [processes[0].pid], tmp_path)


@pytest.mark.slow
def test_killed_workers_relaunched_resume_to_the_uninterrupted_weights(
        tmp_path, reference):
    logdir = tmp_path / "run"
    ports = _free_ports(2)
    first = _start_workers(logdir, ports, tmp_path)
    try:
        # The chief writes the checkpoint state file once epoch 1's
        # checkpoint is complete.
        deadline = time.time() + TIMEOUT
        while not (logdir / trained_run.CHECKPOINTS / "checkpoint").exists():
            assert time.time() < deadline, "no checkpoint in time"
            for p in first:
                assert p.poll() is None, p.communicate()[1]
            time.sleep(0.05)
    finally:
        for p in first:
            p.send_signal(signal.SIGKILL)
            p.communicate()
    assert trained_run.read_result(logdir) is None
    # Worker 1 was killed with its scratch checkpoints.
    assert len(_scratch_dirs(tmp_path / "tmp1")) == 1
    # Relaunched as a cluster manager would: the same commands, ports and
    # TF_CONFIGs.
    second = _start_workers(logdir, ports, tmp_path)
    results = _finish(second) + [reference.finish()]
    for code, out, err in results:
        assert code == 0, err
    for code, out, err in results[:2]:
        done = [n for n in range(1, EPOCHS)
                if f"resuming after epoch {n} of {EPOCHS}" in out]
        assert len(done) == 1, out
        assert f"epoch {EPOCHS}/{EPOCHS}" in out
    _assert_trained_alike(logdir, reference.logdir)
    _assert_only_the_chief_wrote(logdir, [first[0].pid, second[0].pid],
                                 tmp_path)


def _request(epochs, distribute_kind):
    space = spaces.get_space("nasrl_cnn", num_layers=2)
    return final_training.TrainingRequest(
        space=space, arch=space.sample(1), dataset="dominoes", data_dir=None,
        model=config_lib.ChildConfig(),
        recipe=image_trainer.ImageTrainConfig(
            epochs=epochs, batch_size=32, steps_per_epoch=2,
            eval_every=epochs,
            schedule=schedules.LrSchedule(kind="cosine", learning_rate=0.05)),
        distribute=distribute_kind)


def _snapshot(directory):
    return {(str(p.relative_to(directory)), p.stat().st_size,
             p.stat().st_mtime_ns) for p in directory.rglob("*")}


@pytest.mark.slow
def test_a_worker_other_than_the_chief_reads_the_run_and_writes_nothing(
        tmp_path, monkeypatch):
    # The chief's run after epoch 2 of 3 (as a relaunch finds it).
    logdir = tmp_path / "run"
    final_training.train(_request(2, "one_device"), str(logdir),
                         log=lambda line: None)
    before = _snapshot(logdir)
    # A non-chief worker of a multi-worker run, played by one device.
    strategy = distribute.make_strategy("one_device")
    monkeypatch.setattr(distribute, "make_strategy", lambda kind: strategy)
    monkeypatch.setattr(type(strategy.extended), "should_checkpoint",
                        property(lambda self: False))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    lines = []
    record = final_training.train(_request(3, distribute.MULTI_WORKER),
                                  str(logdir), log=lines.append)
    assert any("resuming after epoch 2 of 3" in line for line in lines)
    assert sum(line.startswith("epoch ") for line in lines) == 1
    assert record["epochs"] == 3
    assert _snapshot(logdir) == before
    assert list(scratch.iterdir()) == []


CLUSTER = {"worker": ["a:1", "b:1"]}


def _tf_config(**config):
    return json.dumps(config)


def test_the_task_of_tf_config():
    assert distribute.multi_worker_task("") is None
    # No worker tasks: not a multi-worker cluster.
    assert distribute.multi_worker_task(_tf_config(
        cluster={"chief": ["a:1"]}, task={"type": "chief", "index": 0})) \
        is None
    task = distribute.multi_worker_task(_tf_config(
        cluster=CLUSTER, task={"type": "worker", "index": 1}))
    assert (task.role, task.index, task.is_chief) == ("worker", 1, False)
    assert distribute.multi_worker_task(_tf_config(
        cluster=CLUSTER, task={"type": "worker", "index": 0})).is_chief
    with_chief = dict(CLUSTER, chief=["c:1"])
    assert not distribute.multi_worker_task(_tf_config(
        cluster=with_chief, task={"type": "worker", "index": 0})).is_chief
    assert distribute.multi_worker_task(_tf_config(
        cluster=with_chief, task={"type": "chief", "index": 0})).is_chief


@pytest.mark.parametrize("tf_config, message", [
    ("{'cluster': 1}", "TF_CONFIG is not JSON"),
    (_tf_config(cluster=["a:1"]), 'has no "cluster" mapping each role'),
    (_tf_config(cluster={"worker": "a:1"}), 'has no "cluster" mapping'),
    (_tf_config(cluster=CLUSTER), "task null is not a task of its cluster "
     r"\(worker 0..1\)"),
    (_tf_config(cluster=CLUSTER, task={"type": "worker", "index": 2}),
     "is not a task of its cluster"),
    (_tf_config(cluster=CLUSTER, task={"type": "evaluator", "index": 0}),
     "is not a task of its cluster"),
    (_tf_config(cluster=dict(CLUSTER, ps=["p:1"]),
                task={"type": "worker", "index": 0}),
     "has ps tasks; multi-worker training runs only chief and worker"),
    (_tf_config(cluster=dict(CLUSTER, chief=["c:1", "d:1"]),
                task={"type": "chief", "index": 0}), "2 chief tasks"),
])
def test_a_tf_config_multi_worker_training_cannot_use_is_named(
        tf_config, message):
    with pytest.raises(ValueError, match=message):
        distribute.multi_worker_task(tf_config)


def test_auto_trains_on_the_cluster_tf_config_names(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.resolve_kind("auto") == "auto"
    with pytest.raises(ValueError, match="'multi_worker' needs TF_CONFIG"):
        distribute.resolve_kind(distribute.MULTI_WORKER)
    monkeypatch.setenv("TF_CONFIG", _tf_config(
        cluster=CLUSTER, task={"type": "worker", "index": 1}))
    assert distribute.resolve_kind("auto") == distribute.MULTI_WORKER
    assert distribute.resolve_kind("multi_worker") == distribute.MULTI_WORKER
    # An explicit single-process kind ignores TF_CONFIG, even a broken one.
    monkeypatch.setenv("TF_CONFIG", "{")
    assert distribute.resolve_kind("one_device") == "one_device"
    with pytest.raises(ValueError, match="TF_CONFIG is not JSON"):
        distribute.resolve_kind("auto")


def test_language_models_refuse_multi_worker_training():
    space = spaces.get_space("darts_rnn", steps=2)
    request = final_training.TrainingRequest(
        space=space, arch=space.sample(1), dataset="synthetic_text",
        data_dir=None, model=config_lib.LmConfig(),
        recipe=final_training.LM_RECIPE, distribute=distribute.MULTI_WORKER)
    with pytest.raises(ValueError, match="darts_rnn builds language models"):
        final_training.check_request(request)
