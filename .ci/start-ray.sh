#!/usr/bin/env bash
# Start a throw-away single-node Ray head for the `executor: ray` integration tests, driven only
# through its Jobs REST API (dashboard on loopback). Facts about Ray's API and behaviour:
# ../shared/reference/ray-jobs-api.md.
#
# Usage:   eval "$(bash .ci/start-ray.sh)"
#          curl -s -H "Authorization: Bearer $KAIRO_TEST_RAY_TOKEN" \
#               "$KAIRO_TEST_RAY_ADDRESS/api/version"          # {"version": "4", ...}
#          cargo test ...                  # tests read KAIRO_TEST_RAY_ADDRESS and _TOKEN
#          bash .ci/stop-ray.sh            # stops this head only, removes $KAIRO_RAY_STATE_DIR
#
# stdout carries only `export` lines; everything else (pip, progress) goes to stderr.
#
# Settings (environment):
#   KAIRO_RAY_VENV          the venv with the pinned Ray (default /var/cache/kairo-ray-venv;
#                           made by .ci/ray-venv.sh, which this script runs)
#   KAIRO_RAY_OBJECT_STORE  object store size in bytes (default 268435456, 256 MiB; Ray's
#                           own default is 30 % of RAM in /dev/shm)
#   RAY_START_TIMEOUT       seconds for `ray start` plus the first answer of /api/version
#                           (default 120; it took 4-7 s on the 2-core CI machine, 10 s for
#                           two heads at once)
#
# What is scoped to this head, so that several can run on one machine:
#   - every fixed default port is replaced by a free one: GCS (--port, default 6379), the
#     dashboard (8265), the client server (10001) and the dashboard agent's HTTP port (52365);
#     the other ports Ray picks at random by itself;
#   - Ray's temp dir (--temp-dir: sessions, logs, sockets, job working dirs) and TMPDIR (the
#     dashboard's multiprocessing forkserver would leave /tmp/pymp-* otherwise) are inside the
#     state dir, so nothing lands in /tmp/ray, /tmp/pymp-* or ~/.ray;
#   - every process of the head carries KAIRO_RAY_HEAD=<state dir> in its environment (Ray's
#     processes and job drivers inherit it); .ci/stop-ray.sh signals exactly those and their
#     descendants. Never run a bare `ray stop`: it kills every Ray process of the user on the
#     machine.
# The venv's bin comes first on the head's PATH, so a job's `python` entrypoint is the venv's
# python (with `ray` importable), as on a real cluster.
# Ray's processes stay in the caller's process group (no setsid, `timeout --foreground`), so a
# CI harness that kills the group also takes the head down.
#
# Not loopback-only, whatever --node-ip-address says (the node registers with the machine's
# address): GCS, the raylet, the dashboard agent and the metrics ports of the monitor and the
# dashboard bind on all interfaces, the client server and the agents also on the machine's
# address. Only the dashboard (the Jobs API) is loopback-only. The head runs with Ray's token
# authentication (RAY_AUTH_MODE=token): every Jobs API request needs
# `Authorization: Bearer $KAIRO_TEST_RAY_TOKEN`, so the tests use Kairo's `ray.token_env`.
set -euo pipefail
cd "$(dirname "$0")/.."

OBJECT_STORE=${KAIRO_RAY_OBJECT_STORE:-268435456}
RAY_START_TIMEOUT=${RAY_START_TIMEOUT:-120}

log() { echo "start-ray: $*" >&2; }

t0=$SECONDS
PYTHON=$(bash .ci/ray-venv.sh)
RAY="$(dirname "$PYTHON")/ray"

# ------------------------------------------------------------------ state ---
# Under /tmp rather than $TMPDIR: Ray's Unix sockets live under the temp dir
# (session_<date>_<pid>/sockets/...), and socket paths are limited to 107 bytes.
KAIRO_RAY_STATE_DIR=$(mktemp -d /tmp/kairo-ray.XXXXXX)
touch "$KAIRO_RAY_STATE_DIR/.kairo-ray-state"   # marker checked by stop-ray.sh
mkdir -p "$KAIRO_RAY_STATE_DIR/tmp"
LOG_FILE="$KAIRO_RAY_STATE_DIR/ray-start.log"

cleanup_on_error() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        if [[ -f "$LOG_FILE" ]]; then
            log "ray start log (tail):"
            tail -n 30 "$LOG_FILE" >&2 || true
        fi
        bash .ci/stop-ray.sh "$KAIRO_RAY_STATE_DIR" >&2 || true
    fi
    exit $rc
}
trap cleanup_on_error EXIT

# Four distinct ports free on every interface (GCS binds 0.0.0.0), held open together.
free_ports() {
    python3 - <<'EOF'
import socket
socks = []
for _ in range(4):
    s = socket.socket()
    s.bind(("", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# probe: prints the Jobs API protocol version ("" when nothing answers).
probe() {
    curl -s -m 2 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1/api/version" 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin).get("version", ""))' 2>/dev/null || true
}

TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')

# ------------------------------------------------------------------ start ---
# The ports are chosen before Ray binds them, so there is a small race; start again with new
# ports a few times if `ray start` fails.
started=""
for attempt in 1 2 3; do
    read -r GCS_PORT DASHBOARD_PORT CLIENT_PORT AGENT_PORT <<<"$(free_ports)"
    echo "$GCS_PORT $DASHBOARD_PORT $CLIENT_PORT $AGENT_PORT" >"$KAIRO_RAY_STATE_DIR/ports"
    log "starting Ray head (attempt $attempt): GCS $GCS_PORT, dashboard 127.0.0.1:$DASHBOARD_PORT"
    rc=0
    env -u RAY_ADDRESS \
        KAIRO_RAY_HEAD="$KAIRO_RAY_STATE_DIR" \
        TMPDIR="$KAIRO_RAY_STATE_DIR/tmp" RAY_TMPDIR="$KAIRO_RAY_STATE_DIR/tmp" \
        RAY_USAGE_STATS_ENABLED=0 PATH="$(dirname "$PYTHON"):$PATH" \
        RAY_AUTH_MODE=token RAY_AUTH_TOKEN="$TOKEN" \
        timeout --foreground "$RAY_START_TIMEOUT" "$RAY" start --head \
            --node-ip-address 127.0.0.1 \
            --port "$GCS_PORT" \
            --include-dashboard true \
            --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" \
            --ray-client-server-port "$CLIENT_PORT" \
            --dashboard-agent-listen-port "$AGENT_PORT" \
            --num-cpus 2 --num-gpus 0 \
            --object-store-memory "$OBJECT_STORE" \
            --disable-usage-stats --log-color false \
            --temp-dir "$KAIRO_RAY_STATE_DIR/ray" \
            </dev/null >>"$LOG_FILE" 2>&1 || rc=$?
    if (( rc == 0 )); then
        deadline=$((t0 + RAY_START_TIMEOUT))
        while (( SECONDS < deadline )); do
            version=$(probe "$DASHBOARD_PORT")
            if [[ "$version" == "4" ]]; then
                started=1
                break
            elif [[ -n "$version" ]]; then
                log "the Jobs API answers protocol version $version, not 4"
                exit 1
            fi
            sleep 0.2
        done
        [[ -n "$started" ]] && break
        log "the Jobs API did not answer on 127.0.0.1:$DASHBOARD_PORT within ${RAY_START_TIMEOUT}s"
        exit 1
    fi
    log "ray start failed (attempt $attempt, exit $rc)"
    (( rc == 124 )) && { log "ray start took more than ${RAY_START_TIMEOUT}s"; exit 1; }
    # Whatever the failed attempt left running goes before the next one.
    bash .ci/stop-ray.sh --keep-dir "$KAIRO_RAY_STATE_DIR" >&2 || true
done
[[ -n "$started" ]] || { log "giving up after 3 attempts"; exit 1; }

log "Ray $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("ray"))') head on http://127.0.0.1:$DASHBOARD_PORT (GCS port $GCS_PORT, state $KAIRO_RAY_STATE_DIR) in $((SECONDS - t0)) s"

emit() { printf 'export %s=%q\n' "$1" "$2"; }
emit KAIRO_RAY_STATE_DIR     "$KAIRO_RAY_STATE_DIR"
emit KAIRO_TEST_RAY_ADDRESS  "http://127.0.0.1:$DASHBOARD_PORT"
emit KAIRO_TEST_RAY_TOKEN    "$TOKEN"
