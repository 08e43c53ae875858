#!/usr/bin/env bash
# Benchmark `kairo data add|status` against DVC, cp and b3sum on the same machine in one run.
# Usage: bash bench/data_versioning.sh          (writes results to stdout and bench/results/)
# Settings: BENCH_DIR (scratch, default /tmp/kairo-bench; needs ~9 GiB), BENCH_VENV, ROUNDS.
set -euo pipefail
source "$(dirname "$0")/common.sh"

exec python3 "$ROOT/bench/data_versioning.py" --kairo "$KAIRO" --dvc "$VENV/bin/dvc" \
    --work "${BENCH_DIR:-/tmp/kairo-bench}" --rounds "${ROUNDS:-5}" --out "$ROOT/bench/results/data_versioning.json"
