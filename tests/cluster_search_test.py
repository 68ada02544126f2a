"""A search on a loopback TensorFlow cluster (scripts/local_cluster.py):
a worker killed mid-search, and the chief killed and relaunched, leave the
history of a single-process run; TF_CONFIG is checked."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import run_script
from conftest import script_command
from conftest import script_env
from conftest import without_wall_clock

from nas_tf import cluster
from nas_tf.search import run

SEARCH = ["--preset=quickstart", "--num_children=4", "--num_layers=2",
          "--controller_num_aggregate=2", "--epochs=2", "--steps_per_epoch=3",
          "--seed=3"]


def _history(logdir):
    with open(os.path.join(logdir, run.HISTORY_FILE)) as f:
        return [json.loads(line) for line in f]


def _local_cluster(logdir, task_logs, *args):
    return script_command("local_cluster.py", "--workers=2",
                          f"--task_logs={task_logs}", *args, "--", *SEARCH,
                          f"--logdir={logdir}")


def _kill_chief_after_children(command, logdir, children):
    """Runs ``command`` until the history holds ``children`` children, then
    kills its chief (SIGKILL); returns local_cluster's output."""
    launched = subprocess.Popen(command, env=script_env(),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    chief = None
    for line in launched.stdout:
        found = re.search(r"started chief \(pid (\d+)\)", line)
        if found:
            chief = int(found.group(1))
            break
    assert chief is not None
    path = os.path.join(logdir, run.HISTORY_FILE)
    deadline = time.time() + 300
    while time.time() < deadline and not (
            os.path.exists(path) and len(_history(logdir)) >= children):
        time.sleep(0.1)
    os.kill(chief, signal.SIGKILL)
    out = launched.stdout.read()
    assert launched.wait(timeout=60) != 0
    return out


@pytest.mark.slow
def test_a_lost_worker_and_a_relaunched_chief_leave_the_single_process_history(
        tmp_path):
    """Three searches with one seed: in one process; on a loopback cluster
    of two workers with worker 0 SIGKILLed mid-search; and on one whose
    chief is SIGKILLed after two children (one batch) and relaunched. Each child is in
    the history once, and the histories are equal."""
    single = str(tmp_path / "single")
    code, _, err = run_script("search.py", *SEARCH, "--distribute=one_device",
                              f"--logdir={single}")
    assert code == 0, err
    expected = without_wall_clock(_history(single))

    lost_worker = str(tmp_path / "lost_worker")
    result = subprocess.run(
        _local_cluster(lost_worker, tmp_path / "logs1",
                       "--kill_worker_after=0.5"),
        env=script_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "killed worker 0" in result.stdout
    history = _history(lost_worker)
    assert [r["step"] for r in history] == list(range(4))
    assert without_wall_clock(history) == expected

    relaunched = str(tmp_path / "relaunched")
    command = _local_cluster(relaunched, tmp_path / "logs2")
    _kill_chief_after_children(command, relaunched, 2)
    assert 2 <= len(_history(relaunched)) < 4
    result = subprocess.run(command, env=script_env(), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout
    history = _history(relaunched)
    assert [r["step"] for r in history] == list(range(4))
    assert without_wall_clock(history) == expected


def _tf_config(cluster_spec, role="chief", index=0):
    return {"TF_CONFIG": json.dumps({"cluster": cluster_spec,
                                     "task": {"type": role, "index": index}})}


FULL = {"chief": ["h:1"], "worker": ["h:2", "h:3"], "ps": ["h:4"]}


def test_tf_config_names_this_task():
    assert cluster.task_from_env({}) is None
    task = cluster.task_from_env(_tf_config(FULL, "worker", 1))
    assert (task.role, task.index, task.is_chief) == ("worker", 1, False)
    assert cluster.task_from_env(_tf_config(FULL)).is_chief


@pytest.mark.parametrize("environ,message", [
    ({"TF_CONFIG": "{not json"}, "TF_CONFIG is not JSON"),
    (_tf_config({"worker": ["h:2"], "ps": ["h:4"]}, "worker"),
     "0 chief tasks"),
    (_tf_config({"chief": ["h:1"], "worker": ["h:2"]}), "0 ps"),
    (_tf_config(FULL, "worker", 2), "is not a task of its cluster"),
    (_tf_config({**FULL, "evaluator": ["h:5"]}), "'evaluator'"),
])
def test_a_cluster_a_search_cannot_use_is_refused(environ, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cluster.task_from_env(environ)
