"""Runs a search on a TensorFlow cluster made of processes on this machine.

  python scripts/local_cluster.py --workers=2 -- \
      --preset=quickstart --logdir=runs/cluster

Starts one parameter server, ``--workers`` workers and the chief, each a
``scripts/search.py`` process with the search flags given after ``--`` and
its own ``TF_CONFIG`` (tasks on 127.0.0.1, free ports), as a cluster
manager would start them on separate machines. The chief's output is this
command's; the other tasks write to ``--task_logs``. When the chief ends,
the other tasks are stopped and the chief's exit status is returned.

``--kill_worker_after=S`` kills worker 0 (SIGKILL) S seconds after the
first child this launch added to the history, to watch the search
survive a lost worker: its children run again on the other workers. The
tasks die with this command, however it ends. Killing the chief
(its pid is printed) and running the same command again resumes the
search.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS

flags.DEFINE_integer("workers", 2, "Worker tasks.")
flags.DEFINE_integer("ps", 1, "Parameter-server tasks.")
flags.DEFINE_float("kill_worker_after", -1.0,
                   "Kill worker 0 (SIGKILL) this many seconds after the first "
                   "child this launch adds to the history; negative: never.")
flags.DEFINE_string("task_logs", None, "Directory for the worker and "
                    "parameter-server tasks' output (default: a new "
                    "temporary directory, printed).")

SEARCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "search.py")
HISTORY = "history.jsonl"  # nas_tf.search.run.HISTORY_FILE
# What the chief's TensorFlow logs, several lines a time, whenever it makes
# or drops a function while a worker is down (it cannot register or remove
# it there): hidden and counted.
_LOST_WORKER_NOISE = ("Failed to remove function remotely",
                      "Failed to register function remotely",
                      "Additional GRPC error information from remote target",
                      "Error received from peer",
                      "This could happen if the remote target has been")


def free_ports(count: int) -> list:
    """``count`` ports free on 127.0.0.1 now (held open together so they
    differ)."""
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def cluster_spec(workers: int, ps: int) -> dict:
    ports = iter(free_ports(1 + workers + ps))
    return {"chief": [f"127.0.0.1:{next(ports)}"],
            "worker": [f"127.0.0.1:{next(ports)}" for _ in range(workers)],
            "ps": [f"127.0.0.1:{next(ports)}" for _ in range(ps)]}


def task_env(cluster: dict, role: str, index: int) -> dict:
    env = dict(os.environ)
    env["TF_CONFIG"] = json.dumps({"cluster": cluster,
                                   "task": {"type": role, "index": index}})
    # ClusterCoordinator's failure handling needs lost tasks reported at
    # once (nas_tf/cluster.py FAIL_FAST).
    env["GRPC_FAIL_FAST"] = "use_caller"
    if role != "worker":
        # Only workers train: the chief and parameter servers leave the
        # GPUs to them.
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def _die_with_parent():
    """In a task's process before it starts (Linux): SIGKILL it when this
    command dies, however it dies, so no task outlives it."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: stop() still runs
        pass


def logdir_of(search_flags: list) -> str:
    for i, flag in enumerate(search_flags):
        if flag.startswith("--logdir="):
            return flag.split("=", 1)[1]
        if flag == "--logdir" and i + 1 < len(search_flags):
            return search_flags[i + 1]
    raise app.UsageError("give the search's --logdir after --")


def history_length(logdir: str) -> int:
    path = os.path.join(logdir, HISTORY)
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def forward_stderr(process, hidden: list) -> threading.Thread:
    """Copies ``process``'s stderr to ours but for the lost-worker noise,
    whose lines it counts in ``hidden[0]``."""

    def copy():
        for line in process.stderr:
            if any(noise in line for noise in _LOST_WORKER_NOISE):
                hidden[0] += 1
            else:
                sys.stderr.write(line)
                sys.stderr.flush()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def stop(processes: list) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.time() + 10
    for process in processes:
        try:
            process.wait(max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv):
    search_flags = argv[1:]
    if FLAGS.workers < 1 or FLAGS.ps < 1:
        raise app.UsageError(f"--workers={FLAGS.workers}, --ps={FLAGS.ps}; "
                             "each must be at least 1")
    logdir = logdir_of(search_flags)
    cluster = cluster_spec(FLAGS.workers, FLAGS.ps)
    logs = FLAGS.task_logs or tempfile.mkdtemp(prefix="local_cluster_")
    os.makedirs(logs, exist_ok=True)
    command = [sys.executable, SEARCH] + search_flags
    servers = []
    for role in ("ps", "worker"):
        for index in range(len(cluster[role])):
            with open(os.path.join(logs, f"{role}_{index}.log"), "w") as out:
                servers.append(subprocess.Popen(
                    command, env=task_env(cluster, role, index), stdout=out,
                    stderr=subprocess.STDOUT, preexec_fn=_die_with_parent))
            print(f"started {role} {index} (pid {servers[-1].pid}) on "
                  f"{cluster[role][index]}", flush=True)
    chief = subprocess.Popen(command, env=task_env(cluster, "chief", 0),
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=_die_with_parent)
    hidden = [0]
    copying = forward_stderr(chief, hidden)
    print(f"started chief (pid {chief.pid}); worker and ps output in {logs}",
          flush=True)

    signalled = []
    # The handler only notes the signal: the loop below stops the tasks.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: signalled.append(number))
    # Worker 0 dies S seconds after the first child this launch adds to
    # the history (a resumed run's history already has some).
    before = history_length(logdir)
    first_child, kill_pending = None, FLAGS.kill_worker_after >= 0
    while chief.poll() is None:
        time.sleep(0.1)
        if signalled:
            stop([chief] + servers)
            return 128 + signalled[0]
        if not kill_pending:
            continue
        if first_child is None and history_length(logdir) > before:
            first_child = time.time()
        if (first_child is not None and
                time.time() - first_child >= FLAGS.kill_worker_after):
            worker = servers[FLAGS.ps]  # servers: the ps tasks, then workers
            worker.kill()
            kill_pending = False
            print(f"killed worker 0 (pid {worker.pid}) "
                  f"{FLAGS.kill_worker_after:g} s after the first child",
                  flush=True)
    if kill_pending:
        print("worker 0 was not killed: the search finished first",
              flush=True)
    stop(servers)
    copying.join(timeout=5)
    if hidden[0]:
        print(f"({hidden[0]} lines of the chief's TensorFlow log about "
              "functions it could not register on or remove from the lost "
              "worker hidden)",
              flush=True)
    return chief.returncode


if __name__ == "__main__":
    app.run(main)
