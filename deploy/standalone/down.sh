#!/usr/bin/env bash
# Stop exactly the daemons deploy/standalone/up.sh started. Usage: down.sh [--state-dir D]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec "$root/.venv/bin/hepspark" cluster down "$@"
