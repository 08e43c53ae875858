#!/usr/bin/env bash
# Create (or reuse) the venv that holds Evidently for bench/monitoring.sh, kept apart from the
# client-test venv, with the same script (.ci/python-venv.sh). Prints the venv's python path.
# Override the location with KAIRO_BENCH_EVIDENTLY_VENV.
# pandas stays below 3: evidently 0.7.23 imports pandas.core.dtypes.common.infer_dtype_from_object,
# which pandas 3 removed.
set -euo pipefail
export KAIRO_PY_VENV=${KAIRO_BENCH_EVIDENTLY_VENV:-/var/cache/kairo-bench-evidently}
export KAIRO_PY_REQUIREMENTS="evidently==0.7.23 pandas==2.3.3 numpy==2.4.6 scipy==1.17.1 pyarrow==26.0.1"
exec bash "$(dirname "$0")/../.ci/python-venv.sh"
