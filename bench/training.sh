#!/usr/bin/env bash
# Quality and training time of `kairo train` against scikit-learn on the same splits, same
# machine, one run: breast cancer, wine and diabetes (shipped with scikit-learn) and a synthetic
# 1M × 20 classification set. logistic vs LogisticRegression (standardised), gbdt vs
# HistGradientBoosting{Classifier,Regressor}, random_forest vs RandomForestClassifier
# (n_jobs=2), linear vs LinearRegression.
# Usage: bash bench/training.sh   (prints a table; JSON goes to bench/results/training.json)
# Settings: BENCH_DIR (scratch, default /tmp/kairo-bench-training), LARGE_ROWS (default 1000000),
# LARGE_TREES (forest size on the large set for both tools, default 10).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

echo "building kairo (release)" >&2
(cd "$ROOT" && cargo build --release --locked -p kairo >&2)
KAIRO="${CARGO_TARGET_DIR:-$ROOT/target}/release/kairo"

PYTHON=$(bash "$ROOT/.ci/python-venv.sh")
mkdir -p "$ROOT/bench/results"
exec "$PYTHON" "$ROOT/bench/training.py" --kairo "$KAIRO" --work "${BENCH_DIR:-/tmp/kairo-bench-training}" \
    --large-rows "${LARGE_ROWS:-1000000}" --large-trees "${LARGE_TREES:-10}" --out "$ROOT/bench/results/training.json"
