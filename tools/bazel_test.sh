#!/usr/bin/env bash
# Runs tests under Bazel 4.2 (Debian's bazel-bootstrap), offline, with the
# project's Python environment (make install creates it), then stops the
# Bazel server. Arguments: targets (default //tests/...) and any further
# `bazel test` options, e.g. --test_arg=-m --test_arg='not slow'.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(pwd)/.venv/bin/python"
[ -x "$python" ] || { echo "bazel_test.sh: no $python; run 'make install' first" >&2; exit 1; }
command -v bazel >/dev/null || { echo "bazel_test.sh: no bazel on PATH; run 'make bazel-install' (Debian, as root) or install Bazel 4.2" >&2; exit 1; }
args=("$@")
targets=0
for arg in "${args[@]}"; do [[ "$arg" == -* ]] || targets=1; done
[ "$targets" = 1 ] || args+=(//tests/...)
status=0
# Bazel 4.2 ignores --python_path unless its Python toolchains are off.
bazel --max_idle_secs=60 test "${args[@]}" \
    --incompatible_use_python_toolchains=false \
    --python_path="$python" \
    --test_output=errors || status=$?
bazel shutdown
exit $status
