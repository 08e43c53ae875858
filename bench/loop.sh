#!/usr/bin/env bash
# The closed loop's own overhead, apart from training and canary windows: alert event → retrain
# started, run finished → version registered and evaluated, evaluation → canary live; and the
# floor, an idle `kairo automations tick`. Each round is a fresh project on the embedded
# default (SQLite): a model served by `kairo serve`, drifted traffic, `kairo monitor check`
# raising the alert, then one `kairo automations tick` (what `kairo server` runs every few
# seconds). Times come from the store's own records (alert event, run start/end, the
# incident's transitions), so process start-up of the tick is included in the first interval.
# Usage: bash bench/loop.sh   (ROUNDS, default 5; writes bench/results/loop.json)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
echo "building kairo (release)" >&2
(cd "$ROOT" && cargo build --release --locked -p kairo >&2)
KAIRO="${CARGO_TARGET_DIR:-$ROOT/target}/release/kairo"
mkdir -p "$ROOT/bench/results"
exec python3 "$ROOT/bench/loop.py" --kairo "$KAIRO" --rounds "${ROUNDS:-5}" --out "$ROOT/bench/results/loop.json"
