#!/usr/bin/env bash
# Runs the test suite under Bazel 4.2, offline, with the project's Python
# environment (make install creates it). Arguments: targets (default
# //tests/...).
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(pwd)/.venv/bin/python"
[ -x "$python" ] || { echo "bazel_test.sh: run 'make install' first" >&2; exit 1; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(//tests/...)
status=0
bazel --max_idle_secs=60 test "${targets[@]}" \
    --incompatible_use_python_toolchains=false \
    --python_path="$python" \
    --test_output=errors || status=$?
bazel shutdown
exit $status
