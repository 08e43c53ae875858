#!/usr/bin/env bash
# Create (or reuse) the venv that holds NannyML for bench/cbpe.sh, with the same script as the
# test venvs (.ci/python-venv.sh). Prints the venv's python path. Override the location with
# KAIRO_BENCH_NANNYML_VENV. nannyml 0.13.1 imports statsmodels without declaring it.
set -euo pipefail
export KAIRO_PY_VENV=${KAIRO_BENCH_NANNYML_VENV:-/var/cache/kairo-bench-nannyml}
export KAIRO_PY_REQUIREMENTS="nannyml==0.13.1 statsmodels==0.15.0 numpy==2.4.6 pandas==3.1.1 scikit-learn==1.9.1 scipy==1.17.1 pyarrow==26.0.1"
exec bash "$(dirname "$0")/../.ci/python-venv.sh"
