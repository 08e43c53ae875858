#!/usr/bin/env bash
# Create (or reuse) the Python venv the client-compatibility tests use, with pinned clients.
# Prints the venv's python path on stdout. Override the location with KAIRO_PY_VENV and the
# pinned packages with KAIRO_PY_REQUIREMENTS (the benchmarks use this for their own venvs).
set -euo pipefail
VENV=${KAIRO_PY_VENV:-/var/cache/kairo-py-venv}
REQUIREMENTS=${KAIRO_PY_REQUIREMENTS:-"mlflow==3.17.2 scikit-learn==1.7.2 skl2onnx==1.20.0 onnx==1.23.2 onnxruntime==1.31.1 tritonclient[http]==2.73.0 statsmodels==0.15.0 kubernetes-validate==1.37.0"}
STAMP="$VENV/.kairo-requirements"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$REQUIREMENTS" ]; then
    echo "creating $VENV with $REQUIREMENTS" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check $REQUIREMENTS >&2
    echo "$REQUIREMENTS" > "$STAMP"
fi
echo "$VENV/bin/python"
