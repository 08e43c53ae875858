#!/usr/bin/env bash
# `kairo kpi` over 1 million events and 100,000 runs, on SQLite and on PostgreSQL, against the
# floor (the same rows read by the database's own client, and process start). Target: < 1 s.
# Usage: bash bench/kpi.sh   (ROUNDS, default 5; EVENTS, RUNS; PostgreSQL from
# KAIRO_TEST_POSTGRES_URL, else a throw-away cluster; writes bench/results/kpi.json)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
echo "building kairo (release)" >&2
(cd "$ROOT" && cargo build --release --locked -p kairo >&2)
KAIRO="${CARGO_TARGET_DIR:-$ROOT/target}/release/kairo"
if [[ -z "${KAIRO_TEST_POSTGRES_URL:-}" ]]; then
    eval "$(bash "$ROOT/.ci/start-postgres.sh")"
    trap 'bash "$ROOT/.ci/stop-postgres.sh"' EXIT
fi
mkdir -p "$ROOT/bench/results"
python3 "$ROOT/bench/kpi.py" --kairo "$KAIRO" --postgres "$KAIRO_TEST_POSTGRES_URL" \
    --rounds "${ROUNDS:-5}" --events "${EVENTS:-1000000}" --runs "${RUNS:-100000}" --out "$ROOT/bench/results/kpi.json"
