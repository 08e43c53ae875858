#!/usr/bin/env bash
# The prediction log's format (issue 22): bytes per logged row and a monitor check over a
# window of 1M logged rows, two kairo binaries in one run (see bench/predlog.py).
# Usage: OLD=/path/to/old/kairo bash bench/predlog.sh   (NEW: $KAIRO, else a release build)
# Settings: ROWS (default 1000000), ROUNDS (default 3), BENCH_DIR (default /tmp/kairo-bench-predlog).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/kairo-bin.sh"
[[ -x "${OLD:-}" ]] || { echo "set OLD to the kairo binary to compare with" >&2; exit 1; }
exec python3 "$ROOT/bench/predlog.py" --old "$OLD" --new "$KAIRO" --model "$ROOT/fixtures/models/logreg20.onnx" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-predlog}" --rows "${ROWS:-1000000}" --rounds "${ROUNDS:-3}" \
    --out "$ROOT/bench/results/predlog.json"
