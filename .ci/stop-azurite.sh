#!/usr/bin/env bash
# Stop the emulator started by .ci/start-azurite.sh and delete its state directory.
# Usage: bash .ci/stop-azurite.sh        (reads AZURITE_PID and AZURITE_STATE_DIR from the env)
set -euo pipefail
exec bash "$(dirname "$0")/stop-service.sh" azurite "${1:-${AZURITE_PID:-}}" "${2:-${AZURITE_STATE_DIR:-}}" 'azurite' .kairo-azurite-state
