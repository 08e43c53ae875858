#!/usr/bin/env bash
# Performance estimation before labels (issue 21): `kairo monitor estimate` vs NannyML's CBPE
# on the same Parquet files — a 5,000-row labelled reference and 1,000,000 current rows in
# chunks of 100,000 — same machine, one run; the floor is reading the files (`cat`).
# Usage: bash bench/cbpe.sh   (prints a markdown table; JSON in bench/results/cbpe.json)
# Settings: KAIRO (a kairo binary instead of building release), ROWS (default 1000000), ROUNDS
# (default 3), BENCH_DIR (default /tmp/kairo-bench-cbpe), KAIRO_BENCH_NANNYML_VENV.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/kairo-bin.sh"
PYTHON=$(bash "$ROOT/bench/nannyml-venv.sh")
exec "$PYTHON" "$ROOT/bench/cbpe.py" --kairo "$KAIRO" --python "$PYTHON" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-cbpe}" --rows "${ROWS:-1000000}" --rounds "${ROUNDS:-3}" \
    --out "$ROOT/bench/results/cbpe.json"
