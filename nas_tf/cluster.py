"""A search across the machines of a TensorFlow cluster, described by
``TF_CONFIG``.

Every task runs the same command with its own ``TF_CONFIG``: the chief is
the coordinator and runs the search (controller, baseline, history,
checkpoints, TensorBoard: every decision happens there); worker and
parameter-server tasks start a TensorFlow server (``serve``) and wait. The
chief farms each child out as a closure with
``tf.distribute.coordinator.ClusterCoordinator`` over a
``ParameterServerStrategy`` (``child_dispatch.Cluster``).

What survives what (the guarantees of ``ClusterCoordinator``): a lost
worker's closures run again on the other workers, and a worker that comes
back rejoins; a lost parameter server or chief stops the search, and
relaunching the chief with the same command resumes from its last
checkpoint, keeping every finished child.
"""

import dataclasses
import json
import os
from typing import Optional

import tensorflow as tf

ROLES = ("chief", "worker", "ps")
# gRPC must report a lost task to the caller at once instead of retrying
# the connection: ClusterCoordinator's failure handling relies on it
# (TF's parameter server training guide). Set before the first connection.
FAIL_FAST = ("GRPC_FAIL_FAST", "use_caller")


@dataclasses.dataclass(frozen=True)
class Task:
    """This process's task in the cluster of ``TF_CONFIG``."""

    role: str
    index: int
    cluster: dict

    @property
    def is_chief(self) -> bool:
        """TensorFlow's rule: the chief task, or worker 0 of a cluster
        without one (multi-worker training; a search always has one)."""
        return self.role == "chief" or (
            "chief" not in self.cluster and self.role == "worker"
            and self.index == 0)


TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:2222", "host2:2222"]},'
                     ' "task": {"type": "worker", "index": 0}}')


def parse_tf_config(text: str) -> Optional[Task]:
    """The cluster and this task of the ``TF_CONFIG`` JSON ``text``; None
    when it is empty. Raises ValueError, naming what is wrong, when it is
    not JSON, maps no role to a list of ``host:port``, or its task is not
    one of the cluster's."""
    if not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not JSON ({e}): {text!r}; expected "
                         f"e.g. {TF_CONFIG_EXAMPLE}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not all(
            isinstance(tasks, list) and all(isinstance(a, str) for a in tasks)
            for tasks in cluster.values()):
        raise ValueError(f"TF_CONFIG={text!r} has no \"cluster\" mapping "
                         f"each role to a list of host:port; expected e.g. "
                         f"{TF_CONFIG_EXAMPLE}")
    task = config.get("task")
    role = task.get("type") if isinstance(task, dict) else None
    index = task.get("index", 0) if isinstance(task, dict) else None
    if (role not in cluster or not isinstance(index, int)
            or not 0 <= index < len(cluster[role])):
        roles = ", ".join(f"{r} 0..{len(a) - 1}" for r, a in cluster.items())
        raise ValueError(f"TF_CONFIG's task {json.dumps(task)} is not a task "
                         f"of its cluster ({roles}); give this process's "
                         f"own, e.g. {{\"type\": \"worker\", \"index\": 1}}")
    return Task(role=role, index=index, cluster=cluster)


def task_from_env(environ=os.environ) -> Optional[Task]:
    """The task ``TF_CONFIG`` names, or None without ``TF_CONFIG``; raises
    ValueError for a cluster a search cannot run on."""
    task = parse_tf_config(environ.get("TF_CONFIG", ""))
    if task is None:
        return None
    cluster = task.cluster
    counts = {name: len(cluster.get(name, ())) for name in ROLES}
    unknown = sorted(set(cluster) - set(ROLES))
    problems = []
    if unknown:
        problems.append(f"jobs {unknown} are not used (allowed: "
                        f"{', '.join(ROLES)})")
    if counts["chief"] != 1:
        problems.append(f"{counts['chief']} chief tasks; a search needs "
                        "exactly 1 (the coordinator)")
    if counts["worker"] < 1 or counts["ps"] < 1:
        problems.append(f"{counts['worker']} worker and {counts['ps']} ps "
                        "tasks; a search needs at least 1 of each")
    if problems:
        raise ValueError(f"TF_CONFIG: {'; '.join(problems)}")
    return task


def serve(task: Task) -> None:
    """Runs this worker or parameter server until the process is killed."""
    os.environ.setdefault(*FAIL_FAST)
    server = tf.distribute.Server(
        tf.train.ClusterSpec(task.cluster), job_name=task.role,
        task_index=task.index, protocol="grpc", start=True)
    server.join()


def coordinator(task: Task):
    """The chief's ``(ParameterServerStrategy, ClusterCoordinator)``."""
    os.environ.setdefault(*FAIL_FAST)
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(task.cluster), task_type="chief", task_id=0,
        rpc_layer="grpc")
    strategy = tf.distribute.experimental.ParameterServerStrategy(resolver)
    return strategy, tf.distribute.coordinator.ClusterCoordinator(strategy)
