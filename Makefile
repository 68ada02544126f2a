# Set-up and the project's two main commands:
#   make demo       the main job end to end on generated data: a NAS-RL
#                   search, retraining of its best architecture, export,
#                   classification with the export (installs first)
#   make test       the whole test suite (installs first)
# Also: make describe (count and draw DARTS_V2), make test-fast.
# Bazel (4.2, Debian's bazel-bootstrap; `make bazel-install` installs it):
#   make bazel-test    every test target (//tests/...)
#   make bazel-smoke   a quick subset, which CI runs
# `make install GPU=1` installs TensorFlow's CUDA build instead.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REQUIREMENTS := $(if $(GPU),requirements-gpu.txt,requirements.txt)
STAMP := $(VENV)/.installed-$(notdir $(REQUIREMENTS))

DEMO := runs/demo

.PHONY: install demo describe test test-fast bazel-install bazel-test \
    bazel-smoke clean

install: $(STAMP)

$(STAMP): $(REQUIREMENTS) requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(REQUIREMENTS) -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

# Each step resumes or reprints a finished one: a second `make demo`
# searches and trains nothing again.
demo: install
	$(PY) scripts/search.py --preset=quickstart --logdir=$(DEMO)
	$(PY) scripts/train.py --preset=quickstart_train \
	    --flagfile=$(DEMO)/best_arch.cfg --arch_file=$(DEMO)/best_arch.txt \
	    --logdir=$(DEMO)/final
	$(PY) scripts/export.py --logdir=$(DEMO)/final \
	    --export_dir=$(DEMO)/final/export --overwrite
	$(PY) scripts/classify.py --export_dir=$(DEMO)/final/export \
	    --dataset=dominoes --num_images=8

describe: install
	$(PY) scripts/describe.py --preset=darts_cifar10_final \
	    --arch=DARTS_V2 --draw=darts_v2_cells.png

# Two pytest workers (pytest-xdist): most of the suite's time is Python
# tracing TensorFlow functions, one core per process, so two processes
# halve it on two cores. TESTERS=N for another count.
TESTERS ?= 2

test: install
	$(PY) -m pytest -q -n $(TESTERS)

test-fast: install
	$(PY) -m pytest -q -n $(TESTERS) -m "not slow"

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
