#!/usr/bin/env bash
# Fuzz Kairo's own API (/api/v1) against its OpenAPI document with schemathesis: a built
# `kairo server` in a throw-away project seeded with a dataset, a pipeline run and a tracked run
# (metrics, an artifact), then every documented operation with generated valid and invalid
# input; on SQLite, and again on PostgreSQL when $KAIRO_TEST_POSTGRES_URL is set (.ci/test
# sets it). Fails on any 5xx, any status or body the document does not describe, and when
# schemathesis, the binary or the server is missing (it never passes by skipping).
#
#   .ci/schemathesis.sh [ARGS]    run (binary: $KAIRO_BIN, else debug/kairo in cargo's target dir);
#                                 ARGS go to `schemathesis run` (e.g. `--seed N` to replay a run)
#   .ci/schemathesis.sh --venv    only create (or reuse) the pinned venv; print its python
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
venv() {
    KAIRO_PY_VENV=${KAIRO_SCHEMATHESIS_VENV:-/var/cache/kairo-schemathesis-venv} \
        KAIRO_PY_REQUIREMENTS="schemathesis==$SCHEMATHESIS_VERSION" bash .ci/python-venv.sh
}
if [ "${1:-}" = "--venv" ]; then
    venv
    exit 0
fi

python=${KAIRO_SCHEMATHESIS_PYTHON:-$(venv)}
schemathesis="$(dirname "$python")/schemathesis"
"$schemathesis" --version | grep -q " $SCHEMATHESIS_VERSION\$" || {
    echo "schemathesis.sh: $schemathesis is not schemathesis $SCHEMATHESIS_VERSION" >&2
    exit 1
}
if [ -z "${KAIRO_BIN:-}" ]; then
    # The binary `cargo test` built: cargo knows its target dir ($CARGO_TARGET_DIR or config).
    target=$(cargo metadata --format-version 1 --no-deps |
        "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    KAIRO_BIN="$target/debug/kairo"
fi
kairo=$KAIRO_BIN
[ -x "$kairo" ] || { echo "schemathesis.sh: no kairo binary at $kairo (build it first)" >&2; exit 1; }
kairo=$(realpath "$kairo")

work=$(mktemp -d)
server_pid=
pg_database=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$pg_database" ]; then
        psql "$KAIRO_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $pg_database" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
unset KAIRO_DATABASE_URL
export KAIRO_ACTOR=schemathesis@ci

# fuzz NAME: seed a fresh project in $work/NAME (database: $KAIRO_DATABASE_URL, else SQLite),
# serve it and run schemathesis against it; extra arguments go to `schemathesis run`.
fuzz() {
    # A project with something behind every path: a dataset with two versions, a pipeline run
    # that read it, and (below, through the MLflow API) a tracked run with metrics and an artifact.
    local name=$1 project="$work/$1"
    shift
    echo "== schemathesis: $name"
    mkdir -p "$project/data"
    cd "$project"
    git init -q
    git config user.email ci@kairo.invalid
    git config user.name CI
    "$kairo" init >/dev/null
    printf 'x,y\n1,2\n' > data/train.csv
    "$kairo" data add data >/dev/null
    printf 'x,y\n1,2\n3,4\n' > data/train.csv
    "$kairo" data add data >/dev/null
    cat >> kairo.yaml <<'EOF'
stages:
  count:
    cmd: sh count.sh
    deps: [data, count.sh]
    outs: [count.txt]
    metrics: [metrics.json]
EOF
    printf '%s\n' 'wc -l < data/train.csv > count.txt' 'echo "{\"rows\": 3}" > metrics.json' > count.sh
    pipeline_run=$("$kairo" run --json | "$python" -c 'import json, sys; print(json.load(sys.stdin)[0]["run_id"])')

    "$kairo" server --port 0 > "$work/$name.out" 2> "$work/$name.err" &
    server_pid=$!
    url=
    for _ in $(seq 1 100); do
        url=$(grep -o 'http://[0-9.:]*' "$work/$name.out" 2>/dev/null | head -n 1 || true)
        [ -n "$url" ] && curl -fsS "$url/health" >/dev/null 2>&1 && break
        kill -0 "$server_pid" 2>/dev/null || { echo "schemathesis.sh: kairo server exited:" >&2; cat "$work/$name.err" >&2; exit 1; }
        url=
        sleep 0.1
    done
    [ -n "$url" ] || { echo "schemathesis.sh: kairo server did not answer /health within 10 s" >&2; exit 1; }

    mlflow() {
        curl -fsS -X POST -H 'content-type: application/json' -d "$2" "$url/api/2.0/mlflow/$1"
    }
    run_id=$(mlflow runs/create '{"experiment_id": "0", "start_time": 1, "run_name": "tracked"}' |
        "$python" -c 'import json, sys; print(json.load(sys.stdin)["run"]["info"]["run_id"])')
    for step in 0 1 2; do
        mlflow runs/log-metric "{\"run_id\": \"$run_id\", \"key\": \"loss\", \"value\": 0.$step, \"timestamp\": $step, \"step\": $step}" >/dev/null
    done
    mlflow runs/log-metric "{\"run_id\": \"$run_id\", \"key\": \"odd\", \"value\": \"NaN\", \"timestamp\": 3}" >/dev/null
    curl -fsS -X PUT --data-binary 'all good' "$url/api/2.0/mlflow-artifacts/artifacts/0/$run_id/artifacts/report/summary.txt" >/dev/null

    # Real ids and paths, so generated requests also reach existing runs, datasets and artifacts
    # (each value is used for about half of the requests, generated ones for the rest).
    cat > "$work/$name.toml" <<EOF
[dictionaries]
runs = { values = ["$pipeline_run", "$run_id", "${run_id:0:12}"] }
files = { values = ["report/summary.txt"] }
paths = { values = ["data", "report"] }
targets = { values = ["count.txt", "data", "$pipeline_run", "$run_id"] }
metrics = { values = ["loss", "odd", "rows"] }
subjects = { values = ["run:$pipeline_run", "dataset:data"] }

[parameters]
"path.id" = { dictionary = "runs", probability = 0.5 }
"path.key" = { dictionary = "metrics", probability = 0.5 }
"path.path" = { dictionary = "files", probability = 0.5 }
"query.path" = { dictionary = "paths", probability = 0.5 }
"query.target" = { dictionary = "targets", probability = 0.5 }
"query.subject" = { dictionary = "subjects", probability = 0.5 }
EOF

    # Checks: no 5xx; statuses, content types, headers and bodies as documented; invalid input
    # refused (every check but positive_data_acceptance: artifact paths are narrower than "a
    # string", by policy, see mlflow::artifacts::clean_path). Bounded: 40 examples per
    # operation, 55 s at most per database.
    cd "$work"
    local status=0
    timeout 55 "$schemathesis" --config-file "$work/$name.toml" run "$url/api/v1/openapi.json" \
        --checks all --exclude-checks positive_data_acceptance \
        --max-examples 40 --request-timeout 10 --no-color "$@" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "schemathesis.sh: schemathesis failed (exit $status); server log:" >&2
        tail -n 20 "$work/$name.err" >&2
        exit 1
    fi
    kill "$server_pid"
    wait "$server_pid" || true
    server_pid=
}

fuzz sqlite "$@"
if [ -n "${KAIRO_TEST_POSTGRES_URL:-}" ]; then
    pg_database=kairo_schemathesis_$$
    psql "$KAIRO_TEST_POSTGRES_URL" -qc "CREATE DATABASE $pg_database" >/dev/null
    KAIRO_DATABASE_URL="${KAIRO_TEST_POSTGRES_URL%/*}/$pg_database" fuzz postgres "$@"
fi
