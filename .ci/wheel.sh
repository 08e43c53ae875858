#!/usr/bin/env bash
# Build the `kairo` wheel with maturin (release profile, the binary stripped) into dist/, in the
# same target dir as the tests (CARGO_TARGET_DIR), and print the wheel's path on stdout.
# maturin comes from PyPI into its own venv (KAIRO_WHEEL_VENV, default
# /var/cache/kairo-wheel-venv), made once.
#
# Usage:   KAIRO_TEST_WHEEL=$(bash .ci/wheel.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${KAIRO_WHEEL_VENV:-/var/cache/kairo-wheel-venv}
REQUIREMENTS="maturin==1.16.0"
log() { echo "wheel: $*" >&2; }

if [[ ! -x "$VENV/bin/maturin" || "$(cat "$VENV/.kairo-requirements" 2>/dev/null)" != "$REQUIREMENTS" ]]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check $REQUIREMENTS >&2
    echo "$REQUIREMENTS" >"$VENV/.kairo-requirements"
fi
start=$SECONDS
rm -rf dist
"$VENV/bin/maturin" build --release --out dist >&2
wheel=$(ls dist/kairo-*.whl)
log "built $(basename "$wheel") ($(du -h "$wheel" | cut -f1)) in $((SECONDS - start)) s"
echo "$PWD/$wheel"
