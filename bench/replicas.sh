#!/usr/bin/env bash
# Serving replicas (issue 19): throughput of one vs two `kairo serve` replicas of one model on
# one PostgreSQL database, same machine, one run; and how many database statements and
# transactions the serving path causes per request (none expected: only the background poll
# every --poll-ms and the flushes every --log-flush-s write). Starts its own throw-away
# PostgreSQL (.ci/start-postgres.sh, restarted once with pg_stat_statements loaded when the
# server has it) in a fresh database, and stops it on exit.
# Usage: bash bench/replicas.sh   (needs wrk; prints markdown tables; JSON goes to
# bench/results/replicas.json)
# Settings: KAIRO (a kairo binary to use instead of building release; then label it with BUILD,
# e.g. BUILD=debug), ROUNDS (default 5), SECS (wrk seconds per cell, default 5), CONNS (total
# wrk connections, default 8), REQUESTS (requests counted against the database, default
# 20000), DB_WINDOW (seconds of each idle and loaded database window, default 30), POLL_MS
# (default 1000), LOG_FLUSH_S (default 10), BENCH_DIR (scratch, default
# /tmp/kairo-bench-replicas), PGSS=0 (skip pg_stat_statements: count transactions only),
# BENCH_PYTHON (runs bench/replicas.py; default the test venv's python, else python3).
set -euo pipefail
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
source "$(dirname "${BASH_SOURCE[0]}")/kairo-bin.sh"

PYTHON=${BENCH_PYTHON:-/var/cache/kairo-py-venv/bin/python}
[[ -x "$PYTHON" ]] || PYTHON=python3

# Only the cluster this script started is stopped: never one whose variables were inherited.
unset PG_DIR PG_PID PG_BIN KAIRO_TEST_POSTGRES_URL
OUR_PG_DIR="" BENCH_PID=""
cleanup() {
    [[ -n "$OUR_PG_DIR" ]] && PG_DIR=$OUR_PG_DIR bash "$ROOT/.ci/stop-postgres.sh" || true
}
# Ctrl-C or a kill: the bench goes first (it stops its servers), then PostgreSQL (EXIT).
on_signal() {
    [[ -n "$BENCH_PID" ]] && kill -TERM "$BENCH_PID" 2>/dev/null && wait "$BENCH_PID"
    exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

eval "$(bash "$ROOT/.ci/start-postgres.sh")"
OUR_PG_DIR=$PG_DIR
if [[ $(id -u) -eq 0 ]]; then as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi

# pg_stat_statements counts every statement by its text, but only when loaded at server start:
# restart this throw-away cluster once with it (pg_ctl restart keeps the start options).
PGSS=${PGSS:-1}
if [[ "$PGSS" != 0 ]]; then
    if [[ -f "$("$PG_BIN/pg_config" --pkglibdir)/pg_stat_statements.so" ]] &&
        psql -X -q "$KAIRO_TEST_POSTGRES_URL" -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >&2 &&
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 restart >/dev/null 2>&1; then
        echo "replicas.sh: PostgreSQL restarted with pg_stat_statements" >&2
    else
        echo "replicas.sh: pg_stat_statements unavailable; counting transactions only" >&2
        PGSS=0
        # A failed restart leaves the cluster down: start it again without the library.
        if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
            : >"$PG_DIR/data/postgresql.auto.conf"
            as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 start >/dev/null
        fi
    fi
fi

# In the background and waited for, so that a signal reaches the trap at once.
"$PYTHON" "$ROOT/bench/replicas.py" --kairo "$KAIRO" --build "$BUILD" --root "$ROOT" \
    --pg-url "$KAIRO_TEST_POSTGRES_URL" --pgss "$PGSS" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-replicas}" --rounds "${ROUNDS:-5}" --secs "${SECS:-5}" \
    --conns "${CONNS:-8}" --requests "${REQUESTS:-20000}" --db-window "${DB_WINDOW:-30}" \
    --poll-ms "${POLL_MS:-1000}" --log-flush-s "${LOG_FLUSH_S:-10}" \
    --out "$ROOT/bench/results/replicas.json" &
BENCH_PID=$!
wait "$BENCH_PID"
