#!/usr/bin/env bash
# Prediction-log privacy (issue 21): `kairo serve` latency with a policy on every input column
# (hash, bucket, mask, drop) vs without, same machine, one run; the floor is GET /v2/health/live.
# Usage: bash bench/privacy.sh   (needs wrk; prints a markdown table; JSON in
# bench/results/privacy.json)
# Settings: KAIRO (a kairo binary instead of building release), ROUNDS (default 5), SECS (wrk
# seconds per cell, default 5), CONNS (default 1), BENCH_DIR (default /tmp/kairo-bench-privacy).
set -euo pipefail
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
source "$(dirname "${BASH_SOURCE[0]}")/kairo-bin.sh"
exec python3 "$ROOT/bench/privacy.py" --kairo "$KAIRO" --model "$ROOT/fixtures/models/logreg20.onnx" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-privacy}" --rounds "${ROUNDS:-5}" --secs "${SECS:-5}" \
    --conns "${CONNS:-1}" --out "$ROOT/bench/results/privacy.json"
