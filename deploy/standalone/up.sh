#!/usr/bin/env bash
# Start a Spark standalone master + workers on 127.0.0.1 (see README.md here).
# Usage: deploy/standalone/up.sh [--workers 2] [--cores-per-worker 1] [--memory 2g] [--state-dir D]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec "$root/.venv/bin/hepspark" cluster up "$@"
