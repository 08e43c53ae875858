#!/usr/bin/env bash
# Start a throw-away S3-compatible server (s3s-fs) on loopback for integration tests.
#
# Usage:   eval "$(bash .ci/start-s3.sh)"
#          cargo test ...                  # tests read AWS_* / KAIRO_TEST_S3_URL
#          bash .ci/stop-s3.sh             # kills $S3_PID, removes $S3_STATE_DIR
#
# stdout carries only `export` lines; everything else (build output, progress)
# goes to stderr.
#
# Settings (environment):
#   KAIRO_TOOLS_DIR    where s3s-fs is installed     (default /var/cache/kairo-tools)
#   S3S_FS_VERSION     s3s-fs version to install     (default 0.14.1, see below)
#   S3_BUCKET          bucket to create              (default kairo-test)
#   S3_REGION          region exported to clients    (default us-east-1; s3s-fs accepts any)
#   S3_START_TIMEOUT   seconds to wait for the port  (default 20)
#   S3_LOG             RUST_LOG for the server       (default info); log: $S3_STATE_DIR/s3s-fs.log
#
# Why 0.14.1: s3s-fs >= 0.15.0 declares rust-version 1.96; 0.14.1 is the newest
# release that builds with the rustc 1.95 toolchain here (rust-version 1.92).
# The binary needs the `binary` cargo feature (clap, tokio/full, hyper-util).
set -euo pipefail

KAIRO_TOOLS_DIR=${KAIRO_TOOLS_DIR:-/var/cache/kairo-tools}
S3S_FS_VERSION=${S3S_FS_VERSION:-0.14.1}
S3_BUCKET=${S3_BUCKET:-kairo-test}
S3_REGION=${S3_REGION:-us-east-1}
S3_START_TIMEOUT=${S3_START_TIMEOUT:-20}
S3_LOG=${S3_LOG:-info}

BIN="$KAIRO_TOOLS_DIR/bin/s3s-fs"

log() { echo "start-s3: $*" >&2; }

# ---------------------------------------------------------------- install ---
installed_version() {
    # clap's --version prints "s3s-fs 0.14.1"
    "$BIN" --version 2>/dev/null | awk '{print $2}' || true
}

if [[ ! -x "$BIN" || "$(installed_version)" != "$S3S_FS_VERSION" ]]; then
    log "installing s3s-fs $S3S_FS_VERSION into $KAIRO_TOOLS_DIR (one-off build, a few minutes)"
    mkdir -p "$KAIRO_TOOLS_DIR"
    CARGO_TARGET_DIR="$KAIRO_TOOLS_DIR/target" \
        cargo install s3s-fs --version "$S3S_FS_VERSION" --locked \
        --features binary --root "$KAIRO_TOOLS_DIR" 1>&2
    [[ -x "$BIN" ]] || { log "cargo install finished but $BIN is missing"; exit 1; }
fi

# ------------------------------------------------------------------ state ---
rand_hex() { python3 -c 'import secrets,sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"; }

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

S3_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kairo-s3.XXXXXX")
touch "$S3_STATE_DIR/.kairo-s3-state"          # marker checked by stop-s3.sh
DATA_DIR="$S3_STATE_DIR/data"
LOG_FILE="$S3_STATE_DIR/s3s-fs.log"
# In s3s-fs a bucket is simply a directory directly under the root directory.
mkdir -p "$DATA_DIR/$S3_BUCKET"

ACCESS_KEY="KAIRO$(rand_hex 10 | tr 'a-f' 'A-F')"   # 25 chars
SECRET_KEY="$(rand_hex 20)"                          # 40 hex chars
PREFIX="t-$(rand_hex 6)"

S3_PID=""
cleanup_on_error() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        [[ -n "$S3_PID" ]] && kill "$S3_PID" 2>/dev/null || true
        if [[ -f "$LOG_FILE" ]]; then
            log "server log (tail):"
            tail -n 30 "$LOG_FILE" >&2 || true
        fi
        rm -rf "$S3_STATE_DIR"
    fi
    exit $rc
}
trap cleanup_on_error EXIT

# probe: prints the HTTP status code (000 when nothing answers). An unsigned
# request gets 403 AccessDenied from s3s-fs, which is enough to know it is up.
probe() {
    curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null || true
}

# ------------------------------------------------------------------ start ---
# The port is chosen before the server binds it, so there is a small race;
# retry with a new port a few times if the server dies at start-up.
started=""
for attempt in 1 2 3; do
    PORT=$(free_port)
    RUST_LOG="$S3_LOG" "$BIN" \
        --host 127.0.0.1 --port "$PORT" \
        --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" \
        "$DATA_DIR" </dev/null >>"$LOG_FILE" 2>&1 &
    S3_PID=$!

    deadline=$((SECONDS + S3_START_TIMEOUT))
    while (( SECONDS < deadline )); do
        if ! kill -0 "$S3_PID" 2>/dev/null; then
            log "s3s-fs exited during start-up (attempt $attempt, port $PORT)"
            S3_PID=""
            break
        fi
        code=$(probe "$PORT")
        if [[ "$code" != "000" && -n "$code" ]]; then
            started=1
            break
        fi
        sleep 0.1
    done
    [[ -n "$started" ]] && break
    if [[ -n "$S3_PID" ]]; then
        log "s3s-fs did not answer on 127.0.0.1:$PORT within ${S3_START_TIMEOUT}s"
        exit 1
    fi
done
[[ -n "$started" ]] || { log "giving up after 3 attempts"; exit 1; }

log "s3s-fs $S3S_FS_VERSION pid $S3_PID on http://127.0.0.1:$PORT (bucket $S3_BUCKET, state $S3_STATE_DIR)"

ENDPOINT="http://127.0.0.1:$PORT"
emit() { printf 'export %s=%q\n' "$1" "$2"; }
emit S3_PID                "$S3_PID"
emit S3_STATE_DIR          "$S3_STATE_DIR"
emit AWS_ENDPOINT          "$ENDPOINT"
emit AWS_ENDPOINT_URL      "$ENDPOINT"
emit AWS_ALLOW_HTTP        true
emit AWS_ACCESS_KEY_ID     "$ACCESS_KEY"
emit AWS_SECRET_ACCESS_KEY "$SECRET_KEY"
emit AWS_REGION            "$S3_REGION"
emit AWS_DEFAULT_REGION    "$S3_REGION"
emit KAIRO_TEST_S3_URL     "s3://$S3_BUCKET/$PREFIX"
