"""`kairo kpi` over a year of a busy team's ledger (see kpi.sh). Standard library only.

The ledger: MODELS models, each retrained, promoted and canaried every ~1.8 days for a year
(a dataset version, a training run, registration, promotion — half with an approval —, an alias
move, a canary; 5% rolled back; every 10th version from an incident that an alert opened and
the loop resolved), plus evaluation and preparation runs, alerts and object pins, to EVENTS
events and RUNS runs in all. Rows are written straight into the tables `kairo` migrated (SQLite
through sqlite3, PostgreSQL through psql's COPY), with the payloads Kairo writes.

Timed: `kairo kpi --json --since 90d` (a fresh process each time, median of ROUNDS), against
the floor — the same reads without any computing: the events of the KPI kinds in the period
and its lookback, the registrations and the runs' cost rows, fetched by the database's own
client (python's sqlite3 in process; psql for PostgreSQL) — and against an empty
`kairo --version` (process start).
"""
import argparse
import csv
import json
import os
import random
import sqlite3
import statistics
import subprocess
import tempfile
import time
from datetime import datetime, timezone

DAY = 86_400_000
H = 3_600_000
M = 60_000


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def hx(rng, n=64):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def record(run_id, stage, actor, trigger, start, end, cpu, deps, commit):
    return json.dumps({
        "id": run_id, "stage": stage, "status": "succeeded", "trigger": trigger, "actor": actor, "host": "bench",
        "pid": 1, "executor": "local", "git": {"commit": commit, "branch": "main", "dirty": None}, "cmd": f"python {stage}.py",
        "wdir": "", "deps": deps, "params": {}, "env": {"spec": "host", "hash": "0" * 64, "key": {}, "facts": {}},
        "out_paths": [], "persist": [], "metrics_files": [], "outs": [], "metrics": {}, "cache_key": "0" * 64,
        "cacheable": True, "exit_code": 0, "started_at": iso(start), "ended_at": iso(end), "log": None,
        "reproduces": None, "message": None, "cpu_ms": cpu,
    }, separators=(",", ":"))


def generate(now, models, n_events, n_runs, seed=7):
    rng = random.Random(seed)
    events, runs, datasets, versions = [], [], [], []
    start = now - 365 * DAY
    run_no = 0

    def run(stage, actor, trigger, t0, minutes, deps=(), commit=None):
        nonlocal run_no
        run_no += 1
        rid = f"{run_no:012x}{hx(rng, 20)}"
        end = t0 + minutes * M
        cpu = int(minutes * M * rng.uniform(0.5, 1.8))
        runs.append((rid, stage, "succeeded", trigger, actor, "bench", 1, iso(t0), iso(end), "0" * 64, 1, None,
                     record(rid, stage, actor, trigger, t0, end, cpu, list(deps), commit), 0, stage, actor, "active",
                     t0, end, cpu))
        events.append((iso(t0), actor, "run.started", f"run:{rid}", json.dumps({"stage": stage, "trigger": trigger})))
        events.append((iso(end), actor, "run.finished", f"run:{rid}", json.dumps({"status": "succeeded"})))
        return rid, end

    incident = 0
    for m in range(models):
        name = f"model-{m:03d}"
        path = f"data/{name}.csv"
        datasets.append((m + 1, path, iso(start)))
        t = start + rng.randint(0, DAY)
        v = 0
        stable = None
        while t < now - DAY:
            v += 1
            auto = v % 10 == 0
            actor = "automation:retrain" if auto else f"user{rng.randint(1, 12)}"
            if auto:
                incident += 1
                alert_at = t - 40 * M
                trig = {"key": f"event:{incident}", "at_ms": t - 30 * M, "what": {"kind": "alert", "event": incident,
                        "at": iso(alert_at), "alert": {"evidence": [{"start_ms": alert_at - 2 * H}]}}}
                events.append((iso(t - 30 * M), actor, "incident.opened", f"incident:{incident}",
                               json.dumps({"automation": "retrain", "model": name, "state": "triggered", "trigger": trig})))
            dhash = hx(rng)
            versions.append((m + 1, dhash, "file", 1000, 1, iso(t - 2 * H), actor))
            events.append((iso(t - 2 * H), actor, "dataset.version_added", f"dataset:{path}", json.dumps({"hash": dhash})))
            dep = {"path": path, "hash": dhash, "type": "file", "size": 1000, "dataset": True}
            rid, end = run("train", actor, "alert" if auto else "manual", t, rng.randint(5, 60), [dep], hx(rng, 40))
            reg = end + 5 * M
            events.append((iso(reg), actor, "model.version_registered", f"model:{name}",
                           json.dumps({"version": v, "run_id": rid, "source": "runs:/x", "object": "0" * 64, "size": 1})))
            if auto:
                events.append((iso(reg), actor, "incident.advanced", f"incident:{incident}",
                               json.dumps({"from": "registering", "to": "evaluating", "at_ms": reg,
                                           "facts": {"challenger": {"version": v}}})))
            promo = reg + 10 * M
            pid = hx(rng, 16)
            if rng.random() < 0.5:
                events.append((iso(promo), actor, "model.promotion_requested", f"model:{name}",
                               json.dumps({"promotion": pid, "version": v, "alias": "champion", "status": "pending"})))
                promo += rng.randint(10, 600) * M
                events.append((iso(promo), "approver", "model.promotion_approved", f"model:{name}",
                               json.dumps({"promotion": pid, "version": v, "alias": "champion", "requested_by": actor})))
            else:
                events.append((iso(promo), actor, "model.promoted", f"model:{name}",
                               json.dumps({"promotion": pid, "version": v, "alias": "champion", "status": "promoted"})))
            events.append((iso(promo), actor, "model.alias_moved", f"model:{name}",
                           json.dumps({"alias": "champion", "before": stable, "after": v, "reason": "promotion"})))
            go = promo + rng.randint(5, 120) * M
            before = None if stable is None else {"stable": stable, "candidate": None}
            if stable is None:
                events.append((iso(go), actor, "deployment.created", f"deployment:{name}",
                               json.dumps({"before": None, "after": {"stable": v, "candidate": None}, "reason": "first"})))
                stable = v
            else:
                events.append((iso(go), actor, "deployment.started", f"deployment:{name}",
                               json.dumps({"before": before, "after": {"stable": stable, "candidate": v, "weight": 10}})))
                done = go + H
                if rng.random() < 0.05:
                    events.append((iso(done), "kairo-serve", "deployment.rolled_back", f"deployment:{name}",
                                   json.dumps({"before": {"stable": stable, "candidate": v},
                                               "after": {"stable": stable, "candidate": None}, "reason": "p99"})))
                else:
                    events.append((iso(done), "kairo-serve", "deployment.completed", f"deployment:{name}",
                                   json.dumps({"before": {"stable": stable, "candidate": v},
                                               "after": {"stable": v, "candidate": None}, "reason": "healthy"})))
                    stable = v
            if auto:
                events.append((iso(go + 2 * H), actor, "incident.advanced", f"incident:{incident}",
                               json.dumps({"from": "verifying", "to": "resolved", "at_ms": go + 2 * H, "facts": {}})))
            t += int(365 * DAY / 200 * rng.uniform(0.5, 1.5))
    # Other runs (prepare, evaluate) up to n_runs, and other events up to n_events.
    while len(runs) < n_runs:
        t0 = start + rng.randint(0, 365 * DAY - DAY)
        run(rng.choice(["prepare", "evaluate", "features"]), f"user{rng.randint(1, 12)}", "manual", t0, rng.randint(1, 30))
    kinds = ["object.pinned", "data.pushed", "monitor.alert", "experiment.created"]
    while len(events) < n_events:
        t0 = start + rng.randint(0, 365 * DAY)
        events.append((iso(t0), "kairo-monitor", rng.choice(kinds), f"object:{rng.randint(0, 10**9)}", '{"n":1}'))
    events.sort(key=lambda e: e[0])
    return events, runs, datasets, versions


def load_sqlite(db, events, runs, datasets, versions):
    c = sqlite3.connect(db)
    c.executemany("INSERT INTO events (at, actor, kind, subject, payload) VALUES (?, ?, ?, ?, ?)", events)
    c.executemany("INSERT INTO runs (id, stage, status, run_trigger, actor, host, pid, started_at, ended_at, cache_key, "
                  "cacheable, reproduces, record, experiment_id, run_name, user_id, lifecycle_stage, start_ms, end_ms, "
                  "cpu_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
    c.executemany("INSERT INTO datasets (id, path, created_at) VALUES (?, ?, ?)", datasets)
    c.executemany("INSERT INTO dataset_versions (dataset_id, hash, kind, size, files, created_at, actor) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)", versions)
    c.commit()
    c.execute("ANALYZE")
    c.close()


def load_postgres(url, events, runs, datasets, versions):
    tmp = tempfile.mkdtemp(prefix="kpi-bench-")
    for name, rows, cols in [
        ("events", events, "at, actor, kind, subject, payload"),
        ("runs", runs, "id, stage, status, run_trigger, actor, host, pid, started_at, ended_at, cache_key, cacheable, "
                       "reproduces, record, experiment_id, run_name, user_id, lifecycle_stage, start_ms, end_ms, cpu_ms"),
        ("datasets", datasets, "id, path, created_at"),
        ("dataset_versions", versions, "dataset_id, hash, kind, size, files, created_at, actor"),
    ]:
        f = os.path.join(tmp, f"{name}.csv")
        with open(f, "w", newline="") as out:
            w = csv.writer(out)
            for r in rows:
                w.writerow(["\\N" if x is None else x for x in r])
        subprocess.run(["psql", url, "-q", "-c", f"\\copy {name} ({cols}) FROM '{f}' WITH (FORMAT csv, NULL '\\N')"],
                       check=True)
    subprocess.run(["psql", url, "-q", "-c", "SELECT setval('datasets_id_seq', 1000); ANALYZE"], check=True,
                   stdout=subprocess.DEVNULL)


FLOOR_SQL = """SELECT id, at, actor, kind, subject, payload FROM events WHERE at >= '{since}' AND kind IN
('deployment.created','deployment.started','deployment.completed','deployment.rolled_back','model.alias_moved',
'model.promotion_requested','model.promoted','model.promotion_approved','incident.opened','incident.advanced');
SELECT id, at, actor, kind, subject, payload FROM events WHERE at >= '' AND kind IN ('model.version_registered','model.version_created');
SELECT stage, run_trigger, actor, COUNT(*), SUM(end_ms - start_ms), SUM(cpu_ms) FROM runs WHERE start_ms >= {since_ms} GROUP BY stage, run_trigger, actor;"""


def timed(cmd, env):
    """Wall time, stdout and peak RSS (KiB) of one process. The RSS comes from GNU time: this
    process's own children counters would include the generator's memory, copied at fork."""
    with tempfile.NamedTemporaryFile() as rss:
        t = time.perf_counter()
        out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + cmd, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t
        if out.returncode != 0:
            raise SystemExit(f"{cmd} failed: {out.stderr.decode()}")
        return dt, out.stdout, int(open(rss.name).read().split()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo", required=True)
    ap.add_argument("--postgres", help="a PostgreSQL server URL (a database is created on it)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.out:
        a.out = os.path.abspath(a.out)
    now = int(time.time() * 1000)
    t = time.perf_counter()
    events, runs, datasets, versions = generate(now, a.models, a.events, a.runs)
    print(f"generated {len(events)} events, {len(runs)} runs in {time.perf_counter() - t:.1f} s", flush=True)
    kinds = {}
    for e in events:
        kinds[e[2]] = kinds.get(e[2], 0) + 1
    results = {"events": len(events), "runs": len(runs), "models": a.models, "kinds": kinds, "backends": {}}
    backends = [("sqlite", None)] + ([("postgres", a.postgres)] if a.postgres else [])
    for backend, base in backends:
        work = tempfile.mkdtemp(prefix=f"kpi-{backend}-")
        subprocess.run(["git", "init", "-q", work], check=True)
        env = dict(os.environ, KAIRO_ACTOR="bench")
        env.pop("KAIRO_DATABASE_URL", None)
        if backend == "postgres":
            name = f"kairo_kpi_bench_{os.getpid()}"
            subprocess.run(["psql", base, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
            url = base.rsplit("/", 1)[0] + f"/{name}"
            env["KAIRO_DATABASE_URL"] = url
        subprocess.run([a.kairo, "init"], cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
        os.chdir(work)
        subprocess.run([a.kairo, "kpi", "--json"], env=env, check=True, stdout=subprocess.DEVNULL)  # migrate
        t = time.perf_counter()
        if backend == "sqlite":
            load_sqlite(os.path.join(work, ".kairo", "kairo.db"), events, runs, datasets, versions)
        else:
            load_postgres(url, events, runs, datasets, versions)
        print(f"{backend}: loaded in {time.perf_counter() - t:.1f} s", flush=True)
        kpi, rss, report = [], 0, None
        for _ in range(a.rounds):
            dt, out, kib = timed([a.kairo, "kpi", "--json", "--since", "90d"], env)
            rss = max(rss, kib)
            kpi.append(dt)
            report = json.loads(out)
        since_ms = now - 90 * DAY
        sql = FLOOR_SQL.format(since=iso(since_ms - 90 * DAY), since_ms=since_ms)
        floor = []
        for _ in range(a.rounds):
            if backend == "sqlite":
                t = time.perf_counter()
                c = sqlite3.connect(os.path.join(work, ".kairo", "kairo.db"))
                for stmt in sql.split(";"):
                    if stmt.strip():
                        c.execute(stmt).fetchall()
                c.close()
                floor.append(time.perf_counter() - t)
            else:
                dt, _, _ = timed(["psql", url, "-q", "-A", "-t", "-c", sql], env)
                floor.append(dt)
        start = [timed([a.kairo, "--version"], env)[0] for _ in range(a.rounds)]
        r = {
            "kpi_s": statistics.median(kpi), "kpi_all_s": kpi, "floor_reads_s": statistics.median(floor),
            "process_start_s": statistics.median(start), "peak_rss_mib": rss / 1024,
            "ratio_to_floor": statistics.median(kpi) / statistics.median(floor),
            "report": {
                "deployments": report["deployment_frequency"]["total"],
                "lead_time_median_s": report["lead_time"]["median_s"],
                "change_failure_rate": report["change_failure"]["rate"],
                "incidents": report["restore"]["incidents"],
                "runs": report["compute"]["runs"],
            },
        }
        results["backends"][backend] = r
        print(f"{backend}: kairo kpi {r['kpi_s']*1000:.0f} ms (rounds {[round(x*1000) for x in kpi]}), "
              f"floor reads {r['floor_reads_s']*1000:.0f} ms, process start {r['process_start_s']*1000:.1f} ms, "
              f"ratio {r['ratio_to_floor']:.2f}, peak RSS {r['peak_rss_mib']:.0f} MiB; report {r['report']}", flush=True)
        if backend == "postgres":
            os.chdir("/")
            subprocess.run(["psql", base, "-q", "-c", f"DROP DATABASE {name}"], check=False)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
