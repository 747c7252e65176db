#!/usr/bin/env bash
# Install Debian's PostgreSQL server binaries (initdb, pg_ctl) when they are absent, so that
# tests/test_scale_tuning.py can start a throw-away server. Idempotent: does nothing when
# initdb is already on PATH or under /usr/lib/postgresql/*/bin. Called by .ci/run.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y postgresql
