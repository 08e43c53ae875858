#!/usr/bin/env bash
# Remotes (issue 24): `kairo data push|pull` vs `dvc push|pull` with DVC's own plugin, to the same
# server in one run, for each target: Azure Blob (Azurite, dvc-azure), GCS (fake-gcs-server,
# dvc-gs) and SSH (OpenSSH's sshd on loopback, dvc-ssh), each started here with its
# .ci/start-*.sh script. Data: 20,000 × 4 KiB files in 100 directories, and one 1 GiB file; the
# large file also through the raw client (azure-storage-blob, google-cloud-storage, scp), the
# server's own throughput.
# Goals: ≥ 5× DVC on the small files; within 1.2× of the raw client on the large one.
# Usage: bash bench/remotes.sh   (markdown tables; JSON in bench/results/remotes-TARGET.json)
# Settings: TARGETS (default "azure gcs ssh"), SMALL_FILES (default 20000, in 100 directories;
# fake-gcs-server slows down as its bucket fills, see docs/BENCHMARKS.md), BENCH_DIR (default /tmp/kairo-bench-remotes;
# ~6 GiB), ROUNDS (default 1), LARGE_MIB (default 1024), BENCH_VENV; kairo is built in release
# (bench/common.sh).
set -euo pipefail
source "$(dirname "$0")/common.sh"
for pkg in "dvc-azure==3.1.1" "azure-storage-blob==12.31.1" "dvc-gs==3.1.0" "google-cloud-storage==3.17.1" \
    "dvc-ssh==4.3.0"; do
    "$VENV/bin/pip" show "${pkg%%==*}" 2>/dev/null | grep -q "^Version: ${pkg##*==}$" || "$VENV/bin/pip" install -q "$pkg" >&2
done
stop_all() {
    bash "$ROOT/.ci/stop-azurite.sh" >/dev/null 2>&1 || true
    bash "$ROOT/.ci/stop-gcs.sh" >/dev/null 2>&1 || true
    bash "$ROOT/.ci/stop-sshd.sh" >/dev/null 2>&1 || true
}
trap stop_all EXIT
for target in ${TARGETS:-azure gcs ssh}; do
    case $target in
        azure) eval "$(bash "$ROOT/.ci/start-azurite.sh")" ;;
        gcs) eval "$(bash "$ROOT/.ci/start-gcs.sh")" ;;
        ssh) eval "$(bash "$ROOT/.ci/start-sshd.sh")" ;;
        *) echo "unknown target $target (azure, gcs or ssh)" >&2; exit 2 ;;
    esac
    "$VENV/bin/python" "$ROOT/bench/remotes.py" --target "$target" --kairo "$KAIRO" --dvc "$VENV/bin/dvc" \
        --small-files "${SMALL_FILES:-20000}" \
        --work "${BENCH_DIR:-/tmp/kairo-bench-remotes}" --rounds "${ROUNDS:-1}" --large-mib "${LARGE_MIB:-1024}" \
        --out "$ROOT/bench/results/remotes-$target.json"
    stop_all
done
