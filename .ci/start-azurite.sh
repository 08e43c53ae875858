#!/usr/bin/env bash
# Start a throw-away Azure Blob Storage emulator (Azurite, from the npm registry) on loopback for
# the az:// remote tests, and create a container with the emulator's well-known account.
#
# Usage:   eval "$(bash .ci/start-azurite.sh)"
#          cargo test ...                  # tests read AZURE_STORAGE_USE_EMULATOR,
#                                          # AZURITE_BLOB_STORAGE_URL and KAIRO_TEST_AZURE_URL
#          bash .ci/stop-azurite.sh        # kills $AZURITE_PID, removes $AZURITE_STATE_DIR
#
# Kairo (object_store) talks to Azurite when AZURE_STORAGE_USE_EMULATOR=true, at
# AZURITE_BLOB_STORAGE_URL, as account devstoreaccount1 with its published key: the way a
# user points Kairo at Azurite. stdout carries only `export` lines.
#
# Settings (environment):
#   KAIRO_AZURITE_DIR      where Azurite is installed   (default /var/cache/kairo-azurite)
#   AZURITE_VERSION        its pinned version           (default 3.37.0)
#   AZURE_CONTAINER        container to create          (default kairo-test)
#   AZURITE_START_TIMEOUT  seconds to wait for the port (default 30)
set -euo pipefail

DIR=${KAIRO_AZURITE_DIR:-/var/cache/kairo-azurite}
AZURITE_VERSION=${AZURITE_VERSION:-3.37.0}
AZURE_CONTAINER=${AZURE_CONTAINER:-kairo-test}
AZURITE_START_TIMEOUT=${AZURITE_START_TIMEOUT:-30}
BIN="$DIR/node_modules/.bin/azurite-blob"
log() { echo "start-azurite: $*" >&2; }

installed() { node -p "require('$DIR/node_modules/azurite/package.json').version" 2>/dev/null || true; }
if [[ ! -x "$BIN" || "$(installed)" != "$AZURITE_VERSION" ]]; then
    log "installing azurite $AZURITE_VERSION into $DIR"
    mkdir -p "$DIR"
    npm install --prefix "$DIR" --no-audit --no-fund --silent "azurite@$AZURITE_VERSION" 1>&2
    [[ -x "$BIN" ]] || { log "npm finished but $BIN is missing"; exit 1; }
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
AZURITE_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kairo-azurite.XXXXXX")
touch "$AZURITE_STATE_DIR/.kairo-azurite-state"          # marker checked by stop-azurite.sh
LOG_FILE="$AZURITE_STATE_DIR/azurite.log"
AZURITE_PID=""
cleanup_on_error() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        [[ -n "$AZURITE_PID" ]] && kill "$AZURITE_PID" 2>/dev/null || true
        [[ -f "$LOG_FILE" ]] && tail -n 30 "$LOG_FILE" >&2
        rm -rf "$AZURITE_STATE_DIR"
    fi
    exit $rc
}
trap cleanup_on_error EXIT

started=""
for attempt in 1 2 3; do
    PORT=$(free_port)
    "$BIN" --blobHost 127.0.0.1 --blobPort "$PORT" --location "$AZURITE_STATE_DIR/data" \
        --skipApiVersionCheck --disableProductStyleUrl --silent </dev/null >>"$LOG_FILE" 2>&1 &
    AZURITE_PID=$!
    deadline=$((SECONDS + AZURITE_START_TIMEOUT))
    while (( SECONDS < deadline )); do
        kill -0 "$AZURITE_PID" 2>/dev/null || { AZURITE_PID=""; break; }
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$PORT/devstoreaccount1?comp=list" || true)
        if [[ -n "$code" && "$code" != "000" ]]; then started=1; break; fi
        sleep 0.2
    done
    [[ -n "$started" ]] && break
    [[ -n "$AZURITE_PID" ]] && { log "no answer on 127.0.0.1:$PORT within ${AZURITE_START_TIMEOUT}s"; exit 1; }
    log "azurite exited during start-up (attempt $attempt)"
done
[[ -n "$started" ]] || { log "giving up after 3 attempts"; exit 1; }

# Create the container: one Shared Key-signed PUT with the emulator's published account key.
python3 - "$PORT" "$AZURE_CONTAINER" <<'PY'
import base64, hashlib, hmac, sys, urllib.request
from email.utils import formatdate
port, container = sys.argv[1], sys.argv[2]
account = "devstoreaccount1"
key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
date, version = formatdate(usegmt=True), "2021-08-06"
canonical = f"x-ms-date:{date}\nx-ms-version:{version}\n"
resource = f"/{account}/{account}/{container}\nrestype:container"
to_sign = "PUT\n" + "\n" * 11 + canonical + resource
sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/{account}/{container}?restype=container", method="PUT",
                             headers={"x-ms-date": date, "x-ms-version": version,
                                      "Authorization": f"SharedKey {account}:{sig}", "Content-Length": "0"})
urllib.request.urlopen(req, timeout=10).read()
PY
PREFIX="t-$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
log "azurite $AZURITE_VERSION pid $AZURITE_PID on http://127.0.0.1:$PORT (container $AZURE_CONTAINER, state $AZURITE_STATE_DIR)"

emit() { printf 'export %s=%q\n' "$1" "$2"; }
emit AZURITE_PID                "$AZURITE_PID"
emit AZURITE_STATE_DIR          "$AZURITE_STATE_DIR"
emit AZURE_STORAGE_USE_EMULATOR true
emit AZURITE_BLOB_STORAGE_URL   "http://127.0.0.1:$PORT"
emit KAIRO_TEST_AZURE_URL       "az://$AZURE_CONTAINER/$PREFIX"
