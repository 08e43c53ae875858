#!/usr/bin/env bash
# Cold build of the `kairo` binary in a fresh target directory, as a new user's first
# `cargo run --release -p kairo -- demo` does: wall time, binary size, and the size of the
# split debug info beside it. Profile settings can be tried without editing Cargo.toml through
# Cargo's environment overrides, e.g. `CARGO_PROFILE_RELEASE_LTO=thin bash bench/release_build.sh`.
# Usage: bash bench/release_build.sh [PROFILE]   (default: release)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PROFILE=${1:-release}
TARGET=$(mktemp -d "${TMPDIR:-/tmp}/kairo-release-build.XXXXXX")
trap 'rm -rf "$TARGET"' EXIT
env | grep '^CARGO_PROFILE_' >&2 || true
start=$(date +%s.%N)
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --locked --profile "$PROFILE" -p kairo >&2)
end=$(date +%s.%N)
dir=$PROFILE
[[ $PROFILE == dev ]] && dir=debug
bin="$TARGET/$dir/kairo"
printf 'profile %s: %.0f s cold build, kairo %s bytes' "$PROFILE" "$(echo "$end - $start" | bc)" "$(stat -c %s "$bin")"
[[ -f $bin.dwp ]] && printf ', kairo.dwp %s bytes' "$(stat -c %s "$bin.dwp")"
printf ' (%s cores, rustc %s)\n' "$(nproc)" "$(rustc --version | cut -d' ' -f2)"
