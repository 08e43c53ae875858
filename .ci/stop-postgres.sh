#!/usr/bin/env bash
# Stop the cluster started by start-postgres.sh and remove its directory.
set -uo pipefail
[[ -n "${PG_DIR:-}" && -d "$PG_DIR/data" ]] || exit 0
if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1
else
    "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1
fi
rm -rf "$PG_DIR"
