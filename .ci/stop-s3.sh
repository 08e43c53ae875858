#!/usr/bin/env bash
# Stop the server started by .ci/start-s3.sh and delete its state directory.
# Usage: bash .ci/stop-s3.sh            (reads S3_PID and S3_STATE_DIR from the env)
#        bash .ci/stop-s3.sh PID DIR
set -euo pipefail

pid=${1:-${S3_PID:-}}
dir=${2:-${S3_STATE_DIR:-}}

log() { echo "stop-s3: $*" >&2; }

if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    # Only signal the process if it still is s3s-fs (the PID may have been reused).
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 's3s-fs'; then
        kill "$pid" 2>/dev/null || true          # SIGTERM: s3s-fs exits at once
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid still alive after 5 s, sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
    else
        log "pid $pid is not s3s-fs; not killing it"
    fi
fi

# Only remove directories that start-s3.sh created (they carry a marker file).
if [[ -n "$dir" && -d "$dir" ]]; then
    if [[ -f "$dir/.kairo-s3-state" ]]; then
        rm -rf "$dir"
    else
        log "$dir has no .kairo-s3-state marker; not removing it"
    fi
fi
