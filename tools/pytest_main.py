"""Runs the pytest files given as arguments (the Bazel test entry point)."""

import os
import sys

import pytest

if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Subprocess-based tests find the library through PYTHONPATH.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [root] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", root,
                          "-c", os.path.join(root, "pyproject.toml")]
                         + sys.argv[1:]))
