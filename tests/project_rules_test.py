"""Rules the layout relies on: scripts never shadow the standard library,
and flags live only in scripts/."""

import pathlib
import subprocess
import sys

import pytest

from conftest import script_env

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_script_names_do_not_shadow_standard_library_modules():
    # `python scripts/X.py` puts scripts/ first on sys.path, so a
    # scripts/inspect.py would replace `inspect` inside TensorFlow.
    names = {p.stem for p in (ROOT / "scripts").glob("*.py")}
    assert names, "no scripts found"
    assert not names & set(sys.stdlib_module_names)
    assert not names & set(sys.builtin_module_names)


def test_library_takes_no_absl_flags():
    offenders = [str(p.relative_to(ROOT))
                 for p in (ROOT / "nas_tf").rglob("*.py")
                 if "absl" in p.read_text() and "flags" in p.read_text()]
    assert offenders == []


def test_every_package_is_in_the_wheel():
    import tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "nas_tf").rglob("__init__.py")}
    assert {p for p in listed if p.startswith("nas_tf.") or p == "nas_tf"} \
        == found
    dirs = config["tool"]["setuptools"]["package-dir"]
    assert dirs == {"nas_tf_cli": "scripts", "nas_tf_cli.presets": "configs"}
    assert {"nas_tf_cli", "nas_tf_cli.presets"} <= listed


@pytest.mark.slow
def test_importing_the_library_changes_no_global_state():
    # A notebook's matplotlib backend, warning filters and TensorFlow
    # logger stay as they were, whatever of nas_tf it imports.
    code = """
import logging, warnings, matplotlib
matplotlib.use("svg")
import tensorflow as tf
before = (matplotlib.get_backend(), list(warnings.filters),
          list(tf.get_logger().filters))
import nas_tf.search.run, nas_tf.training.final_training, nas_tf.export
import nas_tf.drawing, nas_tf.describe, nas_tf.data.datasets
after = (matplotlib.get_backend(), list(warnings.filters),
         list(tf.get_logger().filters))
assert before == after, (before, after)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                            env=script_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
