"""What every benchmark harness here needs (imported by the bench/*.py scripts, which run with
this directory first on sys.path)."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    """A TCP port on loopback nobody listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stop(proc):
    """End a server started in its own process group: SIGTERM, then SIGKILL after 30 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wrk_script(path, body, limit=None):
    """A wrk script: the POST body if any, a summary line at the end, and with `limit`, each
    thread stops after that many answers (wrk has no request-count option)."""
    text = "" if body is None else (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n' f"wrk.body = [==[{body}]==]\n"
    )
    if limit:
        text += (f"local answered = 0\n"
                 "function response(status, headers, body)\n"
                 f"  answered = answered + 1\n  if answered >= {limit} then wrk.thread:stop() end\n"
                 "end\n")
    text += ("done = function(summary, latency, requests)\n"
             '  io.write(string.format("REQUESTS %d\\nP50 %f\\nP99 %f\\nNON2XX %d\\n", summary.requests,'
             " latency:percentile(50), latency:percentile(99), summary.errors.status))\n"
             "end\n")
    path.write_text(text)
    return path


def wrk_start(url, script, conns, threads, secs):
    return subprocess.Popen(["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "-s", str(script), url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wrk_result(proc):
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed: {err}")
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"REQUESTS (\d+)", out).group(1)),
        "p50_ms": float(re.search(r"P50 ([\d.]+)", out).group(1)) / 1000.0,  # µs → ms
        "p99_ms": float(re.search(r"P99 ([\d.]+)", out).group(1)) / 1000.0,
        "non2xx": int(re.search(r"NON2XX (\d+)", out).group(1)),
        "socket_errors": errors.group(1) if errors else None,
    }


def wait_ready(proc, url, timeout=300):
    """Poll `url` until it answers 200; the seconds it took. A server that exits, or no answer
    within `timeout`, ends the benchmark with the reason."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except Exception:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode} before {url} answered")
        time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def training_csv(path, rows=2000, seed=7):
    """A 20-feature training CSV (f0..f19, Gaussian) with `label` = f0 > 0, for the benches
    that register `fixtures/models/logreg20.onnx` with a profile."""
    import random
    rnd = random.Random(seed)
    lines = [",".join(f"f{i}" for i in range(20)) + ",label"]
    for _ in range(rows):
        x = [rnd.gauss(0, 1) for _ in range(20)]
        lines.append(",".join(f"{v:.5f}" for v in x) + f",{int(x[0] > 0)}")
    path.write_text("\n".join(lines) + "\n")


def measure(cmd, cwd=None, env=None):
    """Run `cmd` to its end: (wall seconds, peak RSS in MiB, exit code, stdout, stderr). The peak
    is GNU time's %M, the largest RSS of the command and its descendants. Not wait4 from here:
    a child forked (or vforked) from this process starts with this process's high-water mark,
    which wait4 then reports, hundreds of MiB once numpy is imported or a model trained."""
    if not os.access("/usr/bin/time", os.X_OK):
        raise SystemExit("GNU time is required: apt-get install time")
    with tempfile.NamedTemporaryFile("r", suffix=".maxrss") as rss:
        t = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + [str(c) for c in cmd], cwd=cwd, env=env,
                           capture_output=True, text=True)
        wall = time.perf_counter() - t
        # On a failure time writes "Command exited with non-zero status N" before the number.
        kib = rss.read().split()
    return wall, int(kib[-1]) / 1024 if kib and kib[-1].isdigit() else float("nan"), p.returncode, p.stdout, p.stderr
