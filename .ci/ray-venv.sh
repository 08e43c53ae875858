#!/usr/bin/env bash
# Create (or reuse) the venv with a pinned Ray for the `executor: ray` tests (the head that
# .ci/start-ray.sh starts). Kept apart from the client-compatibility venv (.ci/python-venv.sh):
# Ray brings 57 packages (aiohttp, grpcio, pydantic, ...) and about 390 MiB.
#
# Usage:   bash .ci/ray-venv.sh          # prints the venv's python path on stdout
# Progress goes to stderr. Reinstalled only when the pinned requirement changed (the stamp
# .ci/python-venv.sh writes) or the `ray` command is missing; flock keeps two concurrent runs
# from installing over each other.
#
# Settings (environment):
#   KAIRO_RAY_VENV   where the venv lives (default /var/cache/kairo-ray-venv)
#
# Why 2.60.0: the newest release on PyPI when this was written; the Jobs API facts the tests
# rely on (protocol version "4", routes, statuses) were measured on it
# (../shared/reference/ray-jobs-api.md). Only ray[default] is pinned, as in python-venv.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

RAY_VERSION=2.60.0
VENV=${KAIRO_RAY_VENV:-/var/cache/kairo-ray-venv}
REQUIREMENTS="ray[default]==$RAY_VERSION"

log() { echo "ray-venv: $*" >&2; }

mkdir -p "$(dirname "$VENV")"
(
    flock -w 900 9 || { log "could not lock $VENV.lock"; exit 1; }
    # A venv whose stamp matches but whose `ray` is gone (a half-deleted cache) is rebuilt.
    if [[ -f "$VENV/.kairo-requirements" && ! -x "$VENV/bin/ray" ]]; then
        rm -f "$VENV/.kairo-requirements"
    fi
    if [[ "$(cat "$VENV/.kairo-requirements" 2>/dev/null || true)" != "$REQUIREMENTS" ]]; then
        start=$SECONDS
        KAIRO_PY_VENV="$VENV" KAIRO_PY_REQUIREMENTS="$REQUIREMENTS" bash .ci/python-venv.sh >/dev/null
        log "installed $REQUIREMENTS into $VENV in $((SECONDS - start)) s"
    fi
) 9>"$VENV.lock"

installed=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ray"))')
[[ "$installed" == "$RAY_VERSION" ]] || { log "$VENV has ray $installed, not $RAY_VERSION"; exit 1; }
echo "$VENV/bin/python"
