#!/usr/bin/env bash
# Installs Debian's Bazel 4.2 (package bazel-bootstrap), the version the
# workspace is written for, unless a bazel is on PATH already. Needs root.
set -euo pipefail
command -v bazel >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install_bazel.sh: no bazel on PATH; install Bazel 4.2 (Debian, as root: apt-get install --no-install-recommends bazel-bootstrap)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends bazel-bootstrap
