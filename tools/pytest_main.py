"""Runs the pytest files given as arguments (the Bazel test entry point).

The tests must exercise the library of the tree under test, the copy in the
runfiles: an environment with nas_tf installed from elsewhere (an editable
install of another checkout, say) must not win. Bazel puts the runfiles
first on PYTHONPATH; the check below turns a mistake there into one clear
error instead of tests of the wrong code.
"""

import importlib.util
import os
import sys

import pytest


def library_mismatch(root):
    """Why ``import nas_tf`` would not load ``root``'s library (None when
    it would). Paths are compared resolved: runfiles are symlinks."""
    expected = os.path.join(root, "nas_tf", "__init__.py")
    if not os.path.isfile(expected):
        return f"{root} holds no nas_tf package"
    spec = importlib.util.find_spec("nas_tf")
    found = spec.origin if spec and spec.origin else None
    if found is None or os.path.realpath(found) != os.path.realpath(expected):
        return (f"nas_tf would be imported from {found}, not from the tree "
                f"under test {root}")
    return None


if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mismatch = library_mismatch(root)
    if mismatch:
        sys.exit(f"pytest_main.py: {mismatch}")
    # Subprocess-based tests find the library through PYTHONPATH.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [root] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", root,
                          "-c", os.path.join(root, "pyproject.toml")]
                         + sys.argv[1:]))
