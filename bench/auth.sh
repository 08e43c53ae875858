#!/usr/bin/env bash
# What authentication costs: log-metric through `kairo server` without users, with a Bearer
# token and with a Basic password (wrk, 2 and 8 connections, alternating rounds).
# Usage: bash bench/auth.sh   (ROUNDS, default 3; SECS per wrk, default 5; writes bench/results/auth.json)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
echo "building kairo (release)" >&2
(cd "$ROOT" && cargo build --release --locked -p kairo >&2)
KAIRO="${CARGO_TARGET_DIR:-$ROOT/target}/release/kairo"
mkdir -p "$ROOT/bench/results"
exec python3 "$ROOT/bench/auth.py" --kairo "$KAIRO" --rounds "${ROUNDS:-3}" --secs "${SECS:-5}" --out "$ROOT/bench/results/auth.json"
