"""What authentication costs on the hot paths (see auth.sh). Tracking: `log-metric` through
`kairo server` with wrk, on the same binary, for a project without users (no credentials), and
one with a user whose requests carry a Bearer token, or Basic with the user's password
(argon2id, verified once and then remembered for a few seconds); the floor is `GET /health` of
the protected server. Serving: single-row OIP inference through `kairo serve` without and with
`--auth` (a Bearer token), wrk at 1 connection (its latency percentiles: p50) and 8
connections. Rounds alternate. Standard library only.
"""
import argparse
import base64
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request

from benchlib import free_port


def http(url, body, auth):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    if auth:
        req.add_header("Authorization", auth)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}")


def project(kairo, users):
    work = tempfile.mkdtemp(prefix="kairo-auth-bench-")
    subprocess.run(["git", "init", "-q", work], check=True)
    subprocess.run([kairo, "init"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    token = None
    if users:
        p = subprocess.run([kairo, "users", "add", "bench", "--role", "scientist", "--password-stdin"], cwd=work,
                           input=b"correct horse battery\n", check=True, stdout=subprocess.DEVNULL)
        token = subprocess.run([kairo, "tokens", "create", "bench"], cwd=work, check=True,
                               capture_output=True).stdout.decode().strip()
    return work, token


def serve(kairo, work):
    port = free_port()
    proc = subprocess.Popen([kairo, "server", "--port", str(port)], cwd=work, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=dict(os.environ, RUST_LOG="warn"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(500):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            return proc, url
        except Exception:
            time.sleep(0.02)
    raise SystemExit("the server did not start")


def wrk(url, run_id, conns, secs, auth, work, path="/api/2.0/mlflow/runs/log-metric"):
    script = os.path.join(work, "bench.lua")
    body = json.dumps({"run_id": run_id, "key": "wrk", "value": 1.5, "timestamp": 1, "step": 0})
    lines = [f'wrk.method = "POST"', f"wrk.body = '{body}'", 'wrk.headers["Content-Type"] = "application/json"']
    if auth:
        lines.append(f'wrk.headers["Authorization"] = "{auth}"')
    if path == "/health":
        lines = ['wrk.method = "GET"']
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    out = subprocess.run(["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{secs}s", "-s", script, url + path],
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(bad.group(1)) if bad else 0


def serving(kairo, work, token, rounds, secs):
    """Single-row OIP inference: `kairo serve` without and with --auth."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    model = os.path.join(root, "fixtures", "models", "logreg20.onnx")
    subprocess.run([kairo, "models", "register", "clf", "--file", model], cwd=work, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([kairo, "deploy", "clf", "--version", "1"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    row = ",".join(str(i / 20) for i in range(20))
    body = '{"inputs":[{"name":"input","shape":[1,20],"datatype":"FP32","data":[' + row + ']}]}'
    out = {"without --auth": {"p50_ms": [], "rps_1": [], "rps_8": []}, "--auth, Bearer": {"p50_ms": [], "rps_1": [], "rps_8": []}}
    for _ in range(rounds):
        for name, extra, auth in [("without --auth", [], None), ("--auth, Bearer", ["--auth"], f"Bearer {token}")]:
            port = free_port()
            proc = subprocess.Popen([kairo, "serve", "clf", "--port", str(port), *extra], cwd=work, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True, env=dict(os.environ, RUST_LOG="warn"))
            url = f"http://127.0.0.1:{port}"
            for _ in range(500):
                try:
                    urllib.request.urlopen(url + "/v2/health/ready", timeout=1)
                    break
                except Exception:
                    time.sleep(0.02)
            try:
                script = os.path.join(work, "oip.lua")
                lines = ['wrk.method = "POST"', f"wrk.body = '{body}'", 'wrk.headers["Content-Type"] = "application/json"']
                if auth:
                    lines.append(f'wrk.headers["Authorization"] = "{auth}"')
                open(script, "w").write("\n".join(lines) + "\n")
                for conns in (1, 8):
                    res = subprocess.run(["wrk", "--latency", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{secs}s", "-s", script,
                                          url + "/v2/models/clf/infer"], capture_output=True, text=True).stdout
                    if "Non-2xx" in res:
                        raise SystemExit(f"{name}: non-2xx answers\n{res}")
                    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", res).group(1))
                    out[name][f"rps_{conns}"].append(rps)
                    if conns == 1:
                        m = re.search(r"50%\s+([\d.]+)(us|ms|s)", res)
                        v = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
                        out[name]["p50_ms"].append(v)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
    summary = {}
    base = {k: statistics.median(v) for k, v in out["without --auth"].items()}
    for name, vals in out.items():
        med = {k: statistics.median(v) for k, v in vals.items()}
        summary[name] = dict(med, **{f"{k}_ratio": med[k] / base[k] for k in med})
        print(f"serving {name:<15} p50 {med['p50_ms']:.3f} ms ({summary[name]['p50_ms_ratio']:.3f}), "
              f"1 conn {med['rps_1']:.0f}/s ({summary[name]['rps_1_ratio']:.3f}), 8 conns {med['rps_8']:.0f}/s "
              f"({summary[name]['rps_8_ratio']:.3f})", flush=True)
    return summary, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--out")
    a = ap.parse_args()
    open_work, _ = project(a.kairo, users=False)
    prot_work, token = project(a.kairo, users=True)
    basic = "Basic " + base64.b64encode(b"bench:correct horse battery").decode()
    cases = [("no users", open_work, None), ("bearer token", prot_work, f"Bearer {token}"), ("basic password", prot_work, basic)]
    results = {name: {2: [], 8: []} for name, _, _ in cases}
    floor = []
    for r in range(a.rounds):
        for name, work, auth in cases:
            proc, url = serve(a.kairo, work)
            try:
                exp = http(url + "/api/2.0/mlflow/experiments/create", {"name": f"b{r}-{name}"}, auth)["experiment_id"]
                run = http(url + "/api/2.0/mlflow/runs/create", {"experiment_id": exp}, auth)["run"]["info"]["run_id"]
                for conns in (2, 8):
                    rps, bad = wrk(url, run, conns, a.secs, auth, work)
                    if bad:
                        raise SystemExit(f"{name}: {bad} non-2xx answers")
                    results[name][conns].append(rps)
                if name == "bearer token":
                    floor.append(wrk(url, run, 8, a.secs, None, work, path="/health")[0])
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
        print(f"round {r + 1}: " + ", ".join(f"{n} {results[n][2][-1]:.0f}/{results[n][8][-1]:.0f}" for n, _, _ in cases), flush=True)
    base = {c: statistics.median(results["no users"][c]) for c in (2, 8)}
    summary = {}
    for name, _, _ in cases:
        summary[name] = {f"{c}_conns_rps": statistics.median(results[name][c]) for c in (2, 8)}
        summary[name].update({f"{c}_conns_ratio": statistics.median(results[name][c]) / base[c] for c in (2, 8)})
        print(f"{name:<15} log-metric 2 conns {summary[name]['2_conns_rps']:>8.0f}/s ({summary[name]['2_conns_ratio']:.3f}), "
              f"8 conns {summary[name]['8_conns_rps']:>8.0f}/s ({summary[name]['8_conns_ratio']:.3f})")
    print(f"floor: GET /health, 8 conns {statistics.median(floor):.0f}/s", flush=True)
    # A service account that reads the model, for inference.
    subprocess.run([a.kairo, "users", "add", "svc", "--service", "--role", "viewer@model:clf"], cwd=prot_work, check=True,
                   stdout=subprocess.DEVNULL)
    svc = subprocess.run([a.kairo, "tokens", "create", "svc"], cwd=prot_work, check=True, capture_output=True).stdout.decode().strip()
    serve_summary, serve_raw = serving(a.kairo, prot_work, svc, a.rounds, a.secs)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"summary": summary, "raw": results, "health_8_conns": floor,
                       "serving": serve_summary, "serving_raw": serve_raw}, f, indent=2)


if __name__ == "__main__":
    main()
