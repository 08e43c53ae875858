"""The closed loop's overhead per step (see loop.sh). Standard library only."""
import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
import urllib.request
from datetime import datetime

CONFIG = """
stages:
  train:
    cmd: {kairo} train --data data/train.csv --target churned --drop request_id,row,time,version --seed 7 --out model.onnx
    deps: [data/train.csv]
    outs: [model.onnx]
models:
  churn:
    holdout: {{path: data/holdout.csv, target: churned}}
    rollout: {{min_requests: 1000, window_s: 3600}}
monitors:
  watch:
    deployment: churn
    rows: 300
    alerts:
      - when: drift_share > 0.2
        action: retrain
automations:
  retrain:
    model: churn
    on: [{{alert: {{monitor: watch}}}}]
    retrain:
      export: {{to: data/train.csv, since: 30d}}
      stages: [train]
      artifact: model.onnx
    register: {{profile_data: data/train.csv, target: churned}}
    evaluate: {{data: [holdout], metric: auc}}
    rollout: {{strategy: canary, weight: 10}}
"""


def customers(n, seed, march):
    rnd = random.Random(seed)
    lines = ["tenure,spend,support_calls,usage_hours,churned"]
    for _ in range(n):
        tenure, spend, calls = float(int(rnd.random() * 60)), round(20 + rnd.random() * 80, 2), float(int(rnd.random() * rnd.random() * 8))
        usage = round(rnd.random() * 40, 1) if march else round(20 + rnd.random() * 30, 1)
        churn = usage < 14 + rnd.random() * 6 if march else calls * 0.6 - tenure * 0.04 + rnd.random() * 1.2 > 1.2
        lines.append(f"{tenure},{spend},{calls},{usage},{int(churn)}")
    return "\n".join(lines) + "\n"


def ms(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def run(kairo, cwd, *args, check=True):
    out = subprocess.run([kairo, *args], cwd=cwd, capture_output=True, text=True)
    if check and out.returncode not in (0, 3):
        raise SystemExit(f"kairo {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out.stdout


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))


def one_round(kairo, work):
    os.makedirs(f"{work}/data")
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    run(kairo, work, "init")
    with open(f"{work}/data/train.csv", "w") as f:
        f.write(customers(1500, 1, False))
    with open(f"{work}/data/holdout.csv", "w") as f:
        f.write(customers(600, 9, True))
    with open(f"{work}/kairo.yaml", "a") as f:
        f.write(CONFIG.format(kairo=kairo))
    run(kairo, work, "data", "add", "data/train.csv")
    run(kairo, work, "run")
    run(kairo, work, "models", "register", "churn", "--file", "model.onnx", "--profile-data", "data/train.csv", "--target", "churned")
    run(kairo, work, "models", "promote", "churn", "1")
    run(kairo, work, "deploy", "churn", "--version", "1")
    serve = subprocess.Popen([kairo, "serve", "churn", "--port", "0", "--log-flush-s", "1"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = next(w for w in serve.stdout.readline().split() if w.startswith("http://")).rstrip(":/")
        rows = [r.split(",") for r in customers(400, 5, True).splitlines()[1:]]
        names = ["tenure", "spend", "support_calls", "usage_hours"]
        feedback = []
        for i in range(0, len(rows), 20):
            chunk = rows[i:i + 20]
            inputs = [{"name": n, "shape": [len(chunk), 1], "datatype": "FP32", "data": [float(r[c]) for r in chunk]} for c, n in enumerate(names)]
            post(f"{url}/v2/models/churn/infer", {"id": f"r{i}", "inputs": inputs})
            feedback.append({"request_id": f"r{i}", "labels": [int(r[4]) for r in chunk]})
        post(f"{url}/v1/feedback", feedback)
        time.sleep(1.6)
        run(kairo, work, "monitor", "check", "--monitor", "watch")
        run(kairo, work, "automations", "tick")
    finally:
        serve.terminate()
        serve.wait()
    inc = json.loads(run(kairo, work, "incidents", "show", "1", "--json"))
    assert inc["state"] == "rolling_out", inc["state"]
    alert_ms = ms(inc["detail"]["triggers"][0]["what"]["at"])
    run_info = json.loads(run(kairo, work, "runs", "show", inc["detail"]["retrain"]["run_id"], "--json"))
    started, ended = ms(run_info["started_at"]), ms(run_info["ended_at"])
    evaluated = next(ms(e["at"]) for e in inc["timeline"] if e["payload"].get("facts", {}).get("evaluation"))
    canary = inc["detail"]["rollout"]["started_ms"]
    return {
        "alert_to_retrain_started_ms": started - alert_ms,
        "run_finished_to_registered_and_evaluated_ms": evaluated - ended,
        "evaluated_to_canary_live_ms": canary - evaluated,
        "training_ms": ended - started,
    }


def idle_tick(kairo, work):
    t = time.perf_counter()
    run(kairo, work, "automations", "tick")
    return (time.perf_counter() - t) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rounds = []
    floors = []
    for r in range(a.rounds):
        with tempfile.TemporaryDirectory(prefix="kairo-bench-loop-") as work:
            rounds.append(one_round(a.kairo, work))
            floors.append(idle_tick(a.kairo, work))
    keys = list(rounds[0])
    result = {k: statistics.median(x[k] for x in rounds) for k in keys}
    result["floor_idle_tick_ms"] = statistics.median(floors)
    result["rounds"] = a.rounds
    for k in keys + ["floor_idle_tick_ms"]:
        print(f"{k:<45} {result[k]:8.0f} ms  (median of {a.rounds})")
    with open(a.out, "w") as f:
        json.dump({"median": result, "rounds": rounds, "floors": floors}, f, indent=1)


main()
