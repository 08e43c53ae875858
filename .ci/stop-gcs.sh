#!/usr/bin/env bash
# Stop the emulator started by .ci/start-gcs.sh and delete its state directory.
# Usage: bash .ci/stop-gcs.sh        (reads GCS_EMULATOR_PID and GCS_EMULATOR_STATE_DIR from the env)
set -euo pipefail
exec bash "$(dirname "$0")/stop-service.sh" gcs "${1:-${GCS_EMULATOR_PID:-}}" "${2:-${GCS_EMULATOR_STATE_DIR:-}}" 'fake-gcs-server' .kairo-gcs-state
