"""Test-wide settings: quiet TensorFlow, two CPU devices, the scripts'
Grappler options, and a fixed Keras seed per test."""

import os
import socket

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so MirroredStrategy runs with two replicas; this
# must happen before TensorFlow initialises its devices.
TEST_CPU_DEVICES = 2
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * TEST_CPU_DEVICES)

# As the scripts run: without the remapper's slow fused batch norm on CPU.
from nas_tf.utils import cpu_fusions  # noqa: E402
cpu_fusions.turn_off_cpu_remapper()


@pytest.fixture(autouse=True)
def _seed_and_clear():
    keras.utils.set_random_seed(0)
    yield
    # Keras's global state (layer names, uid counters) starts afresh for the
    # next test; a garbage collection after every test (free_memory=True)
    # would cost about 0.2 s each, a minute and a half over the suite.
    keras.backend.clear_session(free_memory=False)


# A small instance of every registered search space. A test that takes a
# ``small_space_name`` argument runs once per space.
SMALL_SPACES = {
    "nasrl_cnn": {"num_layers": 4},
    "nasnet": {"num_blocks": 2},
    "enas_macro": {"num_layers": 5},
    "enas_micro": {"num_nodes": 2},
    "darts_cnn": {"steps": 3},
    "nasrl_rnn": {"base": 4},
    "enas_rnn": {"num_nodes": 9},
    "darts_rnn": {"steps": 6},
}


def pytest_generate_tests(metafunc):
    if "small_space_name" in metafunc.fixturenames:
        metafunc.parametrize("small_space_name", sorted(SMALL_SPACES))


@pytest.fixture
def small_space(small_space_name):
    from nas_tf import spaces
    return spaces.get_space(small_space_name,
                            **SMALL_SPACES[small_space_name])


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _is_local_host(host) -> bool:
    if host is None:  # getaddrinfo(None, port): this machine's addresses
        return True
    if isinstance(host, bytes):
        host = host.decode()
    return host in _LOCAL_HOSTS or host.startswith("127.")


def _is_local_address(address) -> bool:
    # A Unix socket's address is a path; an internet one starts with the
    # host.
    return isinstance(address, (str, bytes)) or _is_local_host(address[0])


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach a remote host fails the test, from whichever
    thread makes it. Host lookups (every connection by name, the socket
    module's and urllib3's, resolves it through getaddrinfo) and connections
    to remote addresses raise; as a thread may swallow that error (the
    download checks in nas_tf/data/netcheck.py run in daemon threads), every
    attempt is also recorded and fails the test when it ends."""
    attempts = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def refuse(address):
        attempts.append(address)
        raise AssertionError(f"test tried to reach {address!r}")

    def local_only(host, *args, **kwargs):
        if not _is_local_host(host):
            refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock, address):
        if not _is_local_address(address):
            refuse(address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not _is_local_address(address):
            refuse(address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield
    if attempts:
        pytest.fail(f"test tried to reach the network: {attempts}",
                    pytrace=False)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def script_env():
    """The environment scripts run in: the project root importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def script_command(script, *args):
    import sys
    return [sys.executable, os.path.join(ROOT, "scripts", script), *args]


def run_script(script, *args, timeout=600, cwd=ROOT):
    """Runs ``scripts/<script>`` (from the project root unless ``cwd``
    says otherwise); returns (exit status, stdout, stderr)."""
    import subprocess
    result = subprocess.run(script_command(script, *args), cwd=cwd,
                            env=script_env(), capture_output=True, text=True,
                            timeout=timeout)
    return result.returncode, result.stdout, result.stderr


# Runs scripts/<script> once per command line, all in one interpreter, so
# TensorFlow is imported once for them. The script is loaded once as
# ``__main__`` (its flags defined) and its ``if __name__ == "__main__":``
# block runs for each command line as it would in a process of its own:
# flags and presets parsed from scratch, sys.exit's status, file
# descriptors 1 and 2 captured. Writes [status, stdout, stderr] per command
# line to the JSON file named by argv[3].
_SCRIPT_CASES = r"""
import ast
import json
import os
import sys
import tempfile
import traceback
import types

script, cases, results = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
sys.path.insert(0, os.path.dirname(script))
with open(script) as f:
    tree = ast.parse(f.read(), script)
blocks = [node for node in tree.body if isinstance(node, ast.If)
          and ast.unparse(node.test) == "__name__ == '__main__'"]
assert len(blocks) == 1, "no single __main__ block"
tree.body.remove(blocks[0])
module = types.ModuleType("__main__")
module.__file__ = script
sys.modules["__main__"] = module
sys.argv = [script]  # absl files __main__'s flags under sys.argv[0]
exec(compile(tree, script, "exec"), module.__dict__)
run_main = compile(ast.Module(body=blocks[0].body, type_ignores=[]), script,
                   "exec")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import command_line  # noqa: E402

out = []
for args in cases:
    flags.FLAGS.unparse_flags()
    command_line._read_presets.clear()
    # absl's app.run parses and sets up as on a first run.
    app._run_init.done = False
    app._register_and_parse_flags_with_usage.done = False
    sys.argv = [script, *args]
    captured = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(captured[0].fileno(), 1)
    os.dup2(captured[1].fileno(), 2)
    try:
        try:
            exec(run_main, module.__dict__)
            code = 0
        except SystemExit as e:  # as the interpreter makes it a status
            code = e.code
            if code is None:
                code = 0
            elif not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
    texts = []
    for f in captured:
        f.seek(0)
        texts.append(f.read().decode(errors="replace"))
        f.close()
    out.append([code, *texts])
with open(results, "w") as f:
    json.dump(out, f)
"""


def run_script_cases(script, *cases, timeout=600, cwd=ROOT):
    """Runs ``scripts/<script>`` with each of ``cases`` (lists of
    arguments) in turn, as ``run_script`` would, but all in one fresh
    interpreter, so TensorFlow starts once for them; returns (exit status,
    stdout, stderr) per case. For command lines that stop early (bad
    flags, a finished run): run_script keeps one real process."""
    import json
    import subprocess
    import sys
    import tempfile
    with tempfile.TemporaryDirectory() as scratch:
        results = os.path.join(scratch, "results.json")
        completed = subprocess.run(
            [sys.executable, "-c", _SCRIPT_CASES,
             os.path.join(ROOT, "scripts", script),
             json.dumps([list(map(str, case)) for case in cases]), results],
            cwd=cwd, env=script_env(), capture_output=True, text=True,
            timeout=timeout)
        assert completed.returncode == 0 and os.path.exists(results), \
            completed.stderr
        with open(results) as f:
            return [tuple(result) for result in json.load(f)]


def without_wall_clock(records):
    """Search history records without their timing fields, which differ
    between otherwise identical runs."""
    return [dict(r, metrics={k: v for k, v in r["metrics"].items()
                             if not k.endswith("seconds")}, wall_time=None)
            for r in records]


def summary_tags(logdir) -> set:
    """Every TensorBoard tag a search wrote in ``logdir``."""
    from nas_tf.search import run
    folder = os.path.join(logdir, run.SUMMARY_DIR)
    tags = set()
    for name in os.listdir(folder):
        for event in tf.compat.v1.train.summary_iterator(
                os.path.join(folder, name)):
            tags.update(v.tag for v in event.summary.value)
    return tags
