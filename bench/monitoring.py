"""Time `kairo monitor check --preset evidently` against Evidently's DataDriftPreset on the same CSVs.

For each size N: a reference and a current CSV of N rows each (20 numeric columns, normal with
different means and scales; 5 categorical columns with 3-8 string levels), the current one with a
mean shift of 0.5 standard deviations on 5 numeric columns. Each tool runs as a user would run it,
as a whole process under /usr/bin/time -v: wall time (median over the rounds), peak RSS (max over
the rounds) and CPU time. Then the per-column verdicts of the two tools are compared.

Runs with the Evidently venv's python (it needs numpy and pandas). Usage:
  python monitoring.py --kairo PATH --work DIR --out results.json [--sizes 10000,100000,1000000]
  python monitoring.py --work DIR --sizes 10000 --generate-only
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20240611
NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
SHIFTED = NUMERIC[:5]
SHIFT_SD = 0.5
# Generator version: bump when the data changes so cached CSVs are rewritten.
GENERATOR = f"v1 seed={SEED} shift={SHIFT_SD} shifted={','.join(SHIFTED)}"

# Evidently's stattest names -> Kairo's method names.
METHODS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare_gof",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein_norm",
    "Jensen-Shannon distance": "jensenshannon",
}


def column_specs():
    """Fixed per-column parameters (independent of the size, so every size shares the schema)."""
    rng = np.random.default_rng(SEED)
    means = rng.uniform(-100, 100, len(NUMERIC)).round(2)
    scales = 10 ** rng.uniform(-2, 3, len(NUMERIC))
    cats = []
    for i, name in enumerate(CATEGORICAL):
        levels = int(rng.integers(3, 9))  # 3..8
        probs = rng.dirichlet(np.full(levels, 2.0))
        cats.append((name, [f"{name}_{chr(ord('a') + j)}{j}" for j in range(levels)], probs))
    return means, scales, cats


def write_csv(path, n, rng, means, scales, cats, shift):
    """Write n rows in chunks (the 1M-row files stay within a few hundred MiB of memory)."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(",".join(NUMERIC + CATEGORICAL) + "\n")
        chunk = 100_000
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            num = rng.normal(means, scales, size=(m, len(NUMERIC)))
            if shift:
                for j, name in enumerate(NUMERIC):
                    if name in SHIFTED:
                        num[:, j] += SHIFT_SD * scales[j]
            cols = [np.char.mod("%.7g", num[:, j]) for j in range(len(NUMERIC))]
            for name, levels, probs in cats:
                cols.append(np.asarray(levels)[rng.choice(len(levels), size=m, p=probs)])
            rows = np.stack(cols, axis=1)
            f.write("\n".join(",".join(r) for r in rows.tolist()))
            f.write("\n")
    tmp.rename(path)


def as_parquet(csv):
    """The CSV as a Parquet file beside it (snappy, pyarrow's default), written once."""
    import pandas as pd
    out = csv.with_suffix(".parquet")
    if not out.exists() or out.stat().st_mtime < csv.stat().st_mtime:
        pd.read_csv(csv, dtype={c: str for c in CATEGORICAL}).to_parquet(out, index=False)
    return out


def generate(work, n, fmt="csv"):
    """Reference and current files of n rows each, written once (reused while GENERATOR matches)."""
    ref, cur = generate_csv(work, n)
    if fmt == "parquet":
        return as_parquet(ref), as_parquet(cur)
    return ref, cur


def generate_csv(work, n):
    """Reference and current CSVs of n rows each, written once (reused while GENERATOR matches)."""
    d = work / f"rows-{n}"
    ref, cur, stamp = d / "reference.csv", d / "current.csv", d / ".generator"
    if ref.exists() and cur.exists() and stamp.exists() and stamp.read_text() == GENERATOR:
        return ref, cur
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    means, scales, cats = column_specs()
    t = time.perf_counter()
    write_csv(ref, n, np.random.default_rng([SEED, n, 0]), means, scales, cats, shift=False)
    write_csv(cur, n, np.random.default_rng([SEED, n, 1]), means, scales, cats, shift=True)
    stamp.write_text(GENERATOR)
    print(f"wrote {n}-row CSVs in {time.perf_counter() - t:.1f}s ({ref.stat().st_size / 2**20:.0f} MiB each)",
          file=sys.stderr)
    return ref, cur


TIME = "/usr/bin/time"


def measure(args, stdout_path, ok_codes=(0,)):
    """Run args as one process; wall seconds, peak RSS (MiB) and CPU seconds of the whole process."""
    timing = stdout_path.with_suffix(".time")
    with open(stdout_path, "wb") as out:
        if os.access(TIME, os.X_OK):
            start = time.perf_counter()
            r = subprocess.run([TIME, "-v", "-o", str(timing), *args], stdout=out, stderr=subprocess.PIPE)
            wall = time.perf_counter() - start
            fields = {}
            for line in timing.read_text().splitlines():
                key, _, value = line.strip().rpartition(": ")
                fields[key] = value
            rss_kib = int(fields["Maximum resident set size (kbytes)"])
            cpu = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
        else:
            # A fresh interpreter per run, so RUSAGE_CHILDREN covers this one command only.
            probe = ("import json,resource,subprocess,sys,time;t=time.perf_counter();"
                     "c=subprocess.run(sys.argv[1:]).returncode;w=time.perf_counter()-t;"
                     "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
                     "sys.stderr.write('\\nPROBE '+json.dumps([c,w,u.ru_maxrss,u.ru_utime+u.ru_stime]));"
                     "sys.exit(c)")
            r = subprocess.run([sys.executable, "-c", probe, *args], stdout=out, stderr=subprocess.PIPE)
            _, wall, rss_kib, cpu = json.loads(r.stderr.decode().rsplit("PROBE ", 1)[1])
    if r.returncode not in ok_codes:
        raise SystemExit(f"{' '.join(map(str, args))} exited {r.returncode}: {r.stderr.decode()[-3000:]}")
    return {"wall_s": wall, "peak_rss_mib": rss_kib / 1024, "cpu_s": cpu, "exit": r.returncode}


def run_kairo(kairo, ref, cur, out):
    # Exit 3 = dataset drift found: a verdict, not an error.
    return measure([kairo, "monitor", "check", "--reference", str(ref), "--current", str(cur),
                    "--preset", "evidently", "--json"], out, ok_codes=(0, 3))


def run_evidently(python, ref, cur, out):
    log = out.with_suffix(".stdout")
    m = measure([python, str(HERE / "evidently_run.py"), str(ref), str(cur), str(out),
                 "--categorical", ",".join(CATEGORICAL)], log)
    m["inside_s"] = json.loads(out.read_text())["seconds"]
    return m


def agreement(kairo_json, evidently_json):
    k = {c["name"]: c for c in kairo_json["columns"]}
    e = {c["name"]: c for c in evidently_json["columns"]}
    names = sorted(set(k) | set(e))
    agree, disagreements, score_diffs, method_mismatches = 0, [], [], []
    for name in names:
        kc, ec = k.get(name), e.get(name)
        if kc is None or ec is None:
            disagreements.append({"column": name, "missing_in": "kairo" if kc is None else "evidently"})
            continue
        ev_method = METHODS.get(ec["method"], ec["method"])
        if kc["method"] != ev_method:
            method_mismatches.append({"column": name, "kairo": kc["method"], "evidently": ec["method"]})
        if kc["score"] is not None and ec["score"] is not None:
            score_diffs.append(abs(kc["score"] - ec["score"]))
        if bool(kc["drift"]) == bool(ec["drift"]):
            agree += 1
        else:
            disagreements.append({
                "column": name,
                "kairo": {"drift": kc["drift"], "method": kc["method"], "score": kc["score"],
                          "threshold": kc.get("threshold")},
                "evidently": {"drift": ec["drift"], "method": ec["method"], "score": ec["score"],
                              "threshold": ec["threshold"]},
            })
    return {
        "columns": len(names),
        "agree": agree,
        "agreement_pct": 100.0 * agree / len(names) if names else 0.0,
        "disagreements": disagreements,
        "method_mismatches": method_mismatches,
        "max_abs_score_diff": max(score_diffs) if score_diffs else None,
        "dataset_drift": {"kairo": kairo_json.get("dataset_drift"), "evidently": evidently_json["dataset_drift"]},
        "drifted": {"kairo": sorted(n for n, c in k.items() if c["drift"]),
                    "evidently": sorted(n for n, c in e.items() if c["drift"])},
    }


def summarize(runs):
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "runs": runs,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo")
    ap.add_argument("--python", default=sys.executable, help="the Evidently venv's python")
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per size (median wall time)")
    ap.add_argument("--max-rounds-rows", type=int, default=100_000,
                    help="sizes above this run one round only")
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--format", choices=["csv", "parquet"], default="csv",
                    help="the files both tools read (Parquet: written from the same CSVs)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    args.work.mkdir(parents=True, exist_ok=True)

    if args.generate_only:
        for n in sizes:
            print(*generate(args.work, n, args.format))
        return
    if not args.kairo or not args.out:
        ap.error("--kairo and --out are needed unless --generate-only")

    ev_version = subprocess.run([args.python, "-c", "import evidently,pandas;print(evidently.__version__,pandas.__version__)"],
                                capture_output=True, text=True, check=True).stdout.split()
    kairo_version = subprocess.run([args.kairo, "--version"], capture_output=True, text=True).stdout.strip()
    results = []
    for n in sizes:
        ref, cur = generate(args.work, n, args.format)
        d = ref.parent
        rounds = args.rounds if n <= args.max_rounds_rows else 1
        k_runs, e_runs = [], []
        for r in range(rounds):
            k_runs.append(run_kairo(args.kairo, ref, cur, d / f"kairo-{r}.json"))
            e_runs.append(run_evidently(args.python, ref, cur, d / f"evidently-{r}.json"))
            print(f"{n} rows, round {r + 1}/{rounds}: kairo {k_runs[-1]['wall_s']:.2f}s "
                  f"{k_runs[-1]['peak_rss_mib']:.0f} MiB, evidently {e_runs[-1]['wall_s']:.2f}s "
                  f"{e_runs[-1]['peak_rss_mib']:.0f} MiB", file=sys.stderr)
        kairo_json = json.loads((d / "kairo-0.json").read_text())
        evidently_json = json.loads((d / "evidently-0.json").read_text())
        k, e = summarize(k_runs), summarize(e_runs)
        results.append({
            "rows": n,
            "format": args.format,
            "file_mib": ref.stat().st_size / 2**20,
            "rounds": rounds,
            "kairo": k,
            "evidently": e,
            "speedup": e["wall_s"] / k["wall_s"],
            "memory_ratio": e["peak_rss_mib"] / k["peak_rss_mib"],
            "agreement": agreement(kairo_json, evidently_json),
            "kairo_columns": kairo_json["columns"],
            "evidently_columns": evidently_json["columns"],
        })

    lines = [
        "| size | Kairo wall s | Evidently wall s | speed-up | Kairo peak RSS MiB | Evidently peak RSS MiB "
        "| memory ratio | agreement % |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['kairo']['wall_s']:.3f} | {r['evidently']['wall_s']:.2f} | {r['speedup']:.1f}x "
            f"| {r['kairo']['peak_rss_mib']:.0f} | {r['evidently']['peak_rss_mib']:.0f} "
            f"| {r['memory_ratio']:.1f}x | {r['agreement']['agreement_pct']:.0f} |")
    table = "\n".join(lines)
    print(table)
    for r in results:
        for dis in r["agreement"]["disagreements"]:
            print(f"disagreement at {r['rows']:,} rows: {json.dumps(dis)}")
        for mm in r["agreement"]["method_mismatches"]:
            print(f"method mismatch at {r['rows']:,} rows: {json.dumps(mm)}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "kairo monitor check --preset evidently vs Evidently DataDriftPreset",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "kairo_version": kairo_version,
        "evidently_version": ev_version[0],
        "pandas_version": ev_version[1],
        "data": {"numeric": len(NUMERIC), "categorical": len(CATEGORICAL), "shifted": SHIFTED,
                 "shift_sd": SHIFT_SD, "generator": GENERATOR},
        "measure": "whole process under /usr/bin/time -v: wall = median over rounds, peak RSS = max",
        "results": results,
        "table": table,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
