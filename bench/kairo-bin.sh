# Sourced by the benchmark scripts that take a prebuilt kairo: sets ROOT, KAIRO (the binary
# in $KAIRO, else a release build of this checkout) and BUILD (its label: `release` when built
# here, else $BUILD or `unlabelled`), and makes bench/results.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${KAIRO:-}" ]]; then
    echo "building kairo (release)" >&2
    (cd "$ROOT" && cargo build --release --locked -p kairo >&2)
    KAIRO="${CARGO_TARGET_DIR:-$ROOT/target}/release/kairo"
    BUILD=${BUILD:-release}
fi
[[ -x "$KAIRO" ]] || { echo "$(basename "$0"): $KAIRO is not an executable" >&2; exit 1; }
BUILD=${BUILD:-unlabelled}
mkdir -p "$ROOT/bench/results"
