#!/usr/bin/env bash
# Install (if missing) the OCI tools the model-image tests use, from Debian: skopeo (reads the
# image archive and the registry as a registry client would), umoci (unpacks it into a root
# filesystem, which the test then runs with chroot: no container engine) and docker-registry
# (Docker's distribution 2.8, the registry `--push` is tested against; the test starts its own
# with token authentication). Needs root for apt-get when missing.
#
# Usage:   bash .ci/oci-tools.sh          # prints nothing on stdout; progress on stderr
set -euo pipefail

PACKAGES=(skopeo umoci docker-registry)
log() { echo "oci-tools: $*" >&2; }
installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]; }

missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    log "need root to apt-get install ${missing[*]}"
    exit 1
fi
start=$SECONDS
log "installing ${missing[*]} (apt-get)"
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" </dev/null 1>&2; then
    log "apt-get install failed; running apt-get update and trying again"
    apt-get update 1>&2 </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" </dev/null 1>&2
fi
log "apt-get install took $((SECONDS - start)) s"
