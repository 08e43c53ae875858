"""Kairo's tracking server against `mlflow server`, both on SQLite, same machine, one run.

Measured per server: start-up (spawn → first 200 from /health), idle RSS of the whole process
tree 3 s after start-up, log-metric throughput with wrk at 2 and 8 connections, search_runs
(`metrics.acc > 0.9`, up to 1000 results) over --runs runs, and the Python client's per-call
`MlflowClient.log_metric` latency. MLflow's 10,000 runs are inserted into its own schema with
SQL (through its API that alone would take many minutes); Kairo's go through its HTTP API.
"""
import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def http(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read() or b"{}")


def start(cmd, url, cwd, env=None):
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return proc, time.perf_counter() - t0
        except Exception:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{cmd} exited with {proc.returncode}")
        if time.perf_counter() - t0 > 180:
            raise SystemExit(f"{cmd} did not answer within 180 s")
        time.sleep(0.02)


def tree_rss_mib(pid):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def wrk(url, run_id, conns, duration, work):
    script = work / "log_metric.lua"
    body = json.dumps({"run_id": run_id, "key": "wrk", "value": 1.5, "timestamp": 1, "step": 0})
    script.write_text(f'wrk.method = "POST"\nwrk.body = \'{body}\'\nwrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(
        ["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{duration}s", "-s", str(script), url + "/api/2.0/mlflow/runs/log-metric"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(next(l for l in out.splitlines() if l.startswith("Requests/sec:")).split()[1])
    errors = sum(int(l.split()[-1]) for l in out.splitlines() if "Non-2xx" in l)
    return rps, errors


def populate_kairo(url, n):
    exp = http(url + "/api/2.0/mlflow/experiments/create", {"name": "search"})["experiment_id"]
    rng = random.Random(7)
    for i in range(n):
        run = http(url + "/api/2.0/mlflow/runs/create", {"experiment_id": exp, "start_time": 1_700_000_000_000 + i})["run"]["info"]["run_id"]
        http(url + "/api/2.0/mlflow/runs/log-batch", {
            "run_id": run,
            "metrics": [{"key": "acc", "value": rng.random(), "timestamp": 1, "step": 0}, {"key": "loss", "value": rng.random(), "timestamp": 1, "step": 0}],
            "params": [{"key": "lr", "value": str(rng.choice([0.1, 0.01, 0.001]))}],
            "tags": [{"key": "team", "value": "bench"}],
        })
    return exp


def populate_mlflow_sql(db, exp_id, n):
    """Insert runs the way MLflow's SQL store lays them out (runs, latest_metrics, metrics, params, tags)."""
    rng = random.Random(7)
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute("PRAGMA table_info(runs)")]
    for i in range(n):
        run = f"{i:032x}"
        row = {"run_uuid": run, "name": f"run-{i}", "source_type": "LOCAL", "source_name": "", "entry_point_name": "",
               "user_id": "bench", "status": "FINISHED", "start_time": 1_700_000_000_000 + i, "end_time": 1_700_000_000_001 + i,
               "source_version": "", "lifecycle_stage": "active", "artifact_uri": f"mlflow-artifacts:/{exp_id}/{run}/artifacts",
               "experiment_id": int(exp_id), "deleted_time": None}
        use = [c for c in cols if c in row]
        con.execute(f"INSERT INTO runs ({', '.join(use)}) VALUES ({', '.join('?' * len(use))})", [row[c] for c in use])
        for key in ("acc", "loss"):
            v = rng.random()
            con.execute("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, 1, ?, 0, 0)", (key, v, run))
            con.execute("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, 1, 0, 0, ?)", (key, v, run))
        con.execute("INSERT INTO params (key, value, run_uuid) VALUES ('lr', ?, ?)", (str(rng.choice([0.1, 0.01, 0.001])), run))
        con.execute("INSERT INTO tags (key, value, run_uuid) VALUES ('team', 'bench', ?)", (run,))
    con.commit()
    con.close()


def search_time(url, exp):
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        r = http(url + "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp], "filter": "metrics.acc > 0.9", "max_results": 1000})
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(r.get("runs", []))


CLIENT_LATENCY = """
import sys, time
from mlflow import MlflowClient

from benchlib import free_port, stop
c = MlflowClient(sys.argv[1])
run = c.create_run("0").info.run_id
for i in range(20):
    c.log_metric(run, "warm", i)
t0 = time.perf_counter()
for i in range(300):
    c.log_metric(run, "lat", i, step=i)
print((time.perf_counter() - t0) / 300)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo", required=True)
    ap.add_argument("--mlflow", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results = {}
    for name in ("kairo", "mlflow"):
        d = work / name
        d.mkdir()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        if name == "kairo":
            subprocess.run(["git", "init", "-q"], cwd=d, check=True)
            subprocess.run([a.kairo, "init"], cwd=d, check=True, stdout=subprocess.DEVNULL)
            cmd = [a.kairo, "server", "--port", str(port)]
        else:
            cmd = [a.mlflow, "server", "--backend-store-uri", f"sqlite:///{d}/mlflow.db", "--artifacts-destination", str(d / "artifacts"),
                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        proc, startup = start(cmd, url, d)
        time.sleep(3)
        rss = tree_rss_mib(proc.pid)
        r = {"startup_s": startup, "idle_rss_mib": rss}
        run_id = http(url + "/api/2.0/mlflow/runs/create", {"experiment_id": "0", "start_time": 1})["run"]["info"]["run_id"]
        for conns in (2, 8):
            rps, errors = wrk(url, run_id, conns, a.duration, work)
            r[f"log_metric_rps_c{conns}"] = rps
            r[f"log_metric_errors_c{conns}"] = errors
        r["client_log_metric_s"] = float(subprocess.run([sys.executable, "-c", CLIENT_LATENCY, url], capture_output=True, text=True, check=True).stdout.strip())
        if name == "kairo":
            t0 = time.perf_counter()
            exp = populate_kairo(url, a.runs)
            r["populate_s"] = time.perf_counter() - t0
        else:
            exp = http(url + "/api/2.0/mlflow/experiments/create", {"name": "search"})["experiment_id"]
            stop(proc)
            populate_mlflow_sql(d / "mlflow.db", exp, a.runs)
            proc, _ = start(cmd, url, d)
        r["search_s"], r["search_results"] = search_time(url, exp)
        r["rss_after_mib"] = tree_rss_mib(proc.pid)
        stop(proc)
        results[name] = r
        print(name, json.dumps(r), flush=True)
    k, m = results["kairo"], results["mlflow"]
    results["ratios"] = {
        "log_metric_throughput_c2": k["log_metric_rps_c2"] / m["log_metric_rps_c2"],
        "log_metric_throughput_c8": k["log_metric_rps_c8"] / m["log_metric_rps_c8"],
        "search_speedup": m["search_s"] / k["search_s"],
        "idle_rss_fraction": k["idle_rss_mib"] / m["idle_rss_mib"],
        "startup_speedup": m["startup_s"] / k["startup_s"],
        "client_latency_speedup": m["client_log_metric_s"] / k["client_log_metric_s"],
    }
    print("ratios", json.dumps(results["ratios"], indent=1))
    Path(a.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
