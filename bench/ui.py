"""Kairo's server-rendered web UI against MLflow's UI search endpoints, same data, same machine.

Issue 18's speed bar: with 100,000 runs × 50 params and 50 metrics each in the store, Kairo's
runs page and a filtered search render in under 300 ms server-side, on SQLite and on PostgreSQL,
and a 500-run compare in under 1 s.

Data, identical in every store: --runs runs in one experiment, run i starting at T0 + i s and
finished a minute later; each with --keys params `p0..` (string values, p_j drawn from the first
j % 7 + 1 letters of "abcdefg", so p3 is one of a, b, c, d) and --keys metrics `m0..` (one point
each, uniform in [0, 1)), drawn from random.Random(i); and four tags (team, mlflow.source.type,
mlflow.user, mlflow.runName). Kairo's runs go through its MLflow-compatible HTTP API
(runs/create in order, one connection, so Kairo's newest-first order is nearly start-time order;
then log-batch and runs/update on --threads connections) — load time reported per phase.
MLflow's are inserted with SQL into the schema its own store creates (runs, params, metrics,
latest_metrics, tags), as bench/tracking.py does: through its API this would take hours.

Timed per store, in this process around one HTTP request on a kept-alive loopback connection
(response read to the end), median and p90 of --rounds after one warm-up:
  Kairo   health   GET /health (the floor: routing and HTTP only)
          runs     GET /runs (first page: 50 runs, newest first)
          filter   GET /runs?filter=metrics.m7 > 0.9 and params.p3 = 'a'
          compare  GET /compare?runs=ID&runs=ID... with --compare run ids (spread evenly over the
                   store); `runs=ID,ID,...` if the server refuses the long URL (414/431);
                   the page as a user first gets it (differing rows; `&all=1` is not asked)
  MLflow  health   GET /health
          runs     POST /ajax-api/2.0/mlflow/runs/search, 50 newest (what its runs page loads)
          filter   the same with the filter above
          compare  runs/search with `attributes.run_id IN (...)` for the same runs, max 500
          history  GET /ajax-api/2.0/mlflow/metrics/get-history (m0) for each of those runs,
                   one after the other, summed (its compare charts need them; reported apart,
                   and added to compare in "compare_total")
A Kairo page the server does not have yet (404) is reported as "missing", not an error.
Each answer is checked: the rows on Kairo's pages (run links) and in MLflow's answers are
counted, filtered rows are checked against the generated data, and the overlap of the two
first pages is reported.
"""
import argparse
import csv
import http.client
import json
import math
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import free_port, stop

T0 = 1_700_000_000_000  # start time of run 0, ms; run i starts i seconds later
LETTERS = "abcdefg"
FILTER = "metrics.m7 > 0.9 and params.p3 = 'a'"
TEAMS = ("vision", "nlp", "tabular")


# ---- the data ----

def run_data(i, keys):
    """Params and metrics of run i: the same in every store, whatever order runs are loaded in."""
    rng = random.Random(i)
    params = [(f"p{j}", LETTERS[rng.randrange(j % 7 + 1)]) for j in range(keys)]
    metrics = [(f"m{j}", rng.random()) for j in range(keys)]
    return params, metrics


def run_tags(i):
    return [("team", TEAMS[i % 3]), ("mlflow.source.type", "LOCAL"), ("mlflow.user", "bench"), ("mlflow.runName", f"run-{i}")]


def matches_filter(i, keys):
    params, metrics = run_data(i, keys)
    return dict(metrics)["m7"] > 0.9 and dict(params)["p3"] == "a"


def mlflow_run_id(i):
    return f"{i:032x}"


# ---- HTTP ----

class Client:
    """One kept-alive HTTP/1.1 connection; `request` returns (status, body, seconds)."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
                self.conn.connect()
            try:
                t0 = time.perf_counter()
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                payload = r.read()
                dt = time.perf_counter() - t0
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, payload, dt
            except (http.client.HTTPException, ConnectionError):
                # A kept-alive connection the server closed meanwhile: retry once on a new one.
                self.close()
                if attempt:
                    raise

    def json(self, method, path, body=None):
        status, payload, _ = self.request(method, path, body)
        if status != 200:
            raise SystemExit(f"{method} {path} → {status}: {payload[:500]!r}")
        return json.loads(payload or b"{}")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def start(cmd, url, cwd, env=None):
    """Spawn a server; returns it and the seconds to its first 200 from /health."""
    t0 = time.perf_counter()
    log = open(Path(cwd) / "server.log", "ab")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=log, start_new_session=True)
    while True:
        try:
            c = Client(url)
            if c.request("GET", "/health")[0] == 200:
                c.close()
                return proc, time.perf_counter() - t0
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{cmd} exited with {proc.returncode}; see {cwd}/server.log")
        if time.perf_counter() - t0 > 300:
            raise SystemExit(f"{cmd} did not answer within 300 s")
        time.sleep(0.05)


def psql(url, sql):
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")  # no "does not exist, skipping"
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, stdout=subprocess.DEVNULL, env=env)


def fresh_database(base, name):
    """A new, empty database on the PostgreSQL server at `base`; returns its URL."""
    psql(base, f"DROP DATABASE IF EXISTS {name}")
    psql(base, f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + f"/{name}"


def drop_database(base, url):
    psql(base, f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]}")


def db_mib(url):
    out = subprocess.run(["psql", url, "-At", "-c", "SELECT pg_database_size(current_database())"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip()) / 2**20


# ---- loading ----

def batches(params, metrics):
    """log-batch bodies within MLflow's limits (100 params, 1000 entities per request)."""
    out = []
    p, m = list(params), list(metrics)
    while p or m or not out:
        ps, p = p[:100], p[100:]
        ms, m = m[:1000 - len(ps)], m[1000 - len(ps):]
        out.append((ps, ms))
    return out


def load_kairo(url, n, keys, threads):
    """Every run through Kairo's MLflow API; returns (experiment id, run ids by index, timings)."""
    main = Client(url)
    exp = main.json("POST", "/api/2.0/mlflow/experiments/create", {"name": "ui-bench"})["experiment_id"]
    ids = [None] * n
    t = time.perf_counter()
    # Creation in order, on one connection: Kairo lists runs by id (a UUIDv7: creation time, to
    # the millisecond), so its newest-first order is, nearly, the start-time order MLflow uses.
    for i in range(n):
        ids[i] = main.json("POST", "/api/2.0/mlflow/runs/create", {
            "experiment_id": exp, "run_name": f"run-{i}", "user_id": "bench", "start_time": T0 + i * 1000,
            "tags": [{"key": k, "value": v} for k, v in run_tags(i) if k != "mlflow.runName"],
        })["run"]["info"]["run_id"]
        if (i + 1) % max(1, n // 10) == 0:
            print(f"  kairo: created {i + 1}/{n} runs, {time.perf_counter() - t:.0f} s", flush=True)
    create_s = time.perf_counter() - t
    main.close()

    local = threading.local()
    done = [0]
    lock = threading.Lock()

    def fill(i):
        c = getattr(local, "client", None) or Client(url)
        local.client = c
        params, metrics = run_data(i, keys)
        ts = T0 + i * 1000
        for ps, ms in batches(params, metrics):
            c.json("POST", "/api/2.0/mlflow/runs/log-batch", {
                "run_id": ids[i],
                "params": [{"key": k, "value": v} for k, v in ps],
                "metrics": [{"key": k, "value": v, "timestamp": ts, "step": 0} for k, v in ms],
            })
        c.json("POST", "/api/2.0/mlflow/runs/update", {"run_id": ids[i], "status": "FINISHED", "end_time": ts + 60_000})
        with lock:
            done[0] += 1
            if done[0] % max(1, n // 10) == 0:
                print(f"  kairo: logged {done[0]}/{n} runs, {time.perf_counter() - t:.0f} s", flush=True)

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(fill, range(n), chunksize=64):
            pass
    fill_s = time.perf_counter() - t
    return exp, ids, {"create_s": create_s, "log_s": fill_s, "load_s": create_s + fill_s}


def mlflow_schema(python, uri, artifacts):
    """MLflow's own store creates its schema (the same code `mlflow server` runs) and the experiment."""
    code = ("import sys\nfrom mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore\n"
            "print(SqlAlchemyStore(sys.argv[1], sys.argv[2]).create_experiment('ui-bench'))")
    out = subprocess.run([python, "-c", code, uri, str(artifacts)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"creating MLflow's schema failed:\n{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def mlflow_rows(exp, n, keys):
    """MLflow's rows for runs 0..n, a run at a time: (run, params, metrics (also latest), tags)."""
    for i in range(n):
        run = mlflow_run_id(i)
        ts = T0 + i * 1000
        params, metrics = run_data(i, keys)
        yield ((run, f"run-{i}", "LOCAL", "", "", "bench", "FINISHED", ts, ts + 60_000, "", "active",
                f"mlflow-artifacts:/{exp}/{run}/artifacts", int(exp)),
               [(k, v, run) for k, v in params],
               [(k, v, ts, run) for k, v in metrics],
               [(k, v, run) for k, v in run_tags(i)])


RUN_COLS = ("run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time, "
            "source_version, lifecycle_stage, artifact_uri, experiment_id")


def load_mlflow_sqlite(db, exp, n, keys):
    con = sqlite3.connect(db)
    chunk = {"runs": [], "params": [], "metrics": [], "tags": []}

    def flush():
        con.executemany(f"INSERT INTO runs ({RUN_COLS}) VALUES ({', '.join('?' * 13)})", chunk["runs"])
        con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", chunk["params"])
        con.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, 0, 0)",
                        chunk["metrics"])
        con.executemany("INSERT INTO latest_metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, 0, 0)",
                        chunk["metrics"])
        con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", chunk["tags"])
        for v in chunk.values():
            v.clear()

    for i, (run, params, metrics, tags) in enumerate(mlflow_rows(exp, n, keys)):
        chunk["runs"].append(run)
        chunk["params"] += params
        chunk["metrics"] += metrics
        chunk["tags"] += tags
        if (i + 1) % 2000 == 0:
            flush()
    flush()
    con.commit()
    con.close()


def load_mlflow_postgres(url, exp, n, keys, tmp):
    """The same rows through psql's COPY (MLflow's PostgreSQL schema; is_nan is a boolean there)."""
    files = {t: open(tmp / f"{t}.csv", "w", newline="") for t in ("runs", "params", "metrics", "tags")}
    w = {t: csv.writer(f) for t, f in files.items()}
    for run, params, metrics, tags in mlflow_rows(exp, n, keys):
        w["runs"].writerow(run)
        w["params"].writerows(params)
        w["metrics"].writerows((k, v, ts, r, 0, "f") for k, v, ts, r in metrics)
        w["tags"].writerows(tags)
    for f in files.values():
        f.close()
    for table, cols, f in [("runs", RUN_COLS, "runs"), ("params", "key, value, run_uuid", "params"),
                           ("metrics", "key, value, timestamp, run_uuid, step, is_nan", "metrics"),
                           ("latest_metrics", "key, value, timestamp, run_uuid, step, is_nan", "metrics"),
                           ("tags", "key, value, run_uuid", "tags")]:
        psql(url, f"\\copy {table} ({cols}) FROM '{tmp / (f + '.csv')}' WITH (FORMAT csv)")
    psql(url, "ANALYZE")  # what autovacuum would soon do; without it the planner guesses


# ---- measuring ----

def timed(client, method, path, body=None, rounds=7):
    """One warm-up, then `rounds` timed requests: the warm-up's answer and the timings (s)."""
    status, payload, _ = client.request(method, path, body)
    times = []
    if status == 200:
        for _ in range(rounds):
            s, _, dt = client.request(method, path, body)
            if s != 200:
                raise SystemExit(f"{method} {path[:80]}… answered {s} after a 200")
            times.append(dt)
    return status, payload, times


def summary(times, **extra):
    ordered = sorted(times)
    return {"median_ms": statistics.median(times) * 1000, "p90_ms": ordered[math.ceil(0.9 * len(ordered)) - 1] * 1000,
            "all_ms": [round(t * 1000, 2) for t in times], **extra}


RUN_LINK = re.compile(rb'href="/runs/([0-9a-f]{32})')


def measure_kairo(url, ids, picks, keys, rounds):
    c = Client(url)
    index = {rid: i for i, rid in enumerate(ids)}
    out = {}
    status, _, times = timed(c, "GET", "/health", rounds=rounds)
    out["health"] = summary(times)
    for name, path in [("runs", "/runs"), ("filter", "/runs?" + urllib.parse.urlencode({"filter": FILTER}))]:
        status, body, times = timed(c, "GET", path, rounds=rounds)
        if status != 200:
            raise SystemExit(f"GET {path} → {status}: {body[:300]!r}")
        rows = [index.get(m.decode(), -1) for m in RUN_LINK.findall(body)]
        extra = {"rows": len(rows), "bytes": len(body), "run_indexes": rows}
        if name == "filter":
            extra["rows_matching"] = sum(1 for i in rows if i >= 0 and matches_filter(i, keys))
        out[name] = summary(times, **extra)
    # Compare: repeated `runs=` first, the comma form if the server refuses so long a URL.
    chosen = [ids[i] for i in picks]
    for form, query in [("repeated", urllib.parse.urlencode([("runs", r) for r in chosen])),
                        ("comma", urllib.parse.urlencode({"runs": ",".join(chosen)}))]:
        status, body, times = timed(c, "GET", "/compare?" + query, rounds=rounds)
        if status not in (414, 431):
            break
    if status == 404:
        out["compare"] = {"missing": True}
    elif status != 200:
        out["compare"] = {"error": status, "form": form, "url_bytes": len(query) + 9, "body": body[:300].decode(errors="replace")}
    else:
        shown = sum(1 for r in chosen if r.encode() in body)
        out["compare"] = summary(times, form=form, url_bytes=len(query) + 9, bytes=len(body), runs_in_page=shown)
    c.close()
    return out


def measure_mlflow(url, exp, picks, keys, rounds):
    c = Client(url)
    search = "/ajax-api/2.0/mlflow/runs/search"
    base = {"experiment_ids": [exp], "max_results": 50, "order_by": ["attributes.start_time DESC"]}
    out = {}
    _, _, times = timed(c, "GET", "/health", rounds=rounds)
    out["health"] = summary(times)
    for name, body in [("runs", base), ("filter", dict(base, filter=FILTER))]:
        status, payload, times = timed(c, "POST", search, body, rounds)
        if status != 200:
            raise SystemExit(f"MLflow runs/search ({name}) → {status}: {payload[:300]!r}")
        runs = json.loads(payload).get("runs", [])
        rows = [int(r["info"]["run_id"], 16) for r in runs]
        extra = {"rows": len(rows), "bytes": len(payload), "run_indexes": rows}
        if name == "filter":
            extra["rows_matching"] = sum(1 for i in rows if matches_filter(i, keys))
        out[name] = summary(times, **extra)
    chosen = [mlflow_run_id(i) for i in picks]
    body = {"experiment_ids": [exp], "max_results": len(chosen),
            "filter": "attributes.run_id IN (" + ", ".join(f"'{r}'" for r in chosen) + ")"}
    status, payload, times = timed(c, "POST", search, body, rounds)
    if status != 200:
        raise SystemExit(f"MLflow runs/search (compare) → {status}: {payload[:300]!r}")
    found = len({r["info"]["run_id"] for r in json.loads(payload).get("runs", [])} & set(chosen))
    out["compare"] = summary(times, bytes=len(payload), runs_in_page=found)
    # The compare page's charts: one metric history per run, fetched one after the other.
    hist = []
    for k in range(rounds + 1):
        total = 0.0
        for r in chosen:
            s, p, dt = c.request("GET", f"/ajax-api/2.0/mlflow/metrics/get-history?run_id={r}&metric_key=m0")
            if s != 200:
                raise SystemExit(f"MLflow get-history → {s}: {p[:300]!r}")
            total += dt
        if k:  # the first pass is the warm-up
            hist.append(total)
    out["history"] = summary(hist, requests=len(chosen))
    out["compare_total"] = summary([a / 1000 + b for a, b in zip(out["compare"]["all_ms"], hist)])
    c.close()
    return out


# ---- one store each ----

def kairo_store(a, backend, pg_base):
    d = Path(a.work) / f"kairo-{backend}"
    d.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("KAIRO_DATABASE_URL", "KAIRO_SERVER", "KAIRO_TOKEN")}
    env["KAIRO_ACTOR"] = "bench"
    if backend == "postgres":
        env["KAIRO_DATABASE_URL"] = fresh_database(pg_base, f"kairo_ui_bench_{os.getpid()}")
    subprocess.run(["git", "init", "-q"], cwd=d, check=True)
    subprocess.run([a.kairo, "init"], cwd=d, env=env, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [a.kairo, "server", "--port", str(port), "--loop-every-s", "0"]
    proc, _ = start(cmd, url, d, env)
    try:
        exp, ids, r = load_kairo(url, a.runs, a.keys, a.threads)
    finally:
        stop(proc)
    print(f"kairo-{backend}: loaded {a.runs} runs in {r['load_s']:.1f} s (create {r['create_s']:.1f} s, "
          f"log-batch + update {r['log_s']:.1f} s, {a.threads} connections)", flush=True)
    # Measured on a fresh process, as MLflow's is (its data goes in while it is down).
    proc, r["startup_s"] = start(cmd, url, d, env)
    try:
        r["requests"] = measure_kairo(url, ids, a.picks, a.keys, a.rounds)
    finally:
        stop(proc)
    if backend == "sqlite":
        r["db_mib"] = sum(f.stat().st_size for f in (d / ".kairo").glob("kairo.db*")) / 2**20
    else:
        r["db_mib"] = db_mib(env["KAIRO_DATABASE_URL"])
        drop_database(pg_base, env["KAIRO_DATABASE_URL"])
    return r


def mlflow_store(a, backend, pg_base):
    d = Path(a.work) / f"mlflow-{backend}"
    d.mkdir()
    if backend == "sqlite":
        uri = f"sqlite:///{d}/mlflow.db"
    else:
        url = fresh_database(pg_base, f"mlflow_ui_bench_{os.getpid()}")
        uri = "postgresql://" + url.split("://", 1)[1]
    t = time.perf_counter()
    exp = mlflow_schema(a.python, uri, d / "artifacts")
    schema_s = time.perf_counter() - t
    t = time.perf_counter()
    if backend == "sqlite":
        load_mlflow_sqlite(d / "mlflow.db", exp, a.runs, a.keys)
    else:
        load_mlflow_postgres(url, exp, a.runs, a.keys, d)
    r = {"schema_s": schema_s, "load_s": time.perf_counter() - t}
    print(f"mlflow-{backend}: inserted {a.runs} runs with SQL in {r['load_s']:.1f} s", flush=True)
    port = free_port()
    srv = f"http://127.0.0.1:{port}"
    cmd = [a.mlflow, "server", "--backend-store-uri", uri, "--artifacts-destination", str(d / "artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc, r["startup_s"] = start(cmd, srv, d)
    try:
        r["requests"] = measure_mlflow(srv, exp, a.picks, a.keys, a.rounds)
    finally:
        stop(proc)
    if backend == "sqlite":
        r["db_mib"] = (d / "mlflow.db").stat().st_size / 2**20
    else:
        r["db_mib"] = db_mib(url)
        drop_database(pg_base, url)
    return r


# ---- report ----

ROWS = [("health", "`/health` (floor)"), ("runs", "runs page, 50 newest"), ("filter", f"filter `{FILTER}`"),
        ("compare", "compare, {n} runs"), ("history", "MLflow: {n} metric histories, summed"),
        ("compare_total", "MLflow: compare + histories")]
TARGET_MS = {"runs": 300, "filter": 300, "compare": 1000}


def cell(req):
    if req is None:
        return "—"
    if req.get("missing"):
        return "missing (404)"
    if "error" in req:
        return f"error {req['error']}"
    return f"{req['median_ms']:.1f} ms (p90 {req['p90_ms']:.1f})"


def table(results, n_compare):
    stores = [s for s in ("kairo-sqlite", "kairo-postgres", "mlflow-sqlite", "mlflow-postgres") if s in results["stores"]]
    names = {"kairo-sqlite": "Kairo SQLite", "kairo-postgres": "Kairo PostgreSQL", "mlflow-sqlite": "MLflow SQLite",
             "mlflow-postgres": "MLflow PostgreSQL"}
    # Each Kairo store against MLflow on the same database, else (no psycopg2) MLflow on SQLite.
    pairs = []
    for b in ("sqlite", "postgres"):
        m = next((f"mlflow-{x}" for x in (b, "sqlite") if f"mlflow-{x}" in stores), None)
        if f"kairo-{b}" in stores and m:
            pairs.append((f"kairo-{b}", m))
    head = ["request"] + [names[s] for s in stores] + [f"{names[m]} / {names[k]}" for k, m in pairs]
    head.append("target (issue 18)")
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 2) + "|---|"]
    for key, label in ROWS:
        if label.startswith("MLflow") and not any(s.startswith("mlflow") for s in stores):
            continue
        row = [label.format(n=n_compare)]
        for s in stores:
            row.append(cell(results["stores"][s]["requests"].get(key)))
        for ks, ms in pairs:
            # MLflow's compare + histories is set against Kairo's one compare page.
            k = results["stores"][ks]["requests"].get("compare" if key == "compare_total" else key)
            m = results["stores"][ms]["requests"].get(key)
            ok = k and m and "median_ms" in k and "median_ms" in m
            ratio = m["median_ms"] / k["median_ms"] if ok and key != "history" else None
            row.append("—" if ratio is None else f"{ratio:.2f}×" if ratio < 1 else f"{ratio:.1f}×")
        target = TARGET_MS.get(key)
        if target:
            verdicts = []
            for s in stores:
                req = results["stores"][s]["requests"].get(key, {})
                if s.startswith("kairo") and "median_ms" in req:
                    verdicts.append(f"{'met' if req['median_ms'] < target else 'NOT met'} ({names[s].split()[1]})")
            row.append(f"< {target} ms: " + ", ".join(verdicts) if verdicts else f"< {target} ms")
        else:
            row.append("")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kairo", required=True, help="the kairo binary")
    ap.add_argument("--mlflow", help="the mlflow script (default: next to this Python)")
    ap.add_argument("--work", default="/tmp/kairo-bench-ui", help="scratch directory (emptied)")
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--keys", type=int, default=50, help="params per run, and metrics per run")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--compare", type=int, default=500, help="runs on the compare page")
    ap.add_argument("--threads", type=int, default=4, help="connections loading Kairo")
    ap.add_argument("--postgres", help="a PostgreSQL server URL (fresh databases are created on it)")
    ap.add_argument("--stores", default="kairo-sqlite,kairo-postgres,mlflow-sqlite,mlflow-postgres",
                    help="which of the four to measure (PostgreSQL ones need --postgres)")
    ap.add_argument("--out", help="results JSON")
    a = ap.parse_args()
    a.python = sys.executable
    a.mlflow = a.mlflow or str(Path(sys.executable).parent / "mlflow")
    if a.keys < 8:
        raise SystemExit("--keys must be at least 8 (the filter reads m7 and p3)")
    n_compare = min(a.compare, a.runs)
    a.picks = [k * a.runs // n_compare for k in range(n_compare)]  # spread evenly over the store
    wanted = [s.strip() for s in a.stores.split(",") if s.strip()]
    notes = []
    if not a.postgres:
        if any(s.endswith("postgres") for s in wanted):
            notes.append("no --postgres: PostgreSQL stores skipped")
        wanted = [s for s in wanted if not s.endswith("postgres")]
    if "mlflow-postgres" in wanted and subprocess.run([a.python, "-c", "import psycopg2"], capture_output=True).returncode:
        notes.append("psycopg2 is not in the venv: MLflow measured on SQLite only")
        wanted.remove("mlflow-postgres")
    for note in notes:
        print("note:", note, flush=True)
    shutil.rmtree(a.work, ignore_errors=True)
    Path(a.work).mkdir(parents=True)
    results = {"runs": a.runs, "params_per_run": a.keys, "metrics_per_run": a.keys, "rounds": a.rounds,
               "compare_runs": n_compare, "filter": FILTER, "kairo": a.kairo, "notes": notes, "stores": {}}
    for store in wanted:
        system, backend = store.split("-")
        r = (kairo_store if system == "kairo" else mlflow_store)(a, backend, a.postgres)
        results["stores"][store] = r
        brief = {k: {f: v[f] for f in v if f not in ("all_ms", "run_indexes")} for k, v in r["requests"].items()}
        print(store, json.dumps({**{k: v for k, v in r.items() if k != "requests"}, "requests": brief}), flush=True)
    # The same first page in both? (Kairo lists by creation, MLflow by start time: nearly the same here.)
    for b in ("sqlite", "postgres"):
        k, m = results["stores"].get(f"kairo-{b}"), results["stores"].get(f"mlflow-{b}")
        if k and m:
            for key in ("runs", "filter"):
                same = len(set(k["requests"][key]["run_indexes"]) & set(m["requests"][key]["run_indexes"]))
                results["stores"][f"kairo-{b}"]["requests"][key]["same_rows_as_mlflow"] = same
                print(f"{b} {key}: {same} of Kairo's {k['requests'][key]['rows']} rows also on MLflow's "
                      f"{m['requests'][key]['rows']}", flush=True)
    results["table"] = table(results, n_compare)
    print()
    print(f"{a.runs:,} runs × {a.keys} params + {a.keys} metrics; median (p90) of {a.rounds} after a warm-up")
    print(results["table"])
    for note in notes:
        print(f"\nNote: {note}.")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
