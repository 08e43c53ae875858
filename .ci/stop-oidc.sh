#!/usr/bin/env bash
# Stop the provider started by .ci/start-oidc.sh and delete its state directory.
# Usage: bash .ci/stop-oidc.sh            (reads OIDC_PID and OIDC_STATE_DIR from the env)
#        bash .ci/stop-oidc.sh PID DIR
set -euo pipefail
exec bash "$(dirname "$0")/stop-service.sh" oidc "${1:-${OIDC_PID:-}}" "${2:-${OIDC_STATE_DIR:-}}" 'provider\.mjs' .kairo-oidc-state
