#!/usr/bin/env bash
# Remotes (issue 24): `kairo data push|pull` vs `dvc push|pull` (dvc-azure) to the same Azure Blob
# emulator (Azurite, started here with .ci/start-azurite.sh) in one run: 20,000 × 4 KiB files in
# 100 directories, and one 1 GiB file; the large file also through Azure's own Python client
# (azure-storage-blob, upload_blob/download_blob), the emulator's raw throughput.
# Goals: ≥ 5× DVC on the small files; within 1.2× of the raw client on the large one.
# Usage: bash bench/remotes.sh   (markdown tables; JSON in bench/results/remotes.json)
# Settings: BENCH_DIR (default /tmp/kairo-bench-remotes; ~6 GiB), ROUNDS (default 1), LARGE_MIB
# (default 1024), BENCH_VENV; kairo is built in release (bench/common.sh).
# Not yet: GCS (the emulator on PyPI lacks the XML API uploads object_store makes) and SSH.
set -euo pipefail
source "$(dirname "$0")/common.sh"
for pkg in "dvc-azure==3.1.1" "azure-storage-blob==12.31.1"; do
    "$VENV/bin/pip" show "${pkg%%==*}" 2>/dev/null | grep -q "^Version: ${pkg##*==}$" || "$VENV/bin/pip" install -q "$pkg" >&2
done
eval "$(bash "$ROOT/.ci/start-azurite.sh")"
trap 'bash "$ROOT/.ci/stop-azurite.sh" >/dev/null 2>&1 || true' EXIT
"$VENV/bin/python" "$ROOT/bench/remotes.py" --kairo "$KAIRO" --dvc "$VENV/bin/dvc" \
    --work "${BENCH_DIR:-/tmp/kairo-bench-remotes}" --rounds "${ROUNDS:-1}" --large-mib "${LARGE_MIB:-1024}" \
    --out "$ROOT/bench/results/remotes.json"
