"""Children per hour with K parallel children, and the cluster's dispatch
cost per child.

  python bench/parallel_children.py [--parallel=1,2,4] [--children=16]
      [--cluster_children=6]

1. Parallel children: the CPU is split into as many logical devices as the
   largest K, and the same NAS-RL search (``--children`` nasrl_cnn children
   on the generated ``dominoes`` images, batches of 4, the quickstart
   preset's child training) runs with ``--parallel_children`` K = 1, 2, 4,
   one device per child, each in a fresh run directory. Children per hour
   = children / the search's wall time (model building, tracing and
   training; data generation and start-up excluded). The histories are
   checked equal, and the resident set size is sampled through each run
   (its value at the end of each quarter is reported).
2. Dispatch overhead: the same search (``--cluster_children``, one child
   per batch, one worker and one parameter server on 127.0.0.1,
   ``scripts/local_cluster.py``) against one process. Per child: the
   history's wall time (cluster: building the child and its program on
   the chief, scheduling, fetching) against one process's; the program's
   own time on the worker (which holds reading and writing every weight on
   the parameter server each step) against one process's training; the
   difference of the two, the chief's cost of dispatching. Also the round
   trip of an empty closure on an in-process cluster: the bare cost of
   ``schedule`` + ``fetch``.

Prints the figures and writes them as JSON to ``--output``. On GPUs,
children per hour is about K x 3600 / t, t one child's time on its D
GPUs, as long as the host keeps K input pipelines and K tracings fed.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("parallel", ["1", "2", "4"], "Values of K to time.")
flags.DEFINE_integer("children", 16, "Children of each parallel search "
                     "(batches of 4).")
flags.DEFINE_integer("cluster_children", 6, "Children of the dispatch "
                     "overhead searches.")
flags.DEFINE_integer("closures", 20, "Empty closures timed.")
flags.DEFINE_list("parts", ["parallel", "dispatch"], "What to measure: "
                  "parallel (children per hour), dispatch (the cluster).")
flags.DEFINE_string("output", "bench_results/parallel_children.json",
                    "Where the figures are written (JSON).")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
# The quickstart preset's child training, in batches of 4 children.
SEARCH = ["--preset=quickstart", "--controller_num_aggregate=4",
          "--num_layers=3", "--seed=1"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _history(logdir):
    with open(os.path.join(logdir, "history.jsonl")) as f:
        return [json.loads(line) for line in f]


def _rss_mb(pid: int):
    """Resident set size of process ``pid`` in MB (Linux), None once it is
    gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _run(command, logdir):
    """Runs ``command``; returns its wall time, the history it wrote and
    its resident set size sampled every half second (MB)."""
    shutil.rmtree(logdir, ignore_errors=True)
    began = time.time()
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    rss = []
    while process.poll() is None:
        sample = _rss_mb(process.pid)
        if sample:
            rss.append(sample)
        time.sleep(0.5)
    out, err = process.communicate()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err}")
    return time.time() - began, _history(logdir), rss


def _startup_seconds(devices: int) -> float:
    """What a search process spends before its first child: the same search
    with 0 epochs is not possible, so a search of one child minus that
    child's own time."""
    logdir = tempfile.mkdtemp(prefix="bench_startup_")
    seconds, history, _ = _run(
        [sys.executable, os.path.join(SCRIPTS, "search.py"), *SEARCH,
         "--num_children=1", "--controller_num_aggregate=1",
         f"--cpu_devices={devices}", "--distribute=one_device",
         f"--logdir={logdir}"], logdir)
    shutil.rmtree(logdir, ignore_errors=True)
    return seconds - history[0]["wall_time"]


def parallel_children(work: str) -> dict:
    ks = [int(k) for k in FLAGS.parallel]
    devices = max(ks)
    startup = _startup_seconds(devices)
    figures, reference = {"startup_seconds": round(startup, 2)}, None
    for k in ks:
        logdir = os.path.join(work, f"k{k}")
        seconds, history, rss = _run(
            [sys.executable, os.path.join(SCRIPTS, "search.py"), *SEARCH,
             f"--num_children={FLAGS.children}", f"--cpu_devices={devices}",
             "--distribute=one_device", f"--parallel_children={k}",
             f"--logdir={logdir}"], logdir)
        # The RSS at the end of each quarter of the run: flat when nothing
        # accumulates from batch to batch.
        quarters = [round(rss[min(len(rss) - 1, len(rss) * q // 4)])
                    for q in (1, 2, 3, 4)] if rss else []
        searching = seconds - startup
        rewards = [r["reward"] for r in history]
        if reference is None:
            reference = rewards
        figures[f"k{k}"] = {
            "search_seconds": round(searching, 2),
            "children_per_hour": round(FLAGS.children * 3600 / searching, 1),
            "history_equals_k1": rewards == reference,
            "rss_mb_by_quarter": quarters}
        print(f"K={k}: {FLAGS.children} children in {searching:.1f} s "
              f"(start-up {startup:.1f} s excluded): "
              f"{figures[f'k{k}']['children_per_hour']:.0f} children/hour; "
              f"history equals K=1: {rewards == reference}; RSS by quarter "
              f"of the run {quarters} MB", flush=True)
    return figures


def _mean(records, field):
    return sum(field(r) for r in records) / len(records)


def dispatch_overhead(work: str) -> dict:
    single, clustered = os.path.join(work, "single"), os.path.join(
        work, "cluster")
    # One child per batch: nothing waits for the single worker.
    flags_ = [*SEARCH, f"--num_children={FLAGS.cluster_children}",
              "--controller_num_aggregate=1"]
    _, local, _ = _run(
        [sys.executable, os.path.join(SCRIPTS, "search.py"), *flags_,
         "--distribute=one_device", f"--logdir={single}"], single)
    _, remote, _ = _run(
        [sys.executable, os.path.join(SCRIPTS, "local_cluster.py"),
         "--workers=1", f"--task_logs={work}/logs", "--", *flags_,
         f"--logdir={clustered}"], clustered)
    # wall_time: building, tracing and training (locally), or building,
    # scheduling and fetching (cluster); train_seconds: the training
    # itself (on the cluster, the program's own time on the worker).
    local_wall = _mean(local, lambda r: r["wall_time"])
    remote_wall = _mean(remote, lambda r: r["wall_time"])
    local_train = _mean(local, lambda r: r["metrics"]["train_seconds"])
    remote_train = _mean(remote, lambda r: r["metrics"]["train_seconds"])
    same = [r["reward"] for r in local] == [r["reward"] for r in remote]
    figures = {
        "single_process_seconds_per_child": round(local_wall, 3),
        "cluster_seconds_per_child": round(remote_wall, 3),
        "overhead_seconds_per_child": round(remote_wall - local_wall, 3),
        "program_seconds_on_worker": round(remote_train, 3),
        "single_process_train_seconds": round(local_train, 3),
        "dispatch_seconds_per_child": round(remote_wall - remote_train, 3),
        "history_equal": same}
    print(f"cluster (1 worker, 1 ps): {remote_wall:.2f} s per child against "
          f"{local_wall:.2f} s in one process ({remote_wall - local_wall:+.2f}"
          f" s); on the worker the program ran {remote_train:.2f} s (one "
          f"process trained in {local_train:.2f} s), so building, shipping "
          f"and fetching took {remote_wall - remote_train:.2f} s per child; "
          f"history equal: {same}", flush=True)
    return figures


def empty_closure_round_trip() -> dict:
    """schedule + fetch of a closure that does nothing, on an in-process
    cluster (1 worker, 1 ps)."""
    import socket
    import tensorflow as tf

    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    spec = tf.train.ClusterSpec({
        "worker": [f"127.0.0.1:{sockets[0].getsockname()[1]}"],
        "ps": [f"127.0.0.1:{sockets[1].getsockname()[1]}"]})
    for s in sockets:
        s.close()
    for job in ("worker", "ps"):
        tf.distribute.Server(spec, job_name=job, task_index=0,
                             protocol="grpc", start=True)
    strategy = tf.distribute.experimental.ParameterServerStrategy(
        tf.distribute.cluster_resolver.SimpleClusterResolver(
            spec, rpc_layer="grpc"))
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    nothing = tf.function(lambda: tf.constant(0))
    coordinator.schedule(nothing).fetch()  # the trace
    began = time.time()
    for _ in range(FLAGS.closures):
        coordinator.schedule(nothing).fetch()
    seconds = (time.time() - began) / FLAGS.closures
    print(f"empty closure, schedule + fetch: {seconds * 1000:.1f} ms",
          flush=True)
    return {"empty_closure_ms": round(seconds * 1000, 2)}


def main(argv):
    del argv
    work = tempfile.mkdtemp(prefix="bench_parallel_")
    figures = {"machine": {"cpus": os.cpu_count(),
                           "python": platform.python_version()}}
    try:
        if "parallel" in FLAGS.parts:
            figures["parallel_children"] = parallel_children(work)
        if "dispatch" in FLAGS.parts:
            figures["dispatch"] = dispatch_overhead(work)
            figures["dispatch"].update(empty_closure_round_trip())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, "w") as f:
        json.dump(figures, f, indent=1)
    print(f"written to {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
