#!/usr/bin/env bash
# Stop the server started by .ci/start-sshd.sh and delete its state directory (keys included).
# Usage: bash .ci/stop-sshd.sh        (reads SSHD_PID and SSHD_STATE_DIR from the env)
set -euo pipefail
exec bash "$(dirname "$0")/stop-service.sh" sshd "${1:-${SSHD_PID:-}}" "${2:-${SSHD_STATE_DIR:-}}" 'sshd' .kairo-sshd-state
