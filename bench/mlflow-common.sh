# Shared set-up of the benchmarks against MLflow (sourced): needs wrk, builds kairo in release,
# reuses or creates the test venv (.ci/python-venv.sh). Sets ROOT, KAIRO, PYTHON and MLFLOW.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
echo "building kairo (release)" >&2
(cd "$ROOT" && cargo build --release --locked -p kairo >&2)
KAIRO="${CARGO_TARGET_DIR:-$ROOT/target}/release/kairo"
PYTHON=$(bash "$ROOT/.ci/python-venv.sh")
MLFLOW="$(dirname "$PYTHON")/mlflow"
mkdir -p "$ROOT/bench/results"
