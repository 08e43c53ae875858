#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster on loopback, as the `postgres` user, in a temp dir.
#
# Usage:   eval "$(bash .ci/start-postgres.sh)"      # exports PG_PID, PG_DIR, KAIRO_TEST_POSTGRES_URL
#          bash .ci/stop-postgres.sh
# stdout carries only `export` lines; progress goes to stderr.
set -euo pipefail

log() { echo "start-postgres: $*" >&2; }

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [[ -z "$BIN" || ! -x "$BIN/initdb" ]]; then
    log "installing PostgreSQL server packages"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) 1>&2
    BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kairo-pg.XXXXXX")
chmod 755 "$PG_DIR"
if [[ $(id -u) -eq 0 ]]; then
    # PostgreSQL refuses to run as root: run it as the `postgres` user.
    id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
    chown postgres "$PG_DIR"
    run_pg() { runuser -u postgres -- "$@"; }
else
    run_pg() { "$@"; }
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
run_pg "$BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
run_pg "$BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PG_DIR -c fsync=off -c max_connections=200" start >&2 \
    || { cat "$PG_DIR/server.log" >&2; exit 1; }
PG_PID=$(head -n 1 "$PG_DIR/data/postmaster.pid")
log "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (pid $PG_PID)"

echo "export PG_BIN=$BIN"
echo "export PG_DIR=$PG_DIR"
echo "export PG_PID=$PG_PID"
echo "export KAIRO_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$PORT/postgres"
