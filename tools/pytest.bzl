"""pytest_test: a py_test that runs one pytest file."""

def pytest_test(name, src, deps = [], data = [], size = "medium", tags = []):
    native.py_test(
        name = name,
        srcs = [src, "//tools:pytest_main.py"],
        main = "//tools:pytest_main.py",
        args = ["$(location %s)" % src],
        python_version = "PY3",
        deps = deps,
        data = data + ["//:pyproject.toml", "conftest.py"],
        size = size,
        tags = tags,
    )
