"""CBPE: `kairo monitor estimate` vs NannyML on the same Parquet files (see bench/cbpe.sh).

Each tool runs as a user would run it, from the files to the per-chunk estimates, best of
ROUNDS wall-clock seconds and its peak RSS; NannyML's fit + estimate alone is reported too.
The two tools' estimates are compared chunk by chunk."""
import argparse
import json
import os
import subprocess
import sys
import time

NANNYML = r'''
import json, os, sys, time
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
t0 = time.perf_counter()
import pandas as pd
import nannyml as nml
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
t1 = time.perf_counter()
est = nml.CBPE(problem_type="classification_binary", y_pred_proba="score", y_pred="prediction",
               y_true="label", metrics=["accuracy", "roc_auc"], chunk_size=int(sys.argv[3]))
est.fit(ref)
r = est.estimate(cur.drop(columns=["label"])).filter(period="analysis").to_df()
t2 = time.perf_counter()
acc = [float(x) for x in r[("accuracy", "value")]]
auc = [float(x) for x in r[("roc_auc", "value")]]
print(json.dumps({"compute_s": t2 - t1, "import_and_read_s": t1 - t0, "accuracy": acc, "auc": auc,
                  "calibrated": bool(est.needs_calibration)}))
'''


def run(cmd):
    """Wall seconds and peak RSS (MiB, GNU time's %M) of one command (`cat`'s output is discarded)."""
    out = subprocess.DEVNULL if cmd[0] == "cat" else subprocess.PIPE
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "KAIRO_RSS_KB=%M"] + cmd, stdout=out, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if p.returncode not in (0, 3):
        sys.exit(f"{cmd[0]} failed ({p.returncode}): {p.stderr}")
    rss = int(p.stderr.rsplit("KAIRO_RSS_KB=", 1)[1].split()[0])
    return wall, rss / 1024, p.stdout or ""


def main():
    a = argparse.ArgumentParser()
    for k in ("kairo", "python", "work", "out"):
        a.add_argument("--" + k, required=True)
    a.add_argument("--rows", type=int, default=1_000_000)
    a.add_argument("--rounds", type=int, default=3)
    args = a.parse_args()
    import numpy as np
    import pandas as pd
    os.makedirs(args.work, exist_ok=True)
    rng = np.random.default_rng(20261206)

    def data(n, shift):
        s = rng.normal(shift, 1.0, n)
        p = 1 / (1 + np.exp(-(2.5 * s + 0.4)))  # over-confident scores
        y = (rng.random(n) < 1 / (1 + np.exp(-(1.2 * s - 0.3)))).astype(np.int64)
        return pd.DataFrame({"score": p, "prediction": (p >= 0.5).astype(np.int64), "label": y})

    ref_path, cur_path = os.path.join(args.work, "reference.parquet"), os.path.join(args.work, "current.parquet")
    data(5000, 0.0).to_parquet(ref_path, index=False)
    cur = data(args.rows, 0.0)
    cur.loc[args.rows // 2:, "score"] = cur["score"][args.rows // 2:] ** 0.7  # a shift in the second half
    cur["prediction"] = (cur["score"] >= 0.5).astype(np.int64)
    cur.to_parquet(cur_path, index=False)
    chunk = max(args.rows // 10, 1)

    kairo_cmd = [args.kairo, "monitor", "estimate", "--reference", ref_path, "--current", cur_path,
                 "--prediction", "prediction", "--chunk-size", str(chunk), "--json"]
    script = os.path.join(args.work, "nannyml_cbpe.py")
    with open(script, "w") as f:
        f.write(NANNYML)
    nml_cmd = [args.python, script, ref_path, cur_path, str(chunk)]
    floor_cmd = ["cat", ref_path, cur_path]

    results = {}
    for name, cmd in (("floor (cat the files)", floor_cmd), ("kairo monitor estimate", kairo_cmd), ("nannyml CBPE", nml_cmd)):
        best, rss, out = None, 0.0, ""
        for _ in range(args.rounds):
            wall, peak, out_ = run(cmd)
            if best is None or wall < best:
                best, out = wall, out_
            rss = max(rss, peak)
        results[name] = {"seconds": best, "peak_rss_mib": rss, "output": out if name != "floor (cat the files)" else ""}
    k = json.loads(results["kairo monitor estimate"]["output"])
    n = json.loads(results["nannyml CBPE"]["output"])
    acc_diff = max(abs(c["estimate"]["accuracy"] - x) for c, x in zip(k["chunks"], n["accuracy"]))
    auc_diff = max(abs(c["estimate"]["auc"] - x) for c, x in zip(k["chunks"], n["auc"]))
    ks, ns = results["kairo monitor estimate"]["seconds"], results["nannyml CBPE"]["seconds"]
    summary = {
        "rows": args.rows, "reference_rows": 5000, "chunk_size": chunk, "rounds": args.rounds,
        "kairo_s": ks, "kairo_rss_mib": results["kairo monitor estimate"]["peak_rss_mib"],
        "nannyml_s": ns, "nannyml_rss_mib": results["nannyml CBPE"]["peak_rss_mib"],
        "nannyml_compute_only_s": n["compute_s"], "floor_cat_s": results["floor (cat the files)"]["seconds"],
        "speedup_vs_nannyml": ns / ks, "speedup_vs_nannyml_compute_only": n["compute_s"] / ks,
        "calibrated": {"kairo": k["calibrated"], "nannyml": n["calibrated"]},
        "max_abs_difference": {"accuracy": acc_diff, "auc": auc_diff},
    }
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"| CBPE, {args.rows:,} rows in {args.rows // chunk} chunks | seconds | peak RSS MiB |")
    print("|---|---|---|")
    print(f"| floor: cat the two files | {summary['floor_cat_s']:.3f} | {results['floor (cat the files)']['peak_rss_mib']:.0f} |")
    print(f"| kairo monitor estimate | {ks:.3f} | {summary['kairo_rss_mib']:.0f} |")
    print(f"| nannyml (python, import, read, fit, estimate) | {ns:.3f} | {summary['nannyml_rss_mib']:.0f} |")
    print(f"| nannyml fit + estimate only | {n['compute_s']:.3f} | – |")
    print(f"\nkairo is {summary['speedup_vs_nannyml']:.1f}x nannyml end to end, "
          f"{summary['speedup_vs_nannyml_compute_only']:.1f}x its fit + estimate alone; "
          f"estimates differ by at most {acc_diff:.1e} (accuracy), {auc_diff:.1e} (auc); "
          f"calibrated: kairo {k['calibrated']}, nannyml {n['calibrated']}")


if __name__ == "__main__":
    main()
