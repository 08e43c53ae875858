#!/usr/bin/env bash
# Real-browser test tooling for the web UI tests: Debian's Chromium
# (/usr/bin/chromium, with fonts-noto-cjk for Japanese text) driven by
# playwright-core, plus axe-core for accessibility checks. See
# .ci/browser/README.md for how a test runs a Playwright script.
#
# Usage:   eval "$(bash .ci/browser.sh)"            # install if needed, print exports
#          eval "$(bash .ci/browser.sh --smoke)"    # same, then run .ci/browser/smoke.mjs
#          bash .ci/browser.sh --smoke OUT_DIR      # smoke.png goes to OUT_DIR
#          NODE_PATH="$KAIRO_TEST_BROWSER_NODE_PATH" node some-test.mjs
#
# stdout carries only `export` lines; everything else (apt and npm output,
# progress, the smoke test's JSON) goes to stderr. Nothing is left running.
#
# Settings (environment):
#   KAIRO_TOOLS_DIR   cache root; the npm packages go to $KAIRO_TOOLS_DIR/browser
#                     (default /var/cache/kairo-tools). Reinstalled (npm ci) only
#                     when .ci/browser/package-lock.json changed.
#
# Needs root (apt-get) when /usr/bin/chromium or fonts-noto-cjk is missing,
# node >= 20 and npm. No browser is downloaded by npm: playwright-core is told
# to use /usr/bin/chromium through `executablePath`.
set -euo pipefail

KAIRO_TOOLS_DIR=${KAIRO_TOOLS_DIR:-/var/cache/kairo-tools}
SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/browser"
INSTALL_DIR="$KAIRO_TOOLS_DIR/browser"
CHROMIUM=/usr/bin/chromium
APT_PACKAGES=(chromium fonts-noto-cjk)

log() { echo "browser: $*" >&2; }

smoke=""
smoke_out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=1; shift
                 if [[ $# -gt 0 && "$1" != --* ]]; then smoke_out=$1; shift; fi ;;
        -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" >&2; exit 0 ;;
        *) log "unknown argument: $1"; exit 2 ;;
    esac
done

# ---------------------------------------------------------------- checks ---
command -v node >/dev/null || { log "node is not installed"; exit 1; }
command -v npm >/dev/null || { log "npm is not installed"; exit 1; }
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    log "node $(node --version) is too old: playwright-core 1.65 needs >= 20"
    exit 1
fi

mkdir -p "$INSTALL_DIR"

# -------------------------------------------------------------- chromium ---
# Debian's packages; apt-get update only when the install fails (missing or
# stale package lists). flock serialises concurrent runs of this script (apt
# has its own lock, but would fail rather than wait).
pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}
missing_packages() {
    local p out=()
    for p in "${APT_PACKAGES[@]}"; do pkg_installed "$p" || out+=("$p"); done
    [[ -x "$CHROMIUM" ]] || [[ " ${out[*]} " == *" chromium "* ]] || out+=(chromium)
    echo "${out[*]}"
}
if [[ -n "$(missing_packages)" ]]; then
    (
        flock -w 900 8 || { log "could not lock $INSTALL_DIR/.apt.lock"; exit 1; }
        read -r -a missing <<<"$(missing_packages)"
        [[ ${#missing[@]} -eq 0 ]] && exit 0
        if [[ $(id -u) -ne 0 ]]; then
            log "need root to apt-get install ${missing[*]}"
            exit 1
        fi
        log "installing ${missing[*]} (apt-get; about 170 MB, ~20-25 s)"
        start=$SECONDS
        export DEBIAN_FRONTEND=noninteractive
        apt_install() {
            apt-get install -y --no-install-recommends "${missing[@]}" </dev/null 1>&2
        }
        if ! apt_install; then
            log "apt-get install failed; running apt-get update and trying again"
            apt-get update 1>&2 </dev/null
            apt_install
        fi
        log "apt-get install took $((SECONDS - start)) s"
    ) 8>"$INSTALL_DIR/.apt.lock"
fi
[[ -x "$CHROMIUM" ]] || { log "$CHROMIUM is missing after the install"; exit 1; }

# ----------------------------------------------------------- npm packages ---
# npm ci into the cache dir (outside the clone), keyed on the lock file's hash;
# flock keeps two concurrent runs from installing over each other.
# --ignore-scripts: playwright-core has no install script (it never downloads a
# browser by itself), axe-core neither; this keeps it that way.
lock_hash=$(sha256sum "$SRC_DIR/package-lock.json" | awk '{print $1}')
(
    flock -w 300 9 || { log "could not lock $INSTALL_DIR/.install.lock"; exit 1; }
    if [[ "$(cat "$INSTALL_DIR/.lock.sha256" 2>/dev/null || true)" != "$lock_hash" \
          || ! -f "$INSTALL_DIR/node_modules/playwright-core/package.json" \
          || ! -f "$INSTALL_DIR/node_modules/axe-core/axe.min.js" ]]; then
        log "installing playwright-core and axe-core into $INSTALL_DIR (npm ci)"
        start=$SECONDS
        rm -f "$INSTALL_DIR/.lock.sha256"
        cp "$SRC_DIR/package.json" "$SRC_DIR/package-lock.json" "$INSTALL_DIR/"
        npm ci --prefix "$INSTALL_DIR" --omit=dev --ignore-scripts \
            --no-audit --no-fund --loglevel=error 1>&2
        echo "$lock_hash" >"$INSTALL_DIR/.lock.sha256"
        log "npm ci took $((SECONDS - start)) s"
    fi
) 9>"$INSTALL_DIR/.install.lock"

log "$("$CHROMIUM" --version 2>/dev/null), playwright-core $(node -p "require('$INSTALL_DIR/node_modules/playwright-core/package.json').version"), axe-core $(node -p "require('$INSTALL_DIR/node_modules/axe-core/package.json').version")"

# ----------------------------------------------------------------- smoke ---
if [[ -n "$smoke" ]]; then
    [[ -n "$smoke_out" ]] || smoke_out=$(mktemp -d "${TMPDIR:-/tmp}/kairo-browser-smoke.XXXXXX")
    log "smoke test (screenshot into $smoke_out)"
    if ! KAIRO_TEST_CHROMIUM="$CHROMIUM" NODE_PATH="$INSTALL_DIR/node_modules" \
            node "$SRC_DIR/smoke.mjs" "$smoke_out" </dev/null 1>&2; then
        log "smoke test FAILED"
        exit 1
    fi
    log "smoke test passed"
fi

# ---------------------------------------------------------------- exports ---
emit() { printf 'export %s=%q\n' "$1" "$2"; }
emit KAIRO_TEST_CHROMIUM           "$CHROMIUM"
emit KAIRO_TEST_BROWSER_NODE_PATH  "$INSTALL_DIR/node_modules"
