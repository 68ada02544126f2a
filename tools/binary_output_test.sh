#!/usr/bin/env bash
# Runs a Bazel binary and checks that one line of its output is exactly as
# expected. Arguments: BINARY EXPECTED_LINE [BINARY_ARGS...]
set -euo pipefail
binary="$1"
expected="$2"
shift 2
output="$("$binary" "$@")"
if ! grep -qxF -- "$expected" <<<"$output"; then
    printf '%s printed no line "%s"; its output:\n%s\n' \
        "$binary" "$expected" "$output" >&2
    exit 1
fi
