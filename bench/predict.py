"""Batch prediction (issue 23): `kairo predict` against the onnxruntime + pyarrow script a Python
user would write and against `mlflow models predict`, same machine, same run, same models (see
bench/predict.sh).

Input: --rows rows of an int64 `id` and 20 float32 features f0..f19 (standard normal) in one
Parquet file, written one row group of 2^20 rows (pyarrow's default cap) at a time and cached in
--work by row count. Models: LogisticRegression and RandomForestClassifier(100 trees, grown
fully: scikit-learn's defaults), trained here on --train-rows (50,000) rows of the same
distribution with a binary target; the forest's size, and with it its speed and memory in every
tool, follows that count (53 MB of ONNX at 50,000). Kairo and the onnxruntime script run their
skl2onnx exports (zipmap off, float32; outputs `label` and `probabilities` [N, 2]), registered
as `lr` and `rf`, each with the alias `champion`. MLflow runs the scikit-learn originals
(mlflow.sklearn, pyfunc_predict_fn="predict_proba", so that it computes the probabilities too;
the forest keeps n_jobs=-1, all cores, as trained).

Each tool is its own process, timed from start to exit (start-up included): best wall time of
--rounds, largest peak RSS (GNU time, see benchlib.measure).
- kairo predict NAME@champion --input IN.parquet --out OUT.parquet --id-column id --no-log --json
  (and again without --no-log: the rows also go to the model's prediction log, the default)
- bench/predict_ort.py: ParquetFile.iter_batches(65,536) → float32 matrix → sess.run →
  ParquetWriter, onnxruntime's default session options.
- mlflow models predict -m DIR -i IN.csv -o OUT.json -t csv --env-manager local, on the first
  --mlflow-rows rows only, as a CSV of the 20 features (it reads CSV or JSON, and has no way to
  carry an id column through): it is far slower. Its start-up (a 100-row CSV) is measured too,
  to give its rows/s net of start-up; kairo also runs on the very same CSV, so the MLflow ratio
  is also had on identical input.
- floor: `cat` the input Parquet (from the page cache).
Checks: every output has the row count of its input (the bench stops otherwise); kairo's
probabilities against onnxruntime's on a sample of rows joined by id, and MLflow's
(scikit-learn, float64) against onnxruntime's on its subset: max absolute differences.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from benchlib import measure

FEATURES = [f"f{i}" for i in range(20)]
ROW_GROUP = 1 << 20
SEED = 20230523
GENERATOR = "g1"  # part of the cached files' names: change it when the data generator changes
MODELS = {"lr": "LogisticRegression", "rf": "RandomForestClassifier(100 trees)"}
BENCH = Path(__file__).resolve().parent


def feature_columns(chunk, n):
    """The 20 feature columns of rows [chunk·2^20, chunk·2^20 + n), each from its own seeded
    stream: the same values whatever n, so files of any size share their first rows."""
    return [np.random.default_rng([SEED, chunk, j]).standard_normal(n, dtype=np.float32) for j in range(len(FEATURES))]


def training_set(n):
    """Rows of the same distribution with a binary target that is not linear in the features
    (interactions, a square), so that the forest has something to find beyond the logistic."""
    rng = np.random.default_rng([SEED, 1 << 30])
    x = rng.standard_normal((n, len(FEATURES)), dtype=np.float32)
    logit = x[:, :6] @ np.array([1.2, -0.8, 0.6, 0.5, -0.4, 0.3]) + 0.9 * x[:, 6] * x[:, 7] - 0.6 * x[:, 8] ** 2 + 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


def write_input(path, rows):
    """The benchmark's input Parquet, unless already cached: one row group in memory at a time."""
    if path.exists():
        return
    print(f"writing {rows:,} rows to {path}", file=sys.stderr, flush=True)
    tmp = path.with_suffix(".partial")
    schema = pa.schema([("id", pa.int64())] + [(f, pa.float32()) for f in FEATURES])
    with pq.ParquetWriter(tmp, schema) as w:
        for chunk, start in enumerate(range(0, rows, ROW_GROUP)):
            n = min(ROW_GROUP, rows - start)
            ids = pa.array(np.arange(start, start + n, dtype=np.int64))
            w.write_table(pa.Table.from_arrays([ids] + [pa.array(c) for c in feature_columns(chunk, n)],
                                               schema=schema), row_group_size=ROW_GROUP)
    tmp.rename(path)  # a run stopped half-way leaves no file that looks complete


def write_csv(parquet, path, rows):
    """The first `rows` rows of `parquet`, features only, as CSV (for `mlflow models predict`)."""
    if path.exists():
        return
    tmp = path.with_suffix(".partial")
    left = rows
    with pacsv.CSVWriter(tmp, pa.schema([(f, pa.float32()) for f in FEATURES])) as w:
        for batch in pq.ParquetFile(parquet).iter_batches(batch_size=65536, columns=FEATURES):
            batch = batch.slice(0, left)
            w.write_batch(batch)
            left -= batch.num_rows
            if left == 0:
                break
    tmp.rename(path)


def prepare_models(work, kairo, train_rows, ray_address=None):
    """Train both models, export them to ONNX, save them for MLflow, and (with kairo) register
    them in a fresh project. Returns ({name: ONNX path}, the project's directory)."""
    import mlflow.sklearn
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = training_set(train_rows)
    fitted = {
        "lr": LogisticRegression(max_iter=1000).fit(x, y),
        "rf": RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1).fit(x, y),
    }
    project = work / "project"
    if kairo:
        project.mkdir()
        setup(["git", "init", "-q"], project)
        setup([kairo, "init"], project)
        if ray_address:
            # `--executor ray`: the local head, and a directory remote its tasks share.
            with open(project / "kairo.yaml", "a") as f:
                f.write(f"remotes:\n  store:\n    url: {work / 'remote'}\ndefault_remote: store\n"
                        f"ray:\n  address: {ray_address}\n")
    paths = {}
    for name, m in fitted.items():
        onx = to_onnx(m, x[:1], options={id(m): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
        paths[name] = work / f"{name}.onnx"
        paths[name].write_bytes(onx.SerializeToString())
        trusted = ["sklearn.tree._tree.Tree"] if name == "rf" else None
        mlflow.sklearn.save_model(m, str(work / f"mlflow-{name}"), skops_trusted_types=trusted,
                                  pyfunc_predict_fn="predict_proba")
        if kairo:
            for cmd in (["models", "register", name, "--file", str(paths[name])],
                        ["models", "alias", name, "champion", "1"]):
                setup([kairo] + cmd, project)
    return paths, project


def setup(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"$ {' '.join(map(str, cmd))} exited with {p.returncode}:\n{p.stdout}{p.stderr}")


def run(label, cmd, rounds, cwd=None, env=None):
    """Best wall time and largest peak RSS of `rounds` runs, with the last run's stdout."""
    best, peak, out, times = None, 0.0, "", []
    for _ in range(rounds):
        wall, rss, code, stdout, stderr = measure(cmd, cwd=cwd, env=env)
        if code != 0:
            raise SystemExit(f"{label} exited with {code}:\n$ {' '.join(map(str, cmd))}\n{stderr[-4000:]}")
        times.append(wall)
        best = wall if best is None else min(best, wall)
        peak, out = max(peak, rss), stdout
    print(f"  {label}: {best:.2f} s, {peak:.0f} MiB", file=sys.stderr, flush=True)
    return {"seconds": best, "all_seconds": times, "peak_rss_mib": peak}, out


def expect_rows(label, got, want):
    if got != want:
        raise SystemExit(f"{label}: {got} rows out, {want} expected")


def sample(path, stride):
    """The rows whose id is divisible by `stride`: (their ids, sorted; their float columns as a
    float64 matrix; those columns' names). ASSUMPTION, since `kairo predict`'s output column names are
    not fixed by this bench: the float columns besides `id` are the model's probabilities, one
    per class in class order, so two outputs' float columns in file order match one to one (for
    the onnxruntime script: probabilities_0, probabilities_1; `label` is int64 and left out)."""
    f = pq.ParquetFile(path)
    floats = [c.name for c in f.schema_arrow if pa.types.is_floating(c.type) and c.name != "id"]
    ids, values = [], []
    for b in f.iter_batches(batch_size=65536, columns=["id"] + floats):
        i = b.column(0).to_numpy()
        keep = i % stride == 0
        ids.append(i[keep])
        values.append(np.column_stack([b.column(k).to_numpy(zero_copy_only=False).astype(np.float64)[keep]
                                       for k in range(1, b.num_columns)]))
    ids, values = np.concatenate(ids), np.concatenate(values)
    order = np.argsort(ids, kind="stable")
    return ids[order], values[order], floats


def compare(kairo_out, ort_out, rows):
    """Max |kairo − onnxruntime| over the probabilities of about 100,000 rows (by id), or None
    with the reason when the two outputs cannot be lined up."""
    stride = max(1, rows // 100_000)
    if "id" not in pq.ParquetFile(kairo_out).schema_arrow.names:
        return None, "kairo's output has no `id` column"
    ki, kv, kcols = sample(kairo_out, stride)
    oi, ov, ocols = sample(ort_out, stride)
    if kv.shape[1] != ov.shape[1]:
        return None, f"kairo's float columns {kcols} do not pair with onnxruntime's {ocols}"
    if not np.array_equal(ki, oi):
        return None, "kairo's output does not have the sampled ids of the input"
    return float(np.max(np.abs(kv - ov))) if len(ki) else 0.0, f"{len(ki):,} rows, columns {kcols} vs {ocols}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo", help="the kairo binary (omit with --skip-kairo)")
    ap.add_argument("--skip-kairo", action="store_true", help="run the peers only")
    ap.add_argument("--mlflow", required=True)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--mlflow-rows", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=65536)
    ap.add_argument("--train-rows", type=int, default=50_000, help="the models' training rows (the forest's size)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--ray-address", help="also score with --executor ray on this Ray head (token: KAIRO_RAY_TOKEN)")
    a = ap.parse_args()
    if not a.skip_kairo and not a.kairo:
        ap.error("--kairo is required without --skip-kairo")
    kairo = None if a.skip_kairo else a.kairo
    mlflow_rows = min(a.mlflow_rows, a.rows)

    a.work.mkdir(parents=True, exist_ok=True)
    data = a.work / f"input-{a.rows}-{GENERATOR}.parquet"
    csv = a.work / f"input-{mlflow_rows}-{GENERATOR}.csv"
    tiny = a.work / f"input-100-{GENERATOR}.csv"
    write_input(data, a.rows)
    write_csv(data, csv, mlflow_rows)
    write_csv(data, tiny, min(100, a.rows))
    # Models, project and outputs are made afresh each run; the inputs above are kept.
    run_dir = a.work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    print("training and exporting the models", file=sys.stderr, flush=True)
    onnx, project = prepare_models(run_dir, kairo, a.train_rows, a.ray_address)

    # The venv's bin on PATH, as `mlflow models serve` needs in bench/serving.py (harmless here).
    mlflow_env = dict(os.environ, PATH=f"{Path(a.mlflow).parent}:{os.environ.get('PATH', '')}")
    results = {
        "rows": a.rows, "mlflow_rows": mlflow_rows, "rounds": a.rounds, "batch_size": a.batch_size,
        "train_rows": a.train_rows, "model_bytes": {n: p.stat().st_size for n, p in onnx.items()},
        "row_group_rows": ROW_GROUP, "input_bytes": data.stat().st_size, "cpus": os.cpu_count(),
        "kairo": kairo, "runs": [], "checks": {},
    }
    floor, _ = run("floor: cat the input", ["sh", "-c", 'cat "$1" > /dev/null', "sh", data], a.rounds)
    results["floor_read_s"] = floor["seconds"]

    def record(model, tool, rows, r, **extra):
        r.update(model=model, tool=tool, rows=rows, rows_per_s=rows / r["seconds"], **extra)
        results["runs"].append(r)
        return r

    for name in MODELS:
        print(f"{name}: {MODELS[name]}", file=sys.stderr, flush=True)
        ort_out = run_dir / f"{name}-ort.parquet"
        r, out = run(f"{name} onnxruntime", [sys.executable, BENCH / "predict_ort.py", onnx[name], data, ort_out,
                                             "--id-column", "id", "--batch-size", a.batch_size], a.rounds)
        expect_rows("onnxruntime script (its count)", json.loads(out)["rows"], a.rows)
        expect_rows("onnxruntime script (its file)", pq.ParquetFile(ort_out).metadata.num_rows, a.rows)
        record(name, "onnxruntime + pyarrow", a.rows, r, loop_seconds=json.loads(out)["seconds"])

        if kairo:
            kairo_out = run_dir / f"{name}-kairo.parquet"
            # Like for like: neither peer feeds a prediction log, so this run does not either
            # (--no-log); the logged run (kairo's default) is measured next.
            r, out = run(f"{name} kairo", [kairo, "predict", f"{name}@champion", "--input", data, "--out", kairo_out,
                                           "--id-column", "id", "--no-log", "--json"], a.rounds, cwd=project)
            expect_rows("kairo predict (its --json)", json.loads(out)["rows"], a.rows)
            expect_rows("kairo predict (its file)", pq.ParquetFile(kairo_out).metadata.num_rows, a.rows)
            record(name, "kairo predict", a.rows, r, summary=json.loads(out))
            diff, how = compare(kairo_out, ort_out, a.rows)
            results["checks"][f"{name}_kairo_vs_ort_max_abs_diff"] = diff
            results["checks"][f"{name}_kairo_vs_ort_compared"] = how
            if diff is None:
                print(f"WARNING: {name}: kairo's probabilities not compared: {how}", file=sys.stderr)
            r, out = run(f"{name} kairo (logged)", [kairo, "predict", f"{name}@champion", "--input", data, "--out",
                                                    kairo_out, "--id-column", "id", "--json"], a.rounds, cwd=project)
            expect_rows("kairo predict, logged (its log)", json.loads(out)["logged"], a.rows)
            record(name, "kairo predict (logged for monitoring)", a.rows, r, summary=json.loads(out))
            if a.ray_address:
                # The first run sends the input and kairo itself to the remote; the second
                # finds them there. Peak RSS is this client's (the tasks run in Ray's workers).
                ray_out = run_dir / f"{name}-kairo-ray.parquet"
                for when in ("first run", "again"):
                    r, out = run(f"{name} kairo on Ray ({when})",
                                 [kairo, "predict", f"{name}@champion", "--input", data, "--out", ray_out,
                                  "--id-column", "id", "--no-log", "--executor", "ray", "--json"], 1, cwd=project)
                    expect_rows(f"kairo predict --executor ray ({when})", json.loads(out)["rows"], a.rows)
                    record(name, f"kairo predict --executor ray, local head ({when})", a.rows, r,
                           summary=json.loads(out))
                same = pq.read_table(ray_out).equals(pq.read_table(kairo_out))
                results["checks"][f"{name}_kairo_ray_output_equals_local"] = same
                if not same:
                    raise SystemExit(f"{name}: the scores made on Ray differ from the local run's")

            # The same CSV as MLflow's, for the ratio on identical input (no id column in it).
            csv_out = run_dir / f"{name}-kairo-csv.parquet"
            r, out = run(f"{name} kairo (MLflow's CSV)", [kairo, "predict", f"{name}@champion", "--input", csv,
                                                          "--out", csv_out, "--json"], a.rounds, cwd=project)
            expect_rows("kairo predict on the CSV (its --json)", json.loads(out)["rows"], mlflow_rows)
            expect_rows("kairo predict on the CSV (its file)", pq.ParquetFile(csv_out).metadata.num_rows,
                        mlflow_rows)
            record(name, "kairo predict (MLflow's CSV)", mlflow_rows, r, input="csv")

        mlflow_cmd = [a.mlflow, "models", "predict", "-m", run_dir / f"mlflow-{name}", "-t", "csv",
                      "--env-manager", "local"]
        start, _ = run(f"{name} mlflow start-up (100 rows)", mlflow_cmd + ["-i", tiny, "-o", run_dir / "tiny.json"],
                       a.rounds, cwd=run_dir, env=mlflow_env)
        mlflow_out = run_dir / f"{name}-mlflow.json"
        r, _ = run(f"{name} mlflow", mlflow_cmd + ["-i", csv, "-o", mlflow_out], a.rounds, cwd=run_dir, env=mlflow_env)
        predictions = np.asarray(json.loads(mlflow_out.read_text())["predictions"], dtype=np.float64)
        expect_rows("mlflow models predict", len(predictions), mlflow_rows)
        net = r["seconds"] - start["seconds"]
        record(name, "mlflow models predict (CSV)", mlflow_rows, r, input="csv", startup_seconds=start["seconds"],
               rows_per_s_net_of_startup=mlflow_rows / net if net > 0 else None)
        # onnxruntime's first rows are MLflow's rows: the script writes them in input order.
        ort_head = pq.read_table(ort_out, columns=["probabilities_0", "probabilities_1"]).slice(0, mlflow_rows)
        ort_head = np.column_stack([c.to_numpy() for c in ort_head.columns]).astype(np.float64)
        results["checks"][f"{name}_mlflow_vs_ort_max_abs_diff"] = float(np.max(np.abs(predictions - ort_head)))

    report(results)
    a.out.write_text(json.dumps(results, indent=2))


def report(results):
    """The markdown tables, and the ratios against the issue's goals into `results`."""
    runs = results["runs"]
    print(f"\nBatch prediction, {results['rows']:,} rows × 20 float32 features in Parquet "
          f"({results['input_bytes'] / 2**20:.0f} MiB), {results['cpus']} CPUs, best of {results['rounds']}; "
          f"MLflow on the first {results['mlflow_rows']:,} rows as CSV. Floor: cat the input "
          f"{results['floor_read_s']:.2f} s.\n")
    print("| model | tool | rows | seconds | rows/s | peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for r in runs:
        print(f"| {r['model']} | {r['tool']} | {r['rows']:,} | {r['seconds']:.2f} | {r['rows_per_s']:,.0f} | "
              f"{r['peak_rss_mib']:.0f} |")
    find = lambda model, tool: next((r for r in runs if r["model"] == model and r["tool"] == tool), None)
    checks, ratios = results["checks"], {}
    for model in MODELS:
        ort, mlf = find(model, "onnxruntime + pyarrow"), find(model, "mlflow models predict (CSV)")
        k, kcsv = find(model, "kairo predict"), find(model, "kairo predict (MLflow's CSV)")
        q = ratios[model] = {"ort_vs_mlflow_rows_per_s": ort["rows_per_s"] / mlf["rows_per_s"]}
        if k:
            net = mlf["rows_per_s_net_of_startup"]
            q.update({
                "kairo_vs_ort_rows_per_s": k["rows_per_s"] / ort["rows_per_s"],
                "ort_rss_over_kairo_rss": ort["peak_rss_mib"] / k["peak_rss_mib"],
                "kairo_peak_rss_mb": k["peak_rss_mib"] * 2**20 / 1e6,
                "kairo_vs_mlflow_rows_per_s": k["rows_per_s"] / mlf["rows_per_s"],
                "kairo_vs_mlflow_same_csv_rows_per_s": kcsv["rows_per_s"] / mlf["rows_per_s"],
                "kairo_vs_mlflow_net_of_startup_rows_per_s": k["rows_per_s"] / net if net else None,
                "kairo_logged_vs_ort_rows_per_s":
                    find(model, "kairo predict (logged for monitoring)")["rows_per_s"] / ort["rows_per_s"],
            })
            q["goals_met"] = {
                "throughput_at_least_ort": q["kairo_vs_ort_rows_per_s"] >= 1,
                "rss_at_most_quarter_of_ort": q["ort_rss_over_kairo_rss"] >= 4,
                "rss_under_300_mb": q["kairo_peak_rss_mb"] < 300,
                "at_least_10x_mlflow": q["kairo_vs_mlflow_rows_per_s"] >= 10,
            }
    results["ratios"] = ratios

    if results["kairo"]:
        print("\n| model | kairo / onnxruntime rows/s (goal ≥ 1) | onnxruntime / kairo peak RSS (goal ≥ 4) "
              "| kairo peak RSS (goal < 300 MB) | kairo / mlflow rows/s (goal ≥ 10) | same, on MLflow's CSV "
              "| max abs diff of the probabilities, kairo vs onnxruntime |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for model, q in ratios.items():
            diff = checks[f"{model}_kairo_vs_ort_max_abs_diff"]
            print(f"| {model} | {q['kairo_vs_ort_rows_per_s']:.2f}× | {q['ort_rss_over_kairo_rss']:.1f}× "
                  f"| {q['kairo_peak_rss_mb']:.0f} MB | {q['kairo_vs_mlflow_rows_per_s']:.0f}× "
                  f"| {q['kairo_vs_mlflow_same_csv_rows_per_s']:.0f}× | {'not compared' if diff is None else f'{diff:.1e}'} |")
    print()
    for model, q in ratios.items():
        mlf = find(model, "mlflow models predict (CSV)")
        net = mlf["rows_per_s_net_of_startup"]
        line = (f"{model}: mlflow's start-up (100 rows) {mlf['startup_seconds']:.1f} s, its rows/s net of it "
                f"{'n/a' if net is None else f'{net:,.0f}'}")
        if q.get("kairo_vs_mlflow_net_of_startup_rows_per_s"):
            line += f" (kairo / that: {q['kairo_vs_mlflow_net_of_startup_rows_per_s']:.1f}×)"
        print(line + f"; onnxruntime script / mlflow rows/s {q['ort_vs_mlflow_rows_per_s']:.0f}×; max abs diff of "
              f"the probabilities, mlflow (scikit-learn) vs onnxruntime {checks[f'{model}_mlflow_vs_ort_max_abs_diff']:.1e}")
    if not results["kairo"]:
        print("(kairo skipped: peers only)")


if __name__ == "__main__":
    main()
