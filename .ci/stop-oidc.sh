#!/usr/bin/env bash
# Stop the provider started by .ci/start-oidc.sh and delete its state directory.
# Usage: bash .ci/stop-oidc.sh            (reads OIDC_PID and OIDC_STATE_DIR from the env)
#        bash .ci/stop-oidc.sh PID DIR
set -euo pipefail

pid=${1:-${OIDC_PID:-}}
dir=${2:-${OIDC_STATE_DIR:-}}

log() { echo "stop-oidc: $*" >&2; }

if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    # Only signal the process if it still is our provider (the PID may have been reused).
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'provider\.mjs'; then
        kill "$pid" 2>/dev/null || true          # SIGTERM: closes the listener and exits
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid still alive after 5 s, sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
    else
        log "pid $pid is not provider.mjs; not killing it"
    fi
fi

# Only remove directories that start-oidc.sh created (they carry a marker file).
if [[ -n "$dir" && -d "$dir" ]]; then
    if [[ -f "$dir/.kairo-oidc-state" ]]; then
        rm -rf "$dir"
    else
        log "$dir has no .kairo-oidc-state marker; not removing it"
    fi
fi
