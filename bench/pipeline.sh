#!/usr/bin/env bash
# Benchmark `kairo run` against `dvc repro` on chains of trivial stages, same machine, one run.
# Usage: bash bench/pipeline.sh      (prints a table; JSON goes to bench/results/pipeline.json)
# Settings: BENCH_DIR (scratch, default /tmp/kairo-bench-pipeline), BENCH_VENV, ROUNDS, STAGES.
set -euo pipefail
source "$(dirname "$0")/common.sh"

exec python3 "$ROOT/bench/pipeline.py" --kairo "$KAIRO" --dvc "$VENV/bin/dvc" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-pipeline}" --rounds "${ROUNDS:-3}" \
    --stages "${STAGES:-10,100}" --out "$ROOT/bench/results/pipeline.json"
