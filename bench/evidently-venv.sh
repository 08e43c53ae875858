#!/usr/bin/env bash
# Create (or reuse) the venv that holds Evidently for bench/monitoring.sh, kept apart from the
# client-test venv (.ci/python-venv.sh). Prints the venv's python path on stdout.
# Override the location with KAIRO_BENCH_EVIDENTLY_VENV.
# pandas stays below 3: evidently 0.7.23 imports pandas.core.dtypes.common.infer_dtype_from_object,
# which pandas 3 removed.
set -euo pipefail
VENV=${KAIRO_BENCH_EVIDENTLY_VENV:-/var/cache/kairo-bench-evidently}
REQUIREMENTS="evidently==0.7.23 pandas==2.3.3 numpy==2.4.6 scipy==1.17.1"
STAMP="$VENV/.kairo-requirements"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$REQUIREMENTS" ]; then
    echo "creating $VENV with $REQUIREMENTS" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check $REQUIREMENTS >&2
    echo "$REQUIREMENTS" > "$STAMP"
fi
echo "$VENV/bin/python"
