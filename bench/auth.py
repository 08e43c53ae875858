"""What authentication costs on the hot path (see auth.sh): `log-metric` through `kairo
server` with wrk, on the same binary, for a project without users (no credentials), and one
with a user whose requests carry a Bearer token, or Basic with the user's password (argon2id,
verified once and then remembered for a few seconds). Rounds alternate; the floor is
`GET /health` of the protected server (open, no credentials). Standard library only.
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


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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
    print(f"floor: GET /health, 8 conns {statistics.median(floor):.0f}/s")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"summary": summary, "raw": results, "health_8_conns": floor}, f, indent=2)


if __name__ == "__main__":
    main()
