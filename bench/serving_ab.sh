#!/usr/bin/env bash
# A/B two `kairo` binaries serving the same model on the same machine, alternating, to see
# what a change to the serving path costs: OIP single-row (1 and 8 connections), OIP 100 rows,
# MLflow /invocations single row, and the floor (`GET /ping`), wrk requests/s.
# Usage: bash bench/serving_ab.sh OLD_KAIRO NEW_KAIRO [ROUNDS]   (needs wrk)
# SERVE_ENV="RUST_LOG=warn" runs both servers with that environment; SERVE_STDERR=FILE sends
# their stderr (the request log) to FILE instead of /dev/null.
set -euo pipefail
OLD=$1 NEW=$2 ROUNDS=${3:-2} SECS=${SECS:-4} SERVE_STDERR=${SERVE_STDERR:-/dev/null} SERVE_ENV=${SERVE_ENV:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# One project per binary: a newer binary may migrate the schema past what the older reads.
for which in old new; do
    bin=$OLD; [ "$which" = new ] && bin=$NEW
    mkdir "$WORK/$which" && (cd "$WORK/$which" && git init -q && "$bin" init >/dev/null &&
        "$bin" models register clf --file "$ROOT/fixtures/models/logreg20.onnx" >/dev/null &&
        "$bin" deploy clf --version 1 >/dev/null)
done
cd "$WORK"
row='[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]'
script() { printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[%s]==]\n' "$1" > "$2"; }
script "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,20],\"datatype\":\"FP32\",\"data\":$row}]}" oip1.lua
rows=$(python3 -c "import sys; print(','.join([sys.argv[1]]*100))" "$row")
script "{\"inputs\":[{\"name\":\"input\",\"shape\":[100,20],\"datatype\":\"FP32\",\"data\":[$rows]}]}" oip100.lua
# One column per feature: a single 20-wide `input` column is a 400 (a cell is one number).
cols=$(python3 -c "print(','.join('\"c%d\"' % i for i in range(20)))")
script "{\"dataframe_split\":{\"columns\":[$cols],\"data\":[$row]}}" inv1.lua
# A cell whose requests are refused measures the refusal: print `non-2xx` instead of a rate.
rps() {
    local out
    out=$(wrk "$@")
    if grep -q "Non-2xx" <<<"$out"; then printf non-2xx; else awk '/Requests\/sec/{printf "%.0f", $2}' <<<"$out"; fi
}
echo "binary round oip_1row_1conn oip_1row_8conn oip_100rows_1conn invocations_1row_1conn ping_1conn"
for round in $(seq "$ROUNDS"); do
    for which in old new; do
        bin=$OLD; [ "$which" = new ] && bin=$NEW
        # shellcheck disable=SC2086 # SERVE_ENV is a list of NAME=VALUE words
        (cd "$WORK/$which" && exec env $SERVE_ENV "$bin" serve clf --port 18181 >/dev/null 2>>"$SERVE_STDERR") & pid=$!
        sleep 0.7
        url=http://127.0.0.1:18181
        echo "$which $round $(rps -t1 -c1 -d"$SECS"s -s oip1.lua $url/v2/models/clf/infer)" \
            "$(rps -t2 -c8 -d"$SECS"s -s oip1.lua $url/v2/models/clf/infer)" \
            "$(rps -t1 -c1 -d"$SECS"s -s oip100.lua $url/v2/models/clf/infer)" \
            "$(rps -t1 -c1 -d"$SECS"s -s inv1.lua $url/invocations)" \
            "$(rps -t1 -c1 -d"$SECS"s $url/ping)"
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done
