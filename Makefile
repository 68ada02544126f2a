# Set-up and the project's two main commands:
#   make demo   describe a published architecture (installs first)
#   make test   the whole test suite (installs first)
# Bazel (4.2, Debian's bazel-bootstrap; `make bazel-install` installs it):
#   make bazel-test    every test target (//tests/...)
#   make bazel-smoke   a quick subset, which CI runs
# `make install GPU=1` installs TensorFlow's CUDA build instead.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REQUIREMENTS := $(if $(GPU),requirements-gpu.txt,requirements.txt)
STAMP := $(VENV)/.installed-$(notdir $(REQUIREMENTS))

.PHONY: install demo test test-fast bazel-install bazel-test bazel-smoke clean

install: $(STAMP)

$(STAMP): $(REQUIREMENTS) requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(REQUIREMENTS) -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

demo: install
	$(PY) scripts/describe.py --flagfile=configs/darts_cifar10_final.cfg \
	    --arch=DARTS_V2 --draw=darts_v2_cells.png

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

# The library, a test that imports conftest and runs a script, a script's
# binary (//tests:smoke), and every script target built.
BAZEL_SMOKE := //tests:smoke //scripts:all

bazel-install:
	bash tools/install_bazel.sh

bazel-test: install bazel-install
	bash tools/bazel_test.sh

bazel-smoke: install bazel-install
	bash tools/bazel_test.sh $(BAZEL_SMOKE)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
