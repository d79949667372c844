#!/bin/sh
# Installs the Debian packages the tests and benchmarks use, when missing:
# systemd-analyze validates deploy/systemd; PostgreSQL and Redis are the
# anchors of benchmark figures 1 and 5 (the test suite runs `bench --quick`).
# Run as root (CI is); elsewhere it says what to install and fails.
set -eu
missing=""
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
# tests/console runs the web console in headless Chromium through its WebDriver.
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "tests need Debian packages:$missing (run: sudo apt-get install -y$missing)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
