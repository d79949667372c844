#!/bin/sh
# Installs the Debian packages the test suite uses as validators, when missing.
# Run as root (CI is); elsewhere it says what to install and fails.
set -eu
missing=""
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "tests need Debian packages:$missing (run: sudo apt-get install -y$missing)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
