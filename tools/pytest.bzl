"""pytest_test: a py_test that runs one pytest file."""

def pytest_test(name, src, deps = [], data = [], pytest_args = [], size = "medium", tags = []):
    """One pytest file as a Bazel test.

    Args:
      name: the target's name.
      src: the pytest file.
      deps: Python libraries the file imports.
      data: files the tests read.
      pytest_args: extra pytest arguments, e.g. ["-k", "NAME"] to run some
        of the file's tests.
      size: the Bazel test size (sets the timeout).
      tags: the Bazel tags.
    """
    native.py_test(
        name = name,
        srcs = [src, "//tools:pytest_main.py"],
        main = "//tools:pytest_main.py",
        args = ["$(location %s)" % src] + pytest_args,
        python_version = "PY3",
        # Bazel would otherwise add an __init__.py to every runfiles
        # directory holding Python files; tests/ would become a package,
        # pytest would import tests/conftest.py as `tests.conftest`, and the
        # test files' `from conftest import ...` would fail. Without it the
        # runfiles look like the checkout `make test` runs in.
        legacy_create_init = False,
        deps = deps,
        data = data + ["//:pyproject.toml"],
        size = size,
        tags = tags,
    )
