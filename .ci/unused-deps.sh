#!/usr/bin/env bash
# Fails when a crate declares a dependency its sources never name (the check cargo-machete
# makes, without building or installing anything). A [dependencies] entry must be named under
# src/ or in build.rs; a [dev-dependencies] entry anywhere in the crate (src/ tests, tests/,
# benches/, examples/). "Named" means a .rs file uses its library name (`-` → `_`) as a path
# (`name::`, `use name`, `extern crate name`), or a feature of the crate forwards to it
# (`name/feature`, `dep:name`). To keep one on purpose, add `crate:dependency` to ALLOWED with
# the reason.
# cargo-machete would do: on the tree before issue 14 it found a subset of what this finds (it
# does not check dev-dependencies on their own), and installing it costs a fresh CI machine
# 52 s of building; this takes under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

ALLOWED=(
)

unused=""
for manifest in crates/*/Cargo.toml; do
    dir=$(dirname "$manifest")
    crate=$(basename "$dir")
    # One "section name" line per dependency of the sections that list dependencies.
    deps=$(awk '
        /^\[/ { section = $0; gsub(/[][ ]/, "", section); next }
        section ~ /^(dev-|build-)?dependencies$/ && match($0, /^[A-Za-z0-9_-]+/) {
            print section, substr($0, RSTART, RLENGTH)
        }
    ' "$manifest")
    features=$(awk '/^\[/ { on = ($0 ~ /^\[features\]/); next } on' "$manifest")
    while read -r section name; do
        [[ -n $name ]] || continue
        case $section in
            dependencies) places=("$dir/src"); [[ -f $dir/build.rs ]] && places+=("$dir/build.rs") ;;
            build-dependencies) places=("$dir/build.rs") ;;
            *) places=("$dir") ;;
        esac
        [[ " ${ALLOWED[*]} " == *" $crate:$name "* ]] && continue
        [[ $features == *"\"$name/"* || $features == *"\"dep:$name\""* ]] && continue
        lib=${name//-/_}
        if ! grep -rqE --include='*.rs' -- "\b$lib::|\buse $lib\b|extern crate $lib\b" "${places[@]}"; then
            unused+="$crate: [$section] \`$name\` is never used in ${places[*]}; remove it from $manifest"$'\n'
        fi
    done <<<"$deps"
done
if [[ -n $unused ]]; then
    printf '%s' "$unused" >&2
    exit 1
fi
echo "unused dependencies: none"
