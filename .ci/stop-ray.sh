#!/usr/bin/env bash
# Stop the Ray head started by .ci/start-ray.sh and delete its state directory.
# Usage: bash .ci/stop-ray.sh                  (reads KAIRO_RAY_STATE_DIR from the env)
#        bash .ci/stop-ray.sh DIR
#        bash .ci/stop-ray.sh --keep-dir DIR   (processes only; start-ray.sh between attempts)
#
# Which processes: those whose environment holds KAIRO_RAY_HEAD=DIR, which every process of
# that head inherits (GCS, raylet, dashboard, agents, workers, job supervisors and drivers),
# and all their descendants: the dashboard's module processes rewrite their environment
# block with their process title, so only their parent shows the marker. The set is kept
# across rounds by (pid, start time), so an orphan is not lost when its parent exits first and
# a reused pid is never signalled. In the order of `ray stop` (raylet, the rest, GCS last):
# SIGTERM, again each second; SIGKILL to what is left after 5 s.
# No `ray stop`: that kills every Ray process of the user on the machine, other heads included.
#
# Removes DIR only if it holds the .kairo-ray-state marker (only directories start-ray.sh made).
# Fails when a process of the head or one of its listening ports is left.
set -euo pipefail

keep_dir=""
if [[ "${1:-}" == --keep-dir ]]; then keep_dir=1; shift; fi
dir=${1:-${KAIRO_RAY_STATE_DIR:-}}
dir=${dir%/}

log() { echo "stop-ray: $*" >&2; }

[[ -n "$dir" ]] || exit 0       # nothing was started

start=$SECONDS
left=""
python3 - "$dir" <<'EOF' || left=1
import os, signal, subprocess, sys, time

marker = b"KAIRO_RAY_HEAD=" + os.fsencode(sys.argv[1])
me = os.getpid()

def log(msg):
    print(f"stop-ray: {msg}", file=sys.stderr)

def snapshot():
    """{pid: (ppid, start time)} of every live, non-zombie process, and the marked pids."""
    procs, marked = {}, set()
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == me:
            continue
        pid = int(p)
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            procs[pid] = (int(fields[1]), fields[19])      # ppid, starttime
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    marked.add(pid)
        except (OSError, IndexError, ValueError):
            continue
    return procs, marked

known = {}          # pid -> start time: every process of the head seen so far

def refresh():
    """The head's live processes: marked ones, their descendants, and those seen before."""
    procs, marked = snapshot()
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(marked) + [p for p, st in known.items() if procs.get(p, (0, None))[1] == st]
    live = set()
    while todo:
        pid = todo.pop()
        if pid in live or pid not in procs:
            continue
        live.add(pid)
        known[pid] = procs[pid][1]
        todo.extend(children.get(pid, []))
    return live

def listening_ports(pids):
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ports = set()
    for line in out.splitlines():
        if any(f"pid={p}," in line for p in pids):
            ports.add(line.split()[3].rsplit(":", 1)[1])
    return ports

def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""

def stop(pick, grace):
    """SIGTERM (again each second) to the head's processes `pick` accepts, until none is left;
    SIGKILL to those still there after `grace` seconds. Returns those surviving even that."""
    for sig, secs in ((signal.SIGTERM, grace), (signal.SIGKILL, 3)):
        deadline, last = time.monotonic() + secs, None
        while True:
            live = {p for p in refresh() if pick(comm(p))}
            if not live:
                return set()
            now = time.monotonic()
            if now >= deadline:
                break
            if last is None or now - last >= 1:
                for pid in live:
                    try:
                        os.kill(pid, sig)
                    except OSError:
                        pass
                last = now
            time.sleep(0.1)
        if sig == signal.SIGTERM:
            log(f"still running {grace} s after SIGTERM, sending SIGKILL: "
                + " ".join(f"{p} ({comm(p)})" for p in sorted(live)))
    return live

live = refresh()
ports = listening_ports(live)
try:
    with open(os.path.join(sys.argv[1], "ports")) as f:
        ports.update(f.read().split())
except OSError:
    pass
# The order of `ray stop`: the raylet first (its workers and the agents that share its fate go
# with it), then everything else, the GCS last.
for pick in (lambda c: c == "raylet", lambda c: c != "gcs_server", lambda c: True):
    stop(pick, 5)
live = refresh()
ok = True
if live:
    log(f"still running after SIGKILL: {' '.join(map(str, sorted(live)))}")
    ok = False
out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
for line in out.splitlines():
    if line.split()[3].rsplit(":", 1)[1] in ports:
        log(f"a port of the head still has a listener: {' '.join(line.split())}")
        ok = False
sys.exit(0 if ok else 1)
EOF

if [[ -z "$keep_dir" && -d "$dir" ]]; then
    if [[ -f "$dir/.kairo-ray-state" ]]; then
        rm -rf "$dir"
    else
        log "$dir has no .kairo-ray-state marker; not removing it"
    fi
fi

log "stopped the head of $dir in $((SECONDS - start)) s"
[[ -z "$left" ]]
