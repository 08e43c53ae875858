#!/usr/bin/env bash
# Benchmark `kairo run` against `dvc repro` on chains of trivial stages, same machine, one run.
# Usage: bash bench/pipeline.sh      (prints a table; JSON goes to bench/results/pipeline.json)
# Settings: BENCH_DIR (scratch, default /tmp/kairo-bench-pipeline), BENCH_VENV, ROUNDS, STAGES.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${BENCH_VENV:-/var/cache/kairo-bench-venv}
DVC_VERSION=3.67.1

echo "building kairo (release)" >&2
(cd "$ROOT" && cargo build --release --locked -p kairo >&2)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KAIRO="$TARGET_DIR/release/kairo"

if ! "$VENV/bin/dvc" --version 2>/dev/null | grep -q "$DVC_VERSION"; then
    echo "creating $VENV with dvc==$DVC_VERSION" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "dvc==$DVC_VERSION" >&2
fi

mkdir -p "$ROOT/bench/results"
exec python3 "$ROOT/bench/pipeline.py" --kairo "$KAIRO" --dvc "$VENV/bin/dvc" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-pipeline}" --rounds "${ROUNDS:-3}" \
    --stages "${STAGES:-10,100}" --out "$ROOT/bench/results/pipeline.json"
