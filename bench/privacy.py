"""Serving with a privacy policy on every input column vs without (see privacy.sh), one run,
same machine.

Two projects alike but for `models.clf.privacy` in kairo.yaml: the 20-feature
`fixtures/models/logreg20.onnx` registered with a reference profile of the same training CSV;
in the private one every column has a policy (hash, bucket, mask and drop in turn; the key in
KAIRO_PRIVACY_KEY). Each case serves the model (`kairo serve clf --log-flush-s 1`), and wrk
sends single-row OIP requests at --conns connections for --secs; the cases alternate order
every round; medians over --rounds. The floor: `GET /v2/health/live` (an answer that does no
work). The prediction log is on in both: the difference is the policy applied to each row
before it is queued. Standard library only.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

from benchlib import free_port, stop, training_csv, wait_ready, wrk_result, wrk_script, wrk_start

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0] * 2
INFER = json.dumps({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": ROW}]})
POLICIES = ["hash", "{bucket: [-1, 0, 1]}", "mask", "drop"]


def project(a, name, private):
    d = a.work / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=d, check=True)
    subprocess.run([a.kairo, "init"], cwd=d, check=True, stdout=subprocess.DEVNULL)
    training_csv(d / "train.csv")
    if private:
        fields = "".join(f"        f{i}: {POLICIES[i % 4]}\n" for i in range(20))
        with open(d / "kairo.yaml", "a") as f:
            f.write(f"models:\n  clf:\n    privacy:\n      fields:\n{fields}")
    subprocess.run([a.kairo, "models", "register", "clf", "--file", str(a.model), "--profile-data", "train.csv",
                    "--target", "label"], cwd=d, check=True, stdout=subprocess.DEVNULL, env=a.env)
    return d


def serve(a, d):
    port = free_port()
    proc = subprocess.Popen([a.kairo, "serve", "clf", "--port", str(port), "--log-flush-s", "1"], cwd=d, env=a.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url + "/v2/health/ready", timeout=60)
    except SystemExit:
        stop(proc)
        raise
    return proc, url


def measure(a, d, path, body, script):
    proc, url = serve(a, d)
    try:
        return wrk_result(wrk_start(url + path, script, a.conns, 2 if a.conns > 1 else 1, a.secs))
    finally:
        stop(proc)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kairo", required=True)
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--secs", type=int, default=5)
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    a.env = dict(os.environ, KAIRO_PRIVACY_KEY="a benchmark key", KAIRO_ACTOR="bench")
    a.env.pop("KAIRO_DATABASE_URL", None)
    a.work.mkdir(parents=True, exist_ok=True)
    dirs = {"no policy": project(a, "open", False), "a policy on every column": project(a, "private", True)}
    infer = wrk_script(a.work / "infer.lua", INFER)
    live = wrk_script(a.work / "live.lua", None)
    cases = list(dirs)
    results = {c: [] for c in cases + ["floor: GET /v2/health/live"]}
    for r in range(a.rounds):
        for c in (cases if r % 2 == 0 else cases[::-1]):
            results[c].append(measure(a, dirs[c], "/v2/models/clf/infer", INFER, infer))
        results["floor: GET /v2/health/live"].append(measure(a, dirs["no policy"], "/v2/health/live", None, live))
    med = {c: {k: statistics.median(x[k] for x in v) for k in ("p50_ms", "p99_ms", "rps")} for c, v in results.items()}
    base = med["no policy"]["p50_ms"]
    print(f"| case ({a.conns} connection{'s' if a.conns > 1 else ''}, single-row OIP) | p50 ms | p99 ms | req/s | p50 vs no policy |")
    print("|---|---:|---:|---:|---:|")
    for c, m in med.items():
        print(f"| {c} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | {m['rps']:.0f} | {m['p50_ms'] / base:.3f} |")
    errors = sum(x["non2xx"] for v in results.values() for x in v)
    print(f"\nnon-2xx answers: {errors}; rounds: {a.rounds}, {a.secs} s each")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"medians": med, "runs": results, "conns": a.conns}, indent=2))


if __name__ == "__main__":
    main()
