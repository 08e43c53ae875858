#!/usr/bin/env bash
# Start a throw-away OpenSSH server (Debian's openssh-server) on loopback for the ssh:// (SFTP)
# remote tests, with its own host key, a generated client key, and a client config naming both.
#
# Usage:   eval "$(bash .ci/start-sshd.sh)"
#          cargo test ...                  # tests read KAIRO_TEST_SSH_URL, KAIRO_TEST_SSH_CONFIG,
#                                          # KAIRO_TEST_SSH_PORT (also exported: _KNOWN_HOSTS,
#                                          # _KEY, _USER); kairo reads KAIRO_SSH_COMMAND
#          bash .ci/stop-sshd.sh           # kills $SSHD_PID, removes $SSHD_STATE_DIR
#
# Kairo reaches the server as a user would: the system's `ssh` with a config file
# (KAIRO_SSH_COMMAND="ssh -F $SSHD_STATE_DIR/ssh_config"), which names the port, the client key
# and a known_hosts holding the server's key. Nothing in ~/.ssh is read or written. stdout
# carries only `export` lines.
#
# Installs openssh-server with apt when /usr/sbin/sshd is missing, without starting the system's
# sshd on port 22.
#
# Settings (environment):
#   SSHD_START_TIMEOUT  seconds to wait for a login (default 30)
set -euo pipefail

SSHD_START_TIMEOUT=${SSHD_START_TIMEOUT:-30}
log() { echo "start-sshd: $*" >&2; }

# A system sshd the package started (policy-rc.d should have stopped it from starting) is stopped
# and disabled: nothing but ours may listen.
stop_system_sshd() {
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
    fi
    local pid
    pid=$(cat /run/sshd.pid 2>/dev/null || true)
    if [[ -n "$pid" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '^/usr/sbin/sshd'; then
        log "stopping the system sshd (pid $pid) that the package started"
        kill "$pid" 2>/dev/null || true
    fi
}
if [[ ! -x /usr/sbin/sshd ]]; then
    log "installing openssh-server (apt)"
    # policy-rc.d answering 101 keeps the package from starting a daemon on port 22.
    policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends openssh-server 1>&2 \
        || { apt-get update 1>&2 && apt-get install -y --no-install-recommends openssh-server 1>&2; }
    if [[ -n "$policy" ]]; then rm -f "$policy"; trap - EXIT; fi
    stop_system_sshd
    [[ -x /usr/sbin/sshd ]] || { log "apt finished but /usr/sbin/sshd is missing"; exit 1; }
fi
# The privilege-separation directory sshd insists on.
mkdir -p /run/sshd
chmod 0755 /run/sshd

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SSHD_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kairo-sshd.XXXXXX")
chmod 0755 "$SSHD_STATE_DIR"
touch "$SSHD_STATE_DIR/.kairo-sshd-state"          # marker checked by stop-sshd.sh
LOG_FILE="$SSHD_STATE_DIR/sshd.log"
SSHD_PID=""
cleanup_on_error() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        [[ -n "$SSHD_PID" ]] && kill "$SSHD_PID" 2>/dev/null || true
        [[ -f "$LOG_FILE" ]] && tail -n 30 "$LOG_FILE" >&2
        rm -rf "$SSHD_STATE_DIR"
    fi
    exit $rc
}
trap cleanup_on_error EXIT

USER_NAME=$(id -un)
ssh-keygen -q -t ed25519 -N '' -C kairo-test-host -f "$SSHD_STATE_DIR/host_key"
ssh-keygen -q -t ed25519 -N '' -C kairo-test-client -f "$SSHD_STATE_DIR/client_key"
cp "$SSHD_STATE_DIR/client_key.pub" "$SSHD_STATE_DIR/authorized_keys"
mkdir -p "$SSHD_STATE_DIR/remote"

started=""
for attempt in 1 2 3; do
    PORT=$(free_port)
    cat > "$SSHD_STATE_DIR/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $PORT
HostKey $SSHD_STATE_DIR/host_key
AuthorizedKeysFile $SSHD_STATE_DIR/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PidFile $SSHD_STATE_DIR/sshd.pid
Subsystem sftp internal-sftp
LogLevel ERROR
EOF
    echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$SSHD_STATE_DIR/host_key.pub")" > "$SSHD_STATE_DIR/known_hosts"
    cat > "$SSHD_STATE_DIR/ssh_config" <<EOF
Host 127.0.0.1 kairo-test-sshd
  HostName 127.0.0.1
  Port $PORT
  User $USER_NAME
  IdentityFile $SSHD_STATE_DIR/client_key
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile $SSHD_STATE_DIR/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
EOF
    /usr/sbin/sshd -D -e -f "$SSHD_STATE_DIR/sshd_config" </dev/null >>"$LOG_FILE" 2>&1 &
    SSHD_PID=$!
    deadline=$((SECONDS + SSHD_START_TIMEOUT))
    while (( SECONDS < deadline )); do
        kill -0 "$SSHD_PID" 2>/dev/null || { SSHD_PID=""; break; }
        if ssh -F "$SSHD_STATE_DIR/ssh_config" -o ConnectTimeout=2 127.0.0.1 true </dev/null 2>>"$LOG_FILE"; then
            started=1
            break
        fi
        sleep 0.2
    done
    [[ -n "$started" ]] && break
    [[ -n "$SSHD_PID" ]] && { log "no login on 127.0.0.1:$PORT within ${SSHD_START_TIMEOUT}s"; exit 1; }
    log "sshd exited during start-up (attempt $attempt)"
done
[[ -n "$started" ]] || { log "giving up after 3 attempts"; exit 1; }

PREFIX="t-$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
log "sshd pid $SSHD_PID on 127.0.0.1:$PORT (state $SSHD_STATE_DIR)"

emit() { printf 'export %s=%q\n' "$1" "$2"; }
emit SSHD_PID               "$SSHD_PID"
emit SSHD_STATE_DIR         "$SSHD_STATE_DIR"
emit KAIRO_SSH_COMMAND      "ssh -F $SSHD_STATE_DIR/ssh_config"
emit KAIRO_TEST_SSH_CONFIG  "$SSHD_STATE_DIR/ssh_config"
emit KAIRO_TEST_SSH_KNOWN_HOSTS "$SSHD_STATE_DIR/known_hosts"
emit KAIRO_TEST_SSH_KEY     "$SSHD_STATE_DIR/client_key"
emit KAIRO_TEST_SSH_PORT    "$PORT"
emit KAIRO_TEST_SSH_USER    "$USER_NAME"
emit KAIRO_TEST_SSH_URL     "ssh://$USER_NAME@127.0.0.1:$PORT$SSHD_STATE_DIR/remote/$PREFIX"
