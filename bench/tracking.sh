#!/usr/bin/env bash
# Benchmark `kairo server` against `mlflow server` (SQLite backends) on the same machine, one run:
# start-up time, idle RSS, log-metric throughput (wrk, 2 and 8 connections), search_runs with a
# metric filter over 10,000 runs, and the Python client's per-call log_metric latency.
# Usage: bash bench/tracking.sh     (needs `wrk`: apt-get install wrk)
# Settings: BENCH_DIR (scratch, default /tmp/kairo-bench-tracking), DURATION (wrk seconds), RUNS.
set -euo pipefail
source "$(dirname "$0")/mlflow-common.sh"
exec "$PYTHON" "$ROOT/bench/tracking.py" --kairo "$KAIRO" --mlflow "$MLFLOW" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-tracking}" --duration "${DURATION:-10}" --runs "${RUNS:-10000}" \
    --out "$ROOT/bench/results/tracking.json"
