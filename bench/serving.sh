#!/usr/bin/env bash
# Benchmark `kairo serve` against `mlflow models serve` on the same machine, one run: the same
# models (a 20-feature LogisticRegression and a 100-tree RandomForest; Kairo serves their
# skl2onnx exports, MLflow the scikit-learn originals), MLflow's /invocations payload, wrk at
# 1 and 8 connections with 1-row and 100-row requests; plus onnxruntime in-process per-row
# latency as the floor. Usage: bash bench/serving.sh   (needs `wrk`: apt-get install wrk)
# Settings: BENCH_DIR (scratch, default /tmp/kairo-bench-serving), DURATION (wrk seconds).
set -euo pipefail
source "$(dirname "$0")/mlflow-common.sh"
exec "$PYTHON" "$ROOT/bench/serving.py" --kairo "$KAIRO" --mlflow "$MLFLOW" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-serving}" --duration "${DURATION:-8}" \
    --out "$ROOT/bench/results/serving.json"
