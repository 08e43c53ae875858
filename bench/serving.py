"""`kairo serve` against `mlflow models serve`, same machine, same run, same models.

Models: LogisticRegression on 20 features and RandomForestClassifier(100 trees), trained here
with fixed seeds. MLflow serves the scikit-learn originals (`mlflow.sklearn.save_model`,
`--env-manager local`, its default single worker); Kairo serves their skl2onnx exports
(zipmap off, float32), registered with `kairo models register`. Both get the identical
MLflow `dataframe_split` body on `/invocations`; Kairo is also measured on OIP
`/v2/models/NAME/infer`. wrk runs 1 connection (1 thread) and 8 connections (2 threads) with
1-row and 100-row bodies. The floor is onnxruntime's in-process per-row latency.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from benchlib import free_port, stop, wait_ready


def to_ms(text):
    v, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk(url, body, conns, duration, work):
    script = work / "wrk.lua"
    request = "" if body is None else (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n' f"wrk.body = [==[{body}]==]\n"
    )
    script.write_text(
        request
        + "done = function(summary, latency, requests)\n"
        '  io.write(string.format("P50 %f\\nP99 %f\\nNON2XX %d\\n", latency:percentile(50), latency:percentile(99), summary.errors.status))\n'
        "end\n"
    )
    out = subprocess.run(
        ["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{duration}s", "-s", str(script), url],
        check=True, capture_output=True, text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = float(re.search(r"P50 ([\d.]+)", out).group(1)) / 1000.0  # µs → ms
    p99 = float(re.search(r"P99 ([\d.]+)", out).group(1)) / 1000.0
    non2xx = int(re.search(r"NON2XX (\d+)", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non2xx": non2xx, "socket_errors": errors.group(1) if errors else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo", required=True)
    ap.add_argument("--mlflow", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    import mlflow.sklearn
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=4000, n_features=20, n_informative=10, random_state=0)
    x = x.astype(np.float32)
    models = {
        "logreg": LogisticRegression(max_iter=1000).fit(x, y),
        "forest": RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(x, y),
    }
    project = work / "kairo"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([a.kairo, "init"], cwd=project, check=True, capture_output=True)
    floor = {}
    for name, m in models.items():
        onx = to_onnx(m, x[:1], options={id(m): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
        path = work / f"{name}.onnx"
        path.write_bytes(onx.SerializeToString())
        subprocess.run([a.kairo, "models", "register", name, "--file", str(path)], cwd=project, check=True, capture_output=True)
        trusted = ["sklearn.tree._tree.Tree"] if name == "forest" else None
        mlflow.sklearn.save_model(m, str(work / f"mlflow-{name}"), skops_trusted_types=trusted)
        # One thread, no spinning pool left behind to steal CPU from the servers measured next.
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        row = x[:1]
        for _ in range(200):
            sess.run(None, {"X": row})
        times = []
        for _ in range(3000):
            t = time.perf_counter()
            sess.run(None, {"X": row})
            times.append(time.perf_counter() - t)
        floor[name] = statistics.median(times) * 1e6
        del sess

    cols = [f"f{i}" for i in range(20)]
    bodies = {rows: json.dumps({"dataframe_split": {"columns": cols, "data": x[:rows].tolist()}}) for rows in (1, 100)}
    oip = {rows: json.dumps({"inputs": [{"name": "X", "shape": [rows, 20], "datatype": "FP32", "data": x[:rows].ravel().tolist()}]}) for rows in (1, 100)}
    results = {"floor_us": floor, "runs": []}

    env = dict(os.environ, KAIRO_ACTOR="bench@local")
    port = free_port()
    proc = subprocess.Popen([a.kairo, "serve", "logreg", "forest", "--port", str(port)], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    startup = wait_ready(proc, f"http://127.0.0.1:{port}/ping")
    results["kairo_startup_s"] = startup
    try:
        # The HTTP floor on this machine: an empty GET, one connection.
        results["kairo_ping"] = wrk(f"http://127.0.0.1:{port}/ping", None, 1, a.duration, work)
        for name in models:
            for rows in (1, 100):
                for conns in (1, 8):
                    for proto, body, path in [("invocations", bodies[rows], f"/invocations?model={name}"),
                                              ("oip", oip[rows], f"/v2/models/{name}/infer")]:
                        r = wrk(f"http://127.0.0.1:{port}{path}", body, conns, a.duration, work)
                        r.update(server="kairo", model=name, rows=rows, conns=conns, protocol=proto)
                        results["runs"].append(r)
                        print(json.dumps(r), flush=True)
    finally:
        stop(proc)

    # `mlflow models serve` starts `uvicorn` from PATH: the venv's bin must be on it.
    mlflow_env = dict(os.environ, PATH=f"{Path(a.mlflow).parent}:{os.environ.get('PATH', '')}")
    for name in models:
        port = free_port()
        proc = subprocess.Popen([a.mlflow, "models", "serve", "-m", str(work / f"mlflow-{name}"), "--env-manager", "local",
                                 "-h", "127.0.0.1", "-p", str(port)], cwd=work, stdout=subprocess.DEVNULL, env=mlflow_env,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        results.setdefault("mlflow_startup_s", {})[name] = wait_ready(proc, f"http://127.0.0.1:{port}/ping")
        try:
            results.setdefault("mlflow_ping", {})[name] = wrk(f"http://127.0.0.1:{port}/ping", None, 1, a.duration, work)
            for rows in (1, 100):
                for conns in (1, 8):
                    r = wrk(f"http://127.0.0.1:{port}/invocations", bodies[rows], conns, a.duration, work)
                    r.update(server="mlflow", model=name, rows=rows, conns=conns, protocol="invocations")
                    results["runs"].append(r)
                    print(json.dumps(r), flush=True)
        finally:
            stop(proc)

    Path(a.out).write_text(json.dumps(results, indent=2))
    print("\n| model | rows | conns | MLflow req/s | Kairo req/s (/invocations) | ratio | MLflow p50 / p99 ms | Kairo p50 / p99 ms | p99 ratio | Kairo OIP req/s, p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    find = lambda **k: next(r for r in results["runs"] if all(r[key] == v for key, v in k.items()))
    for name in models:
        for rows in (1, 100):
            for conns in (1, 8):
                m = find(server="mlflow", model=name, rows=rows, conns=conns)
                k = find(server="kairo", model=name, rows=rows, conns=conns, protocol="invocations")
                o = find(server="kairo", model=name, rows=rows, conns=conns, protocol="oip")
                print(f"| {name} | {rows} | {conns} | {m['rps']:.0f} | {k['rps']:.0f} | {k['rps'] / m['rps']:.0f}× | "
                      f"{m['p50_ms']:.2f} / {m['p99_ms']:.2f} | {k['p50_ms']:.3f} / {k['p99_ms']:.3f} | "
                      f"1/{m['p99_ms'] / k['p99_ms']:.0f} | {o['rps']:.0f}, {o['p50_ms']:.3f} / {o['p99_ms']:.3f} |")
    ping = results["kairo_ping"]["p50_ms"] * 1000
    print(f"\nHTTP floor: Kairo GET /ping p50 {ping:.0f} µs (MLflow's /ping: "
          + ", ".join(f"{results['mlflow_ping'][n]['p50_ms'] * 1000:.0f} µs" for n in models) + ")")
    for name in models:
        k = find(server="kairo", model=name, rows=1, conns=1, protocol="oip")
        print(f"{name}: onnxruntime in-process per row {floor[name]:.1f} µs; Kairo server p50 (1 row, 1 conn, OIP) "
              f"{k['p50_ms'] * 1000:.0f} µs → {k['p50_ms'] * 1000 - floor[name]:.0f} µs above the floor, "
              f"{k['p50_ms'] * 1000 - ping:.0f} µs above an empty request")
    bad = [r for r in results["runs"] if r["non2xx"] or r["socket_errors"]]
    if bad:
        print("\nWARNING: runs with errors:", json.dumps(bad))


if __name__ == "__main__":
    main()
