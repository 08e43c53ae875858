#!/usr/bin/env bash
# Benchmark a pipeline stage run as a Ray job (`executor: ray`) against the same stage run
# locally, same machine, one run (issue 19): the overhead of one Ray-executed stage (submission
# to start, outputs back; split at the job's and the command's timestamps) and a 10-stage
# pipeline with `kairo run -j 4` on Ray vs locally. Starts its own single-node Ray head
# (.ci/start-ray.sh: 2 CPUs) and, when s3s-fs is installed, the S3 test server
# (.ci/start-s3.sh) for the S3-remote variant; stops both on exit.
# Usage: bash bench/ray.sh      (prints markdown tables; JSON goes to bench/results/ray.json)
# Settings: KAIRO (a kairo binary to use instead of building release; then label it with BUILD,
# e.g. BUILD=debug), BENCH_DIR (scratch, default /tmp/kairo-bench-ray), ROUNDS (default 5),
# STAGES (default 10), SLEEP (seconds per pipeline stage, default 2), JOBS (-j, default 4),
# NUM_CPUS (Ray resources per pipeline stage, default 0.5), S3=0 (skip the S3 variant),
# BENCH_PYTHON (runs bench/ray.py; default the test venv's python, else python3).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/kairo-bin.sh"

PYTHON=${BENCH_PYTHON:-/var/cache/kairo-py-venv/bin/python}
[[ -x "$PYTHON" ]] || PYTHON=python3

# Only what this script started is stopped: the state dirs it got back, never ones inherited.
RAY_DIR="" S3_DIR="" S3_SERVER_PID="" BENCH_PID=""
cleanup() {
    [[ -n "$S3_DIR" ]] && bash "$ROOT/.ci/stop-s3.sh" "$S3_SERVER_PID" "$S3_DIR" || true
    [[ -n "$RAY_DIR" ]] && bash "$ROOT/.ci/stop-ray.sh" "$RAY_DIR" || true
}
# Ctrl-C or a kill: the bench goes first, then the servers (EXIT).
on_signal() {
    [[ -n "$BENCH_PID" ]] && kill -TERM "$BENCH_PID" 2>/dev/null && wait "$BENCH_PID"
    exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

unset KAIRO_RAY_STATE_DIR KAIRO_TEST_RAY_ADDRESS
eval "$(bash "$ROOT/.ci/start-ray.sh")"
RAY_DIR=$KAIRO_RAY_STATE_DIR
# The venv the head's jobs run `python` from; local runs and the floor use the same one.
RAY_PYTHON=$(bash "$ROOT/.ci/ray-venv.sh")

S3_URL=""
if [[ "${S3:-1}" != 0 ]]; then
    # start-s3.sh would build s3s-fs if it were missing (minutes of cargo): only when present.
    if [[ -x "${KAIRO_TOOLS_DIR:-/var/cache/kairo-tools}/bin/s3s-fs" ]]; then
        unset S3_PID S3_STATE_DIR
        eval "$(bash "$ROOT/.ci/start-s3.sh")"
        S3_SERVER_PID=$S3_PID S3_DIR=$S3_STATE_DIR S3_URL=$KAIRO_TEST_S3_URL
    else
        echo "ray.sh: s3s-fs is not installed; skipping the S3 variant (bash .ci/start-s3.sh installs it)" >&2
    fi
fi

# In the background and waited for, so that a signal reaches the trap at once.
"$PYTHON" "$ROOT/bench/ray.py" --kairo "$KAIRO" --build "$BUILD" --ray "$KAIRO_TEST_RAY_ADDRESS" \
    --python-bin "$(dirname "$RAY_PYTHON")" --s3 "$S3_URL" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-ray}" --rounds "${ROUNDS:-5}" --stages "${STAGES:-10}" \
    --sleep "${SLEEP:-2}" --jobs "${JOBS:-4}" --num-cpus "${NUM_CPUS:-0.5}" \
    --out "$ROOT/bench/results/ray.json" &
BENCH_PID=$!
wait "$BENCH_PID"
