#!/usr/bin/env bash
# Fails when a crate declares a dependency its sources never name (the check cargo-machete
# makes, without building or installing anything). A [dependencies] entry must be named under
# src/ or in build.rs; a [dev-dependencies] entry anywhere in the crate (src/ tests, tests/,
# benches/, examples/). "Named" means its library name (`-` → `_`) appears as a whole word in
# a .rs file, or a feature of the crate forwards to it (`name/feature`, `dep:name`). To keep one on purpose, add `crate:dependency` to ALLOWED with the reason.
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
        if ! grep -rqw --include='*.rs' -- "${name//-/_}" "${places[@]}"; then
            unused+="$crate: [$section] \`$name\` is never used in ${places[*]}; remove it from $manifest"$'\n'
        fi
    done <<<"$deps"
done
if [[ -n $unused ]]; then
    printf '%s' "$unused" >&2
    exit 1
fi
echo "unused dependencies: none"
