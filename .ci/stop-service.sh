#!/usr/bin/env bash
# Stop a throw-away test service started by one of the .ci/start-*.sh scripts and delete its
# state directory. Shared by .ci/stop-s3.sh and .ci/stop-oidc.sh.
# Usage: bash .ci/stop-service.sh NAME PID DIR CMDLINE_PATTERN MARKER_FILE
#   Signals PID only if its command line still matches CMDLINE_PATTERN (PIDs are reused), and
#   removes DIR only if it holds MARKER_FILE (only directories the start script made).
set -euo pipefail

name=$1 pid=$2 dir=$3 pattern=$4 marker=$5
log() { echo "stop-$name: $*" >&2; }

if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$pattern"; then
        kill "$pid" 2>/dev/null || true          # SIGTERM first
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid still alive after 5 s, sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
    else
        log "pid $pid is not $pattern; not killing it"
    fi
fi

if [[ -n "$dir" && -d "$dir" ]]; then
    if [[ -f "$dir/$marker" ]]; then
        rm -rf "$dir"
    else
        log "$dir has no $marker marker; not removing it"
    fi
fi
