"""Serving replicas on one PostgreSQL database (see replicas.sh), one run, same machine.

1. Throughput. One project whose metadata is in a fresh PostgreSQL database, the model
   `fixtures/models/logreg20.onnx` registered and deployed (version 1 serves 100%). Single-row
   OIP inference (`POST /v2/models/clf/infer`), wrk at --conns connections in total, --secs per
   cell, --rounds rounds, the order of the cases reversed every other round:
   - one `kairo serve` replica, one wrk process (2 threads);
   - two replicas, wrk split across them: two wrk processes (1 thread, half the connections
     each) started together, their requests/s summed, their p50s averaged by request count;
   - the same with `--threads 1` per replica (as many serving threads as cores in total);
   - the floor: `GET /v2/health/live` on one replica (an answer that does no work).
   Every replica is started for its cell and stopped after it (default threads: one per core).
   On 2 cores, wrk and every replica share the same two cores: a second replica adds no CPU,
   so this measures what replication costs (contention), not what it gains.
2. Database statements. Two replicas of the same project, first with the direct deployment,
   then with version 2 (the same file, registered again) as a 10% canary, whose counts every
   replica publishes every --poll-ms while one of them holds the guard's lease. Per deployment:
   an idle window of --db-window seconds, then a loaded one: --requests single-row requests
   (wrk stops each thread after its share; the replicas' own /metrics give the exact count),
   then idle again until --db-window (at least --log-flush-s after the last request, so the
   prediction log and serving-day flushes of those requests land inside the window). Counted
   from the `postgres` database, so the measuring queries never count in the benchmarked one:
   - transactions: `xact_commit` of the database in `pg_stat_database`. Backends report these
     at most once a second, and an idle one can hold them up to 10 s, so they lag the window by
     a few seconds at each end; the windows are long enough for that to be small;
   - statements, by text: `pg_stat_statements` (when --pgss 1), counted as they run.
   The idle window gives the background rate (the registry poll, the flushes); the loaded
   window minus that rate, divided by the requests, is what the serving path costs per request.
Standard library only; PostgreSQL through `psql`.
"""
import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchlib import free_port, stop, wait_ready, wrk_result, wrk_script, wrk_start

DB = "kairo_replicas_bench"
MODEL = "clf"
ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0] * 2
INFER_BODY = json.dumps({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": ROW}]})
INFER_PATH = f"/v2/models/{MODEL}/infer"
LIVE_PATH = "/v2/health/live"

# The throughput cases: replicas started, `--threads` per replica (None: kairo's default, one
# per core), the path wrk requests and its body (None: a GET).
CASES = {
    "one replica": dict(replicas=1, threads=None, path=INFER_PATH, body=INFER_BODY),
    "two replicas": dict(replicas=2, threads=None, path=INFER_PATH, body=INFER_BODY),
    "two replicas, --threads 1 each": dict(replicas=2, threads=1, path=INFER_PATH, body=INFER_BODY),
    "floor: GET /v2/health/live, one replica": dict(replicas=1, threads=None, path=LIVE_PATH, body=None),
}


class Postgres:
    """The throw-away cluster, through `psql`. Measuring queries run in the `postgres`
    database: they never count in the benchmarked one's statistics."""

    def __init__(self, admin_url, pgss):
        self.admin = admin_url
        self.url = admin_url.rsplit("/", 1)[0] + "/" + DB
        self.pgss = pgss

    def sql(self, query):
        """Rows of a query as lists of strings (unit and record separators: query texts may
        hold tabs and newlines)."""
        out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\x1f", "-R", "\x1e", "-v", "ON_ERROR_STOP=1",
                              self.admin, "-c", query], check=True, capture_output=True, text=True).stdout
        return [rec.split("\x1f") for rec in out.rstrip("\n").split("\x1e") if rec]

    def fresh_database(self):
        self.sql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        self.sql(f"CREATE DATABASE {DB}")
        if self.pgss:
            self.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def snapshot(self):
        """The database's committed transactions and, with pg_stat_statements, its statements'
        calls by query id, now."""
        (xact,), = self.sql(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{DB}'")
        snap = {"time": time.monotonic(), "xact_commit": int(xact), "statements": {}}
        if self.pgss:
            rows = self.sql("SELECT s.queryid, sum(s.calls), min(regexp_replace(s.query, '\\s+', ' ', 'g')) "
                            "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                            f"WHERE d.datname = '{DB}' GROUP BY s.queryid")
            snap["statements"] = {qid: (int(calls), query) for qid, calls, query in rows}
        return snap


def kind(query):
    """write, transaction (BEGIN/COMMIT/ROLLBACK) or read."""
    q = query.lstrip().lower()
    if re.match(r"(insert|update|delete|merge)\b", q) or re.match(r"with\b.*\b(insert|update|delete)\b", q):
        return "write"
    if re.match(r"(begin|commit|rollback|start transaction)\b", q):
        return "transaction"
    return "read"


def window(before, after):
    """What happened in the database between two snapshots."""
    statements = []
    for qid, (calls, query) in after["statements"].items():
        n = calls - before["statements"].get(qid, (0, query))[0]
        if n:
            statements.append({"query": query, "kind": kind(query), "calls": n})
    statements.sort(key=lambda s: -s["calls"])
    return {
        "seconds": after["time"] - before["time"],
        "transactions": after["xact_commit"] - before["xact_commit"],
        "statements": statements,
        "writes": sum(s["calls"] for s in statements if s["kind"] == "write"),
        "reads": sum(s["calls"] for s in statements if s["kind"] == "read"),
    }


class Replicas:
    """`kairo serve clf` processes of one project, each on its own port."""

    def __init__(self, a, project, env, n, threads=None):
        self.procs, self.urls = [], []
        for i in range(n):
            port = free_port()
            cmd = [a.kairo, "serve", MODEL, "--port", str(port), "--poll-ms", str(a.poll_ms),
                   "--log-flush-s", str(a.log_flush_s)]
            if threads:
                cmd += ["--threads", str(threads)]
            # The serving log to a file: RUST_LOG=warn keeps the per-request line out of it.
            log = open(project.parent / f"serve-{port}.log", "w")
            self.procs.append(subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=log,
                                               start_new_session=True))
            self.urls.append(f"http://127.0.0.1:{port}")
        for proc, url in zip(self.procs, self.urls):
            wait_ready(proc, url + "/v2/health/ready")

    def served(self):
        """Inference requests answered and prediction-log segments written, summed over the
        replicas (from their /metrics)."""
        total = {"requests": 0, "segments": 0}
        for url in self.urls:
            with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("kairo_inference_requests_total{"):
                        total["requests"] += int(float(line.rsplit(" ", 1)[1]))
                    elif line.startswith("kairo_prediction_log_segments_total"):
                        total["segments"] += int(float(line.rsplit(" ", 1)[1]))
        return total

    def stop(self):
        for proc in self.procs:
            stop(proc)


def split_load(urls, path, body, conns, secs, work):
    """wrk on every replica at once: the connections (and wrk's 2 threads) split evenly, one
    wrk process per replica; returns each process's result."""
    n = len(urls)
    threads = max(1, 2 // n)
    script = wrk_script(work / f"load-{n}.lua", body)
    procs = [wrk_start(url + path, script, conns // n, threads, secs) for url in urls]
    with interrupted_on_exit(procs):
        return [wrk_result(p) for p in procs]


def fixed_load(reps, requests, conns, work, timeout=900):
    """`requests` single-row inferences split across the replicas as in split_load. Each wrk
    thread stops itself after its share, but wrk only exits at -d: once the replicas' /metrics
    show them all answered, wrk is interrupted (SIGINT: it stops and prints its summary)."""
    n = len(reps.urls)
    threads = max(1, 2 // n)
    script = wrk_script(work / f"fixed-{n}.lua", INFER_BODY, math.ceil(requests / n / threads))
    start = reps.served()["requests"]
    procs = [wrk_start(url + INFER_PATH, script, conns // n, threads, timeout) for url in reps.urls]
    with interrupted_on_exit(procs):
        while reps.served()["requests"] - start < requests and all(p.poll() is None for p in procs):
            time.sleep(0.05)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        return [wrk_result(p) for p in procs]


@contextlib.contextmanager
def interrupted_on_exit(procs):
    """wrk processes left running by an exception (a kill of the bench) are stopped with it."""
    try:
        yield
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def combine(parts):
    """Requests/s summed; p50 averaged by requests; p99 the worst process's."""
    total = sum(p["requests"] for p in parts)
    return {
        "rps": sum(p["rps"] for p in parts),
        "requests": total,
        "p50_ms": sum(p["p50_ms"] * p["requests"] for p in parts) / max(total, 1),
        "p99_ms": max(p["p99_ms"] for p in parts),
        "non2xx": sum(p["non2xx"] for p in parts),
        "socket_errors": [p["socket_errors"] for p in parts if p["socket_errors"]] or None,
        "parts": parts,
    }


def kairo(a, project, env, *args):
    return subprocess.run([a.kairo, *args], cwd=project, env=env, check=True, capture_output=True, text=True).stdout


def throughput(a, project, env, work):
    runs = {name: [] for name in CASES}
    for r in range(a.rounds):
        order = list(CASES) if r % 2 == 0 else list(reversed(CASES))
        for name in order:
            case = CASES[name]
            reps = Replicas(a, project, env, case["replicas"], case["threads"])
            try:
                res = combine(split_load(reps.urls, case["path"], case["body"], a.conns, a.secs, work))
            finally:
                reps.stop()
            res["round"] = r + 1
            runs[name].append(res)
            print(json.dumps({"case": name, **{k: v for k, v in res.items() if k != "parts"}}), flush=True)
    summary = {}
    for name, rs in runs.items():
        rps = [x["rps"] for x in rs]
        summary[name] = {"rps": statistics.median(rps), "rps_min": min(rps), "rps_max": max(rps),
                         "p50_ms": statistics.median(x["p50_ms"] for x in rs),
                         "p99_ms": statistics.median(x["p99_ms"] for x in rs),
                         "non2xx": sum(x["non2xx"] for x in rs),
                         "socket_errors": [x["socket_errors"] for x in rs if x["socket_errors"]] or None}
    base = summary["one replica"]["rps"]
    for s in summary.values():
        s["vs_one_replica"] = s["rps"] / base
    return summary, runs


def database(a, pg, project, env, work, mode):
    """Idle and loaded windows on two replicas (see the module's docstring)."""
    reps = Replicas(a, project, env, 2)
    try:
        # Let both replicas settle: their first polls, the lease taken, counts published, and
        # their start-up's transactions reported (an idle backend may hold them up to 10 s).
        time.sleep(max(12.0, 3 * a.poll_ms / 1000))
        s0 = pg.snapshot()
        time.sleep(a.db_window)
        s1 = pg.snapshot()
        m0 = reps.served()
        s2 = pg.snapshot()
        parts = fixed_load(reps, a.requests, a.conns, work)
        s3 = pg.snapshot()
        burst = s3["time"] - s2["time"]
        # Wait past the next flush of the log and serving days, and at least the idle window.
        rest = max(a.db_window - burst, a.log_flush_s + 2 * a.poll_ms / 1000 + 1)
        time.sleep(rest)
        s4 = pg.snapshot()
        m1 = reps.served()
    finally:
        reps.stop()
    deployment = json.loads(kairo(a, project, env, "deploy", MODEL, "--json"))
    idle, loaded, during = window(s0, s1), window(s2, s4), window(s2, s3)
    requests = m1["requests"] - m0["requests"]
    res = {"mode": mode, "replicas": 2, "requests": requests, "segments": m1["segments"] - m0["segments"],
           "wrk": combine(parts), "idle": idle, "loaded": loaded, "burst": during, "deployment_after": deployment}
    # The loaded window less the idle rate, per request.
    for key in ("transactions", "writes", "reads"):
        rate = idle[key] / idle["seconds"]
        res[f"idle_{key}_per_s"] = rate
        res[f"extra_{key}"] = loaded[key] - rate * loaded["seconds"]
        res[f"{key}_per_request"] = res[f"extra_{key}"] / max(requests, 1)
    # Which tables the loaded window wrote, and how often.
    tables = {}
    for s in loaded["statements"]:
        m = re.match(r"\s*(?:insert\s+into|update|delete\s+from)\s+(\w+)", s["query"], re.I)
        if s["kind"] == "write":
            name = m.group(1) if m else short(s["query"], 40)
            tables[name] = tables.get(name, 0) + s["calls"]
    res["writes_by_table"] = tables
    idle_calls = {s["query"]: s["calls"] for s in idle["statements"]}
    for s in loaded["statements"]:
        s["idle_per_s"] = idle_calls.get(s["query"], 0) / idle["seconds"]
        s["loaded_per_s"] = s["calls"] / loaded["seconds"]
        s["extra_per_1000_requests"] = (s["calls"] - s["idle_per_s"] * loaded["seconds"]) * 1000 / max(requests, 1)
    print(json.dumps({k: v for k, v in res.items() if k not in ("idle", "loaded", "burst", "wrk", "deployment_after")}
                     | {"candidate_after": deployment.get("candidate")}), flush=True)
    return res


def short(query, n=90):
    return query if len(query) <= n else query[: n - 1] + "…"


def report(a, summary, dbs):
    print(f"\n### Throughput, single-row OIP on logreg20 ({a.build} build; median of {a.rounds} rounds of "
          f"{a.secs} s, wrk {a.conns} connections in total)\n")
    print("| case | requests/s (range) | vs one replica | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for name, s in summary.items():
        print(f"| {name} | {s['rps']:,.0f} ({s['rps_min']:,.0f}–{s['rps_max']:,.0f}) | {s['vs_one_replica']:.2f} | "
              f"{s['p50_ms']:.3f} | {s['p99_ms']:.3f} |")
    print(f"\n### Database, two replicas ({a.build} build; poll {a.poll_ms} ms, flush {a.log_flush_s} s; "
          f"{'pg_stat_statements and ' if a.pgss else ''}pg_stat_database)\n")
    print("| deployment | window | s | requests | transactions | per s | statements written | read | "
          "extra transactions / request | extra writes / request |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d in dbs:
        for label, w in (("idle", d["idle"]), (f"{d['requests']:,} requests, then idle", d["loaded"]),
                         ("the requests alone", d["burst"])):
            wpr = f"{d['writes_per_request']:.6f}" if a.pgss else "–"
            per = f"{d['transactions_per_request']:.6f} | {wpr}" if w is d["loaded"] else " | "
            n = f"{d['requests']:,}" if w is not d["idle"] else "0"
            ws = f"{w['writes']}" if a.pgss else "–"
            rs = f"{w['reads']}" if a.pgss else "–"
            print(f"| {d['mode']} | {label} | {w['seconds']:.1f} | {n} | {w['transactions']} | "
                  f"{w['transactions'] / w['seconds']:.2f} | {ws} | {rs} | {per} |")
    if a.pgss:
        for d in dbs:
            print(f"\n{d['mode']}: statements per second, idle vs loaded window, and beyond the idle rate per 1,000 "
                  f"requests ({d['requests']:,} requests, {d['segments']} prediction-log segments written)\n")
            print("| statement | kind | idle /s | loaded /s | extra per 1,000 requests |")
            print("|---|---|---:|---:|---:|")
            for s in d["loaded"]["statements"]:
                print(f"| `{short(s['query'])}` | {s['kind']} | {s['idle_per_s']:.2f} | {s['loaded_per_s']:.2f} | "
                      f"{s['extra_per_1000_requests']:+.3f} |")
    print()
    for d in dbs:
        # One write (or transaction) per request would make these ~1; flushes make them ~0.
        # Statements are counted exactly as they run; transactions lag (see the docstring), so
        # they decide only without pg_stat_statements.
        hot = d["writes_per_request"] > 0.01 if a.pgss else d["transactions_per_request"] > 0.01
        verdict = "PER-REQUEST DATABASE WORK ON THE HOT PATH" if hot else "none per request"
        line = (f"{d['mode']}: {d['requests']:,} requests, {d['loaded']['seconds']:.0f} s window: "
                f"{d['extra_transactions']:+.0f} transactions beyond the idle rate = "
                f"{d['transactions_per_request']:+.5f} per request")
        if a.pgss:
            tables = ", ".join(f"{t} {n}" for t, n in d["writes_by_table"].items()) or "none"
            line += (f"; {d['extra_writes']:+.0f} written statements = {d['writes_per_request']:+.5f} per request "
                     f"(all writes in the window: {tables}; {d['segments']} prediction-log segments)")
        print(f"{line} — {verdict}.")
        print(f"  background, 2 replicas idle: {d['idle_transactions_per_s']:.2f} transactions/s"
              + (f", {d['idle_reads_per_s']:.2f} reads/s and {d['idle_writes_per_s']:.2f} written statements/s"
                 if a.pgss else ""))
    bad = [(n, s) for n, s in summary.items() if s["non2xx"] or s["socket_errors"]]
    bad += [(d["mode"], d["wrk"]) for d in dbs if d["wrk"]["non2xx"] or d["wrk"]["socket_errors"]]
    if bad:
        print("\nWARNING: cells with errors:", json.dumps([(n, s["non2xx"], s["socket_errors"]) for n, s in bad]))
    if not a.pgss:
        print("\n(pg_stat_statements was not available: statements were not counted, only transactions)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo", required=True)
    ap.add_argument("--build", default="unlabelled", help="how the binary was built, for the tables")
    ap.add_argument("--root", required=True, help="the repository (for fixtures/models/logreg20.onnx)")
    ap.add_argument("--pg-url", required=True, help="a superuser URL of the throw-away cluster")
    ap.add_argument("--pgss", type=int, default=1, help="1: pg_stat_statements is loaded")
    ap.add_argument("--work", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--db-window", type=float, default=30)
    ap.add_argument("--poll-ms", type=int, default=1000)
    ap.add_argument("--log-flush-s", type=int, default=10)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    # A kill (replicas.sh forwards Ctrl-C as SIGTERM) unwinds, so the replicas are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    pg = Postgres(a.pg_url, a.pgss)
    pg.fresh_database()
    env = dict(os.environ, KAIRO_DATABASE_URL=pg.url, KAIRO_ACTOR="bench@local", RUST_LOG="warn")
    project = work / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    kairo(a, project, env, "init")
    model = str(Path(a.root) / "fixtures" / "models" / "logreg20.onnx")
    kairo(a, project, env, "models", "register", MODEL, "--file", model)
    kairo(a, project, env, "models", "register", MODEL, "--file", model)  # version 2, the canary
    kairo(a, project, env, "deploy", MODEL, "--version", "1")

    summary, runs = throughput(a, project, env, work)
    dbs = [database(a, pg, project, env, work, "direct (version 1 at 100%)")]
    # Limits no healthy canary reaches, and a window longer than the bench: it stays a canary.
    kairo(a, project, env, "deploy", MODEL, "--version", "2", "--strategy", "canary", "--weight", "10",
          "--window-s", "86400", "--max-p99-ms", "60000", "--max-error-rate", "0.5")
    dbs.append(database(a, pg, project, env, work, "canary (version 2 at 10%)"))

    settings = {k: getattr(a, k) for k in ("build", "rounds", "secs", "conns", "requests", "db_window", "poll_ms",
                                             "log_flush_s", "pgss")}
    settings["cores"] = os.cpu_count()
    settings["kairo_version"] = subprocess.run([a.kairo, "--version"], capture_output=True, text=True).stdout.strip()
    settings["commit"] = subprocess.run(["git", "-C", a.root, "rev-parse", "HEAD"], capture_output=True,
                                        text=True).stdout.strip()
    Path(a.out).write_text(json.dumps({"settings": settings, "throughput": summary, "throughput_runs": runs,
                                       "database": dbs}, indent=2))
    report(a, summary, dbs)


if __name__ == "__main__":
    main()
