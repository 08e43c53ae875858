#!/usr/bin/env bash
# Kairo's server-rendered web UI against MLflow's UI search endpoints, on the same data, same
# machine, one run (issue 18): the runs page, a filtered search and a 500-run compare over
# RUNS runs with KEYS params and KEYS metrics each, on SQLite and PostgreSQL; /health as floor.
# Usage: bash bench/ui.sh     (builds kairo in release; writes bench/results/ui.json and prints
# a markdown table; mlflow-common.sh also insists on `wrk`, which this benchmark does not use)
# Settings: RUNS (default 100000), KEYS (params per run and metrics per run, default 50 each),
# ROUNDS (timed requests after a warm-up, default 7), COMPARE (runs compared, default 500),
# THREADS (connections loading Kairo, default 4), STORES (default all four:
# kairo-sqlite,kairo-postgres,mlflow-sqlite,mlflow-postgres), BENCH_DIR (scratch, default
# /tmp/kairo-bench-ui), KAIRO_BENCH_PG_URL (a PostgreSQL server the bench creates its databases
# on; default: a throw-away cluster from .ci/start-postgres.sh). MLflow runs on PostgreSQL only
# if the venv has psycopg2; otherwise the output says it was measured on SQLite only.
set -euo pipefail
source "$(dirname "$0")/mlflow-common.sh"
if [[ -z "${KAIRO_BENCH_PG_URL:-}" ]]; then
    eval "$(bash "$ROOT/.ci/start-postgres.sh")"
    trap 'bash "$ROOT/.ci/stop-postgres.sh"' EXIT
    KAIRO_BENCH_PG_URL=$KAIRO_TEST_POSTGRES_URL
fi
"$PYTHON" "$ROOT/bench/ui.py" --kairo "$KAIRO" --mlflow "$MLFLOW" --postgres "$KAIRO_BENCH_PG_URL" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-ui}" --runs "${RUNS:-100000}" --keys "${KEYS:-50}" \
    --rounds "${ROUNDS:-7}" --compare "${COMPARE:-500}" --threads "${THREADS:-4}" \
    --stores "${STORES:-kairo-sqlite,kairo-postgres,mlflow-sqlite,mlflow-postgres}" \
    --out "$ROOT/bench/results/ui.json"
