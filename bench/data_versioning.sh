#!/usr/bin/env bash
# Benchmark `kairo data add|status` against DVC, cp and b3sum on the same machine in one run.
# Usage: bash bench/data_versioning.sh          (writes results to stdout and bench/results/)
# Settings: BENCH_DIR (scratch, default /tmp/kairo-bench; needs ~9 GiB), BENCH_VENV, ROUNDS.
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
exec python3 "$ROOT/bench/data_versioning.py" --kairo "$KAIRO" --dvc "$VENV/bin/dvc" \
    --work "${BENCH_DIR:-/tmp/kairo-bench}" --rounds "${ROUNDS:-5}" --out "$ROOT/bench/results/data_versioning.json"
