# Shared set-up of the benchmark scripts (sourced): build kairo in release and make sure the
# venv holds the pinned DVC. Sets ROOT, KAIRO and VENV.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${BENCH_VENV:-/var/cache/kairo-bench-venv}
DVC_VERSION=3.67.1

echo "building kairo (release)" >&2
(cd "$ROOT" && cargo build --release --locked -p kairo >&2)
KAIRO="${CARGO_TARGET_DIR:-$ROOT/target}/release/kairo"

if ! "$VENV/bin/dvc" --version 2>/dev/null | grep -q "$DVC_VERSION"; then
    echo "creating $VENV with dvc==$DVC_VERSION" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "dvc==$DVC_VERSION" >&2
fi
mkdir -p "$ROOT/bench/results"
