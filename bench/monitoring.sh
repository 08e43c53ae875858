#!/usr/bin/env bash
# Benchmark `kairo monitor check --preset evidently` against Evidently's DataDriftPreset on the
# same CSV files (10k, 100k and 1M rows of 25 columns), same machine, one run.
# Usage: bash bench/monitoring.sh   (prints a table; JSON goes to bench/results/monitoring.json)
# Settings: BENCH_DIR (scratch for the CSVs, default /tmp/kairo-bench-monitoring; the 1M-row pair
# takes about 0.5 GiB), SIZES (default 10000,100000,1000000), ROUNDS (default 3, for sizes up to
# 100k; larger ones run once), FORMAT (csv or parquet: the files both tools read), KAIRO (a
# prebuilt kairo instead of building release), KAIRO_BENCH_EVIDENTLY_VENV.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/kairo-bin.sh"

PYTHON=$(bash "$ROOT/bench/evidently-venv.sh")

exec "$PYTHON" "$ROOT/bench/monitoring.py" --kairo "$KAIRO" --python "$PYTHON" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-monitoring}" --sizes "${SIZES:-10000,100000,1000000}" \
    --rounds "${ROUNDS:-3}" --format "${FORMAT:-csv}" --out "$ROOT/bench/results/monitoring${FORMAT:+-$FORMAT}.json"
