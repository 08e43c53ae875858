#!/usr/bin/env bash
# Start a throw-away OpenID Connect provider (panva's oidc-provider on Node) on
# loopback for integration tests. Accounts, clients, scopes and the
# non-browser login sequence: .ci/oidc/README.md and the top of
# .ci/oidc/provider.mjs.
#
# Usage:   eval "$(bash .ci/start-oidc.sh)"
#          node "$OIDC_STATE_DIR/smoke.mjs"   # optional end-to-end check (~0.5 s)
#          cargo test ...                  # tests read KAIRO_TEST_OIDC_*
#          bash .ci/stop-oidc.sh           # kills $OIDC_PID, removes $OIDC_STATE_DIR
#
# stdout carries only `export` lines; everything else (npm output, progress)
# goes to stderr.
#
# Settings (environment):
#   KAIRO_TOOLS_DIR           cache root; the npm packages go to $KAIRO_TOOLS_DIR/oidc
#                             (default /var/cache/kairo-tools). Reinstalled (npm ci)
#                             only when .ci/oidc/package-lock.json changed.
#   KAIRO_OIDC_REDIRECT_URIS  redirect URIs of the kairo-web client, comma-separated
#                             (default http://127.0.0.1:8080/auth/oidc/callback)
#   KAIRO_OIDC_WEB_CLIENT_SECRET, KAIRO_OIDC_CI_CLIENT_SECRET, KAIRO_OIDC_CI_ES_CLIENT_SECRET
#                             client secrets (default: random per start)
#   OIDC_START_TIMEOUT        seconds to wait for the discovery document (default 20)
#
# Needs node >= 20.18 (URL.parse, crypto.hash) and npm. oidc-provider 9.x says
# it supports Node 22 LTS and later and logs "Unsupported runtime" on Node 20;
# every flow in .ci/oidc/README.md was checked on Node 20.20.
set -euo pipefail

KAIRO_TOOLS_DIR=${KAIRO_TOOLS_DIR:-/var/cache/kairo-tools}
OIDC_START_TIMEOUT=${OIDC_START_TIMEOUT:-20}
SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/oidc"
INSTALL_DIR="$KAIRO_TOOLS_DIR/oidc"

log() { echo "start-oidc: $*" >&2; }

# ---------------------------------------------------------------- checks ---
command -v node >/dev/null || { log "node is not installed"; exit 1; }
command -v npm >/dev/null || { log "npm is not installed"; exit 1; }
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=18)?0:1)'; then
    log "node $(node --version) is too old: oidc-provider needs >= 20.18"
    exit 1
fi

# ---------------------------------------------------------------- install ---
# npm ci into the cache dir (outside the clone), keyed on the lock file's hash;
# flock keeps two concurrent starts from installing over each other.
lock_hash=$(sha256sum "$SRC_DIR/package-lock.json" | awk '{print $1}')
mkdir -p "$INSTALL_DIR"
(
    flock -w 300 9 || { log "could not lock $INSTALL_DIR/.install.lock"; exit 1; }
    if [[ "$(cat "$INSTALL_DIR/.lock.sha256" 2>/dev/null || true)" != "$lock_hash" \
          || ! -f "$INSTALL_DIR/node_modules/oidc-provider/package.json" ]]; then
        log "installing oidc-provider into $INSTALL_DIR (npm ci)"
        rm -f "$INSTALL_DIR/.lock.sha256"
        cp "$SRC_DIR/package.json" "$SRC_DIR/package-lock.json" "$INSTALL_DIR/"
        npm ci --prefix "$INSTALL_DIR" --omit=dev --ignore-scripts \
            --no-audit --no-fund --loglevel=error 1>&2
        echo "$lock_hash" >"$INSTALL_DIR/.lock.sha256"
    fi
) 9>"$INSTALL_DIR/.install.lock"

# ------------------------------------------------------------------ state ---
rand_secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

OIDC_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kairo-oidc.XXXXXX")
touch "$OIDC_STATE_DIR/.kairo-oidc-state"        # marker checked by stop-oidc.sh
LOG_FILE="$OIDC_STATE_DIR/oidc-provider.log"
# provider.mjs resolves 'oidc-provider' through node_modules next to itself.
cp "$SRC_DIR/provider.mjs" "$SRC_DIR/smoke.mjs" "$SRC_DIR/package.json" "$OIDC_STATE_DIR/"
ln -s "$INSTALL_DIR/node_modules" "$OIDC_STATE_DIR/node_modules"

WEB_SECRET=${KAIRO_OIDC_WEB_CLIENT_SECRET:-$(rand_secret)}
CI_SECRET=${KAIRO_OIDC_CI_CLIENT_SECRET:-$(rand_secret)}
CI_ES_SECRET=${KAIRO_OIDC_CI_ES_CLIENT_SECRET:-$(rand_secret)}
REDIRECT_URIS=${KAIRO_OIDC_REDIRECT_URIS:-http://127.0.0.1:8080/auth/oidc/callback}

OIDC_PID=""
cleanup_on_error() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        [[ -n "$OIDC_PID" ]] && kill "$OIDC_PID" 2>/dev/null || true
        if [[ -f "$LOG_FILE" ]]; then
            log "provider log (tail):"
            tail -n 30 "$LOG_FILE" >&2 || true
        fi
        rm -rf "$OIDC_STATE_DIR"
    fi
    exit $rc
}
trap cleanup_on_error EXIT

# probe: prints the HTTP status of the discovery document (000: no answer).
probe() {
    curl -s -o /dev/null -m 2 -w '%{http_code}' \
        "http://127.0.0.1:$1/.well-known/openid-configuration" 2>/dev/null || true
}

# ------------------------------------------------------------------ start ---
# The port is chosen before the provider binds it, so there is a small race;
# retry with a new port a few times if the provider dies at start-up.
started=""
for attempt in 1 2 3; do
    PORT=$(free_port)
    ISSUER="http://127.0.0.1:$PORT"
    (
        cd "$OIDC_STATE_DIR"
        export KAIRO_OIDC_PORT="$PORT" KAIRO_OIDC_ISSUER="$ISSUER" \
            KAIRO_OIDC_REDIRECT_URIS="$REDIRECT_URIS" \
            KAIRO_OIDC_WEB_CLIENT_SECRET="$WEB_SECRET" \
            KAIRO_OIDC_CI_CLIENT_SECRET="$CI_SECRET" \
            KAIRO_OIDC_CI_ES_CLIENT_SECRET="$CI_ES_SECRET" \
            NODE_ENV=development
        exec node "$OIDC_STATE_DIR/provider.mjs"
    ) </dev/null >>"$LOG_FILE" 2>&1 &
    OIDC_PID=$!

    deadline=$((SECONDS + OIDC_START_TIMEOUT))
    while (( SECONDS < deadline )); do
        if ! kill -0 "$OIDC_PID" 2>/dev/null; then
            rc=0; wait "$OIDC_PID" || rc=$?
            OIDC_PID=""
            # exit code 3: a configuration error, which another port will not mend
            (( rc == 3 )) && { log "provider refused its configuration"; exit 1; }
            log "provider exited during start-up (attempt $attempt, port $PORT, exit $rc)"
            break
        fi
        if [[ "$(probe "$PORT")" == "200" ]]; then
            started=1
            break
        fi
        sleep 0.1
    done
    [[ -n "$started" ]] && break
    if [[ -n "$OIDC_PID" ]]; then
        log "provider did not answer on 127.0.0.1:$PORT within ${OIDC_START_TIMEOUT}s"
        exit 1
    fi
done
[[ -n "$started" ]] || { log "giving up after 3 attempts"; exit 1; }

log "oidc-provider pid $OIDC_PID, issuer $ISSUER (log $LOG_FILE)"

emit() { printf 'export %s=%q\n' "$1" "$2"; }
emit OIDC_PID                             "$OIDC_PID"
emit OIDC_STATE_DIR                       "$OIDC_STATE_DIR"
emit KAIRO_TEST_OIDC_ISSUER               "$ISSUER"
emit KAIRO_TEST_OIDC_AUDIENCE             "urn:kairo"
emit KAIRO_TEST_OIDC_WEB_CLIENT_ID        "kairo-web"
emit KAIRO_TEST_OIDC_WEB_CLIENT_SECRET    "$WEB_SECRET"
emit KAIRO_TEST_OIDC_CI_CLIENT_ID         "kairo-ci"
emit KAIRO_TEST_OIDC_CI_CLIENT_SECRET     "$CI_SECRET"
emit KAIRO_TEST_OIDC_CI_ES_CLIENT_ID      "kairo-ci-es"
emit KAIRO_TEST_OIDC_CI_ES_CLIENT_SECRET  "$CI_ES_SECRET"
