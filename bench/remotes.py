"""Push and pull to an Azure Blob emulator: kairo vs DVC (dvc-azure) vs Azure's own client.

Run by bench/remotes.sh, which starts Azurite and exports AZURE_STORAGE_USE_EMULATOR and
AZURITE_BLOB_STORAGE_URL (what kairo reads) and KAIRO_TEST_AZURE_URL (its container). DVC gets
the same account through a connection string. Each tool writes under its own fresh prefix, so
every push sends everything and every pull fetches everything (local caches emptied first).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def sh(cmd, cwd, env=None):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"$ {' '.join(map(str, cmd))} (in {cwd}) exited {p.returncode}:\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return p.stdout


def timed(cmd, cwd, env=None):
    t = time.perf_counter()
    sh(cmd, cwd, env)
    return time.perf_counter() - t


def make_small(root):
    if (root / ".done").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    for d in range(100):
        (root / f"d{d:02}").mkdir(parents=True)
        for f in range(200):
            (root / f"d{d:02}" / f"f{f:03}.bin").write_bytes(os.urandom(4096))
    (root / ".done").write_text("")


def make_large(path, mib):
    if path.exists() and path.stat().st_size == mib << 20:
        return
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(1 << 20))


def kairo_round(kairo, work, data, container, env):
    """Push `data` from a fresh project, then pull it into an emptied one: (push s, pull s)."""
    project = work / "kairo-project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    sh(["git", "init", "-q"], project)
    sh([kairo, "init"], project)
    prefix = f"kairo-{uuid.uuid4().hex[:12]}"
    with open(project / "kairo.yaml", "a") as f:
        f.write(f"remotes:\n  az:\n    url: az://{container}/{prefix}\ndefault_remote: az\n")
    target = project / data.name
    (shutil.copytree if data.is_dir() else shutil.copy)(data, target)
    sh([kairo, "data", "add", data.name], project, env)
    push = timed([kairo, "data", "push"], project, env)
    shutil.rmtree(project / ".kairo" / "objects")
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    pull = timed([kairo, "data", "pull"], project, env)
    return push, pull


def dvc_round(dvc, work, data, container, conn):
    project = work / "dvc-project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    sh([dvc, "init", "--no-scm", "-q"], project)
    prefix = f"dvc-{uuid.uuid4().hex[:12]}"
    sh([dvc, "remote", "add", "-d", "az", f"azure://{container}/{prefix}"], project)
    sh([dvc, "remote", "modify", "--local", "az", "connection_string", conn], project)
    target = project / data.name
    (shutil.copytree if data.is_dir() else shutil.copy)(data, target)
    sh([dvc, "add", "-q", data.name], project)
    push = timed([dvc, "push", "-q"], project)
    shutil.rmtree(project / ".dvc" / "cache")
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    pull = timed([dvc, "pull", "-q"], project)
    return push, pull


def raw_round(path, container, conn):
    from azure.storage.blob import BlobServiceClient
    blob = BlobServiceClient.from_connection_string(conn).get_blob_client(container, f"raw-{uuid.uuid4().hex[:12]}")
    t = time.perf_counter()
    with open(path, "rb") as f:
        blob.upload_blob(f, max_concurrency=4)
    up = time.perf_counter() - t
    t = time.perf_counter()
    out = path.with_suffix(".download")
    with open(out, "wb") as f:
        blob.download_blob(max_concurrency=4).readinto(f)
    down = time.perf_counter() - t
    out.unlink()
    blob.delete_blob()
    return up, down


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo", required=True)
    ap.add_argument("--dvc", required=True)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--large-mib", type=int, default=1024)
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args()
    endpoint = os.environ["AZURITE_BLOB_STORAGE_URL"]
    container = os.environ["KAIRO_TEST_AZURE_URL"].split("://", 1)[1].split("/", 1)[0]
    conn = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={endpoint}/{ACCOUNT};")
    env = dict(os.environ)
    a.work.mkdir(parents=True, exist_ok=True)
    small, large = a.work / "small", a.work / "large.bin"
    print("making the data", file=sys.stderr, flush=True)
    make_small(small)
    make_large(large, a.large_mib)
    results = {"rounds": a.rounds, "large_mib": a.large_mib, "runs": []}
    best = {}
    for r in range(a.rounds):
        for name, data in (("20,000 × 4 KiB", small), (f"1 × {a.large_mib} MiB", large)):
            for tool, fn in (("kairo", lambda: kairo_round(a.kairo, a.work, data, container, env)),
                             ("dvc", lambda: dvc_round(a.dvc, a.work, data, container, conn))):
                push, pull = fn()
                print(f"  {name} {tool}: push {push:.2f} s, pull {pull:.2f} s", file=sys.stderr, flush=True)
                results["runs"].append({"data": name, "tool": tool, "push_s": push, "pull_s": pull, "round": r})
                k = (name, tool)
                best[k] = (min(best.get(k, (push, pull))[0], push), min(best.get(k, (push, pull))[1], pull))
        up, down = raw_round(large, container, conn)
        print(f"  raw client: upload {up:.2f} s, download {down:.2f} s", file=sys.stderr, flush=True)
        results["runs"].append({"data": f"1 × {a.large_mib} MiB", "tool": "azure-storage-blob", "push_s": up,
                                "pull_s": down, "round": r})
        k = (f"1 × {a.large_mib} MiB", "azure-storage-blob")
        best[k] = (min(best.get(k, (up, down))[0], up), min(best.get(k, (up, down))[1], down))
    print(f"\nAzure Blob (Azurite) on loopback, best of {a.rounds}:\n")
    print("| data | tool | push s | pull s |")
    print("|---|---|---:|---:|")
    for (name, tool), (push, pull) in best.items():
        print(f"| {name} | {tool} | {push:.2f} | {pull:.2f} |")
    s_k, s_d = best[("20,000 × 4 KiB", "kairo")], best[("20,000 × 4 KiB", "dvc")]
    l_k, l_r = best[(f"1 × {a.large_mib} MiB", "kairo")], best[(f"1 × {a.large_mib} MiB", "azure-storage-blob")]
    ratios = {"small_push_dvc_over_kairo": s_d[0] / s_k[0], "small_pull_dvc_over_kairo": s_d[1] / s_k[1],
              "large_push_kairo_over_raw": l_k[0] / l_r[0], "large_pull_kairo_over_raw": l_k[1] / l_r[1]}
    results["ratios"] = ratios
    print(f"\nsmall files: kairo {ratios['small_push_dvc_over_kairo']:.1f}× DVC on push, "
          f"{ratios['small_pull_dvc_over_kairo']:.1f}× on pull (goal ≥ 5×); large file: kairo takes "
          f"{ratios['large_push_kairo_over_raw']:.2f}× the raw client's time on upload, "
          f"{ratios['large_pull_kairo_over_raw']:.2f}× on download (goal ≤ 1.2×)")
    a.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
