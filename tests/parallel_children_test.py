"""Children of a batch on device groups at once: the history equals a
sequential run's; settings a search cannot use are refused."""

import json
import os

import pytest

from conftest import run_script
from conftest import without_wall_clock
import search_run_test
from search_run_test import data  # noqa: F401  (a fixture)

from nas_tf import distribute
from nas_tf.search import child_dispatch
from nas_tf.search import run


def _config(**changes):
    return search_run_test._config(
        **{"distribute": "one_device", **changes})


def test_two_children_at_once_write_the_sequential_history(tmp_path, data):
    config = _config()
    sequential = run.run_search(config, str(tmp_path / "seq"), data,
                                log=lambda line: None)
    lines = []
    parallel = run.run_search(
        config, str(tmp_path / "par"), data, log=lines.append,
        execution=child_dispatch.Execution(parallel_children=2))
    assert any("2 device groups at once" in line for line in lines)
    assert (without_wall_clock(parallel.history) ==
            without_wall_clock(sequential.history))
    finished = tmp_path / "par" / run.FINISHED_DIR
    assert not finished.exists() or not os.listdir(finished)


def test_a_child_finished_before_the_kill_is_not_trained_again(
        tmp_path, data, monkeypatch):
    """A batch killed while child 1 trains and child 2 has finished: the
    resumed run takes child 2 from finished/ and trains only child 1."""
    config = _config(num_children=2)
    logdir = str(tmp_path / "run")
    complete = run.run_search(config, logdir, data, log=lambda line: None)
    second = complete.history[1]
    os.remove(os.path.join(logdir, run.HISTORY_FILE))
    for name in os.listdir(os.path.join(logdir, run.CHECKPOINT_DIR)):
        os.remove(os.path.join(logdir, run.CHECKPOINT_DIR, name))
    os.makedirs(os.path.join(logdir, run.FINISHED_DIR))
    with open(os.path.join(logdir, run.FINISHED_DIR, "1.json"), "w") as f:
        json.dump(second, f)
    trained = []
    evaluate = child_dispatch.Sequential.run

    def recording(self, jobs, done):
        trained.extend(job.index for job in jobs)
        return evaluate(self, jobs, done)

    monkeypatch.setattr(child_dispatch.Sequential, "run", recording)
    resumed = run.run_search(config, logdir, data, log=lambda line: None)
    assert trained == [0]
    assert (without_wall_clock(resumed.history) ==
            without_wall_clock(complete.history))
    assert os.listdir(os.path.join(logdir, run.FINISHED_DIR)) == []


def test_more_devices_than_the_machine_has_are_refused():
    with pytest.raises(ValueError, match=r"needs 6 devices; this machine "
                       r"has 2 logical CPU devices"):
        distribute.device_groups(3, 2)


def test_supernet_strategies_refuse_parallel_children():
    with pytest.raises(ValueError, match="data parallelism"):
        child_dispatch.check_execution(
            child_dispatch.Execution(parallel_children=2),
            _config(strategy="darts", space="darts_cnn",
                    space_params={"steps": 2}))
    with pytest.raises(ValueError, match="at least 1"):
        child_dispatch.check_execution(
            child_dispatch.Execution(devices_per_child=0), _config())


TINY = ["--preset=quickstart", "--num_children=4", "--num_layers=2",
        "--controller_num_aggregate=2", "--epochs=1", "--steps_per_epoch=3"]


def _history(logdir):
    with open(os.path.join(logdir, run.HISTORY_FILE)) as f:
        return without_wall_clock([json.loads(line) for line in f])


@pytest.mark.slow
def test_two_children_on_two_devices_each_equal_the_mirrored_sequential_run(
        tmp_path):
    """Four logical CPU devices: two children at once, each on a
    MirroredStrategy of two, against one child at a time on two."""
    sequential, parallel = str(tmp_path / "seq"), str(tmp_path / "par")
    code, _, err = run_script("search.py", *TINY, "--cpu_devices=2",
                              "--distribute=mirrored", f"--logdir={sequential}")
    assert code == 0, err
    code, out, err = run_script("search.py", *TINY, "--cpu_devices=4",
                                "--parallel_children=2",
                                "--devices_per_child=2",
                                f"--logdir={parallel}")
    assert code == 0, err
    assert "CPU:0, /device:CPU:1; /device:CPU:2, /device:CPU:3" in out
    assert _history(parallel) == _history(sequential)
