"""The prediction log's format (issue 22): bytes per logged row, and the time and peak memory
of a monitor check over a window of --rows logged rows, for two kairo binaries in one run.

For each binary: a project with `fixtures/models/logreg20.onnx` registered with a reference
profile; `kairo serve clf` takes --rows rows as OIP requests of 1,000 rows (FP32, Gaussian
features, every 10th request shifted so the window has drift to find); the server is stopped
(its last flush writes what is queued) and the segments' object bytes are summed; then
`kairo monitor check --deployment clf --rows N --windows 1 --json` runs --rounds times (median
wall time, peak RSS). Standard library only.
"""
import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

from benchlib import free_port, stop, training_csv, wait_ready


def project(kairo, model, work, name):
    d = work / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=d, check=True)
    subprocess.run([kairo, "init"], cwd=d, check=True, stdout=subprocess.DEVNULL)
    training_csv(d / "train.csv")
    subprocess.run([kairo, "models", "register", "clf", "--file", str(model), "--profile-data", "train.csv",
                    "--target", "label"], cwd=d, check=True, stdout=subprocess.DEVNULL)
    return d


def fill(kairo, d, rows):
    port = free_port()
    proc = subprocess.Popen([kairo, "serve", "clf", "--port", str(port), "--log-flush-s", "1"], cwd=d,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url + "/v2/health/ready", timeout=60)
        rnd = random.Random(11)
        per = 1000
        for i in range(rows // per):
            shift = 1.5 if i % 10 == 0 else 0.0
            data = [rnd.gauss(shift, 1) for _ in range(per * 20)]
            body = json.dumps({"inputs": [{"name": "input", "shape": [per, 20], "datatype": "FP32", "data": data}]})
            req = urllib.request.Request(url + "/v2/models/clf/infer", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                assert r.status == 200
    finally:
        stop(proc)
    db = sqlite3.connect(d / ".kairo" / "kairo.db")
    segments = db.execute("SELECT object, rows FROM prediction_segments").fetchall()
    db.close()
    logged = sum(r for _, r in segments)
    size = 0
    for obj, _ in segments:
        size += (d / ".kairo" / "objects" / obj[:2] / obj[2:]).stat().st_size
    return logged, size, len(segments)


def check(kairo, d, rows):
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.chdir(d)
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.execv(kairo, [kairo, "monitor", "check", "--deployment", "clf", "--rows", str(rows), "--windows", "1",
                         "--json"])
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        raise SystemExit(f"monitor check exited {code}")
    return elapsed, usage.ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--old", required=True)
    p.add_argument("--new", required=True)
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    results = {}
    for label, kairo in (("old", a.old), ("new", a.new)):
        d = project(kairo, a.model, a.work, label)
        logged, size, segments = fill(kairo, d, a.rows)
        runs = [check(kairo, d, a.rows) for _ in range(a.rounds)]
        results[label] = {
            "binary": kairo, "rows_logged": logged, "segments": segments, "bytes": size,
            "bytes_per_row": size / max(logged, 1),
            "check_seconds": statistics.median(r[0] for r in runs),
            "check_peak_rss_mib": max(r[1] for r in runs),
            "all_check_seconds": [r[0] for r in runs],
        }
    print("| binary | rows logged | segments | bytes per row | monitor check over the window | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in results.items():
        print(f"| {label} | {r['rows_logged']:,} | {r['segments']} | {r['bytes_per_row']:.1f} | "
              f"{r['check_seconds']:.2f} s | {r['check_peak_rss_mib']:.0f} MiB |")
    if a.out:
        a.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
