#!/usr/bin/env bash
# Hot paths against the floor of the same server (issue 22), one run: single-row `/invocations`
# (skl2onnx LogisticRegression, one [N, 20] input) against `GET /ping` on the same `kairo serve`,
# and `runs/log-metric` against `GET /health` on the same `kairo server` (SQLite), wrk at 1 and
# 8 connections (log-metric: 2 and 8), ROUNDS rounds. Prints one line per cell: requests/s and
# p50 latency.
# Usage: bash bench/floor.sh      (needs wrk; KAIRO: a binary instead of a release build)
# Settings: ROUNDS (default 2), SECS (wrk seconds per cell, default 4), BENCH_DIR.
set -euo pipefail
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
source "$(dirname "${BASH_SOURCE[0]}")/kairo-bin.sh"
WORK=${BENCH_DIR:-/tmp/kairo-bench-floor}
SECS=${SECS:-4}
rm -rf "$WORK" && mkdir -p "$WORK/p"
cd "$WORK/p" && git init -q && "$KAIRO" init >/dev/null
"$KAIRO" models register lr20 --file "$ROOT/fixtures/models/logreg20.onnx" >/dev/null

python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
row = [0.1 * i for i in range(20)]
body = json.dumps({"dataframe_split": {"columns": [f"c{i}" for i in range(20)], "data": [row]}})
open(f"{work}/invocations.lua", "w").write(
    'wrk.method = "POST"\nwrk.body = \'%s\'\nwrk.headers["Content-Type"] = "application/json"\n' % body)
EOF

cell() { # label url conns [script]
    local args=(-t"$(( $3 > 1 ? 2 : 1 ))" -c"$3" -d"${SECS}s" --latency)
    [[ -n "${4:-}" ]] && args+=(-s "$4")
    local out
    out=$(wrk "${args[@]}" "$2")
    if grep -q "Non-2xx" <<<"$out"; then echo "$1: refused requests: $out" >&2; exit 1; fi
    printf '%-44s %10s req/s   p50 %s\n' "$1" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1 == "50%" {print $2}' <<<"$out")"
}

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return; sleep 0.1; done; echo "$1 not up" >&2; exit 1; }

for round in $(seq "${ROUNDS:-2}"); do
    echo "round $round"
    P=$(port)
    "$KAIRO" serve lr20 --port "$P" >/dev/null 2>&1 & SERVE=$!
    wait_up "http://127.0.0.1:$P/ping"
    for c in 1 8; do
        cell "serve: /invocations, 1 row, $c conn" "http://127.0.0.1:$P/invocations" "$c" "$WORK/invocations.lua"
        cell "serve: GET /ping, $c conn" "http://127.0.0.1:$P/ping" "$c"
    done
    kill "$SERVE"; wait "$SERVE" 2>/dev/null || true

    P=$(port)
    "$KAIRO" server --port "$P" >/dev/null 2>&1 & SERVER=$!
    wait_up "http://127.0.0.1:$P/health"
    RUN=$(curl -s -XPOST "http://127.0.0.1:$P/api/2.0/mlflow/runs/create" -H 'content-type: application/json' \
        -d '{"experiment_id":"0"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["info"]["run_id"])')
    printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
        "'{\"run_id\": \"$RUN\", \"key\": \"wrk\", \"value\": 1.5, \"timestamp\": 1, \"step\": 0}'" > "$WORK/log_metric.lua"
    for c in 2 8; do
        cell "server: log-metric, $c conns" "http://127.0.0.1:$P/api/2.0/mlflow/runs/log-metric" "$c" "$WORK/log_metric.lua"
        cell "server: GET /health, $c conns" "http://127.0.0.1:$P/health" "$c"
    done
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
done
