#!/usr/bin/env bash
# Batch prediction (issue 23): `kairo predict` vs the onnxruntime + pyarrow script a Python user
# would write (bench/predict_ort.py, 64k-row batches) and vs `mlflow models predict`, same
# machine, one run: 10M rows × 20 features in Parquet, a LogisticRegression and a 100-tree
# RandomForest (kairo and onnxruntime run their skl2onnx exports, MLflow the scikit-learn
# originals). Rows/s and peak RSS of each; goals: ≥ the script's rows/s, ≤ 1/4 of its peak RSS
# and < 300 MB, ≥ 10× MLflow. See bench/predict.py. Needs GNU time (apt-get install time).
# Usage: bash bench/predict.sh   (prints markdown tables; JSON in bench/results/predict.json)
# Settings: KAIRO (a kairo binary instead of building release), ROWS (default 10000000; the
# Parquet is cached in BENCH_DIR by row count, ~1 GiB at 10M), MLFLOW_ROWS (the rows MLflow
# predicts, as CSV, default 200000: it is far slower), ROUNDS (default 1), BENCH_DIR (default
# /tmp/kairo-bench-predict), TRAIN_ROWS (the models' training rows, default 50000: the forest's
# size), SKIP_KAIRO=1 (the peers only, no kairo needed), OUT (the JSON file), RAY_ADDRESS (also
# score with --executor ray on that head, token in KAIRO_RAY_TOKEN; e.g. after
# `eval "$(bash .ci/start-ray.sh)"`: RAY_ADDRESS=$KAIRO_TEST_RAY_ADDRESS KAIRO_RAY_TOKEN=$KAIRO_TEST_RAY_TOKEN).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ "${SKIP_KAIRO:-0}" == 1 ]]; then
    KAIRO_ARGS=(--skip-kairo)
else
    source "$ROOT/bench/kairo-bin.sh"
    KAIRO_ARGS=(--kairo "$KAIRO")
fi
PYTHON=$(bash "$ROOT/.ci/python-venv.sh")
mkdir -p "$ROOT/bench/results"
RAY_ARGS=()
if [[ -n "${RAY_ADDRESS:-}" ]]; then RAY_ARGS=(--ray-address "$RAY_ADDRESS"); fi
exec "$PYTHON" "$ROOT/bench/predict.py" "${KAIRO_ARGS[@]}" --mlflow "$(dirname "$PYTHON")/mlflow" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-predict}" --rows "${ROWS:-10000000}" \
    --mlflow-rows "${MLFLOW_ROWS:-200000}" --rounds "${ROUNDS:-1}" --train-rows "${TRAIN_ROWS:-50000}" \
    --out "${OUT:-$ROOT/bench/results/predict.json}" "${RAY_ARGS[@]}"
