"""Time `kairo run` and `dvc repro` on an N-stage chain (stage i copies the output of stage i-1).

For each N: the first run in a fresh repository (median of --rounds fresh repositories) and a
no-op rerun (median of 5 in each repository), plus the cost of the commands alone (N `sh -c cp`
processes started one after another), so per-stage overhead = (first run - commands) / N.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

ENV = dict(os.environ, DVC_NO_ANALYTICS="1", KAIRO_ACTOR="bench@local", GIT_AUTHOR_NAME="b",
           GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")


def sh(args, cwd, check=True):
    return subprocess.run(args, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=check)


def timed(args, cwd):
    start = time.perf_counter()
    r = subprocess.run(args, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed in {cwd}: {r.stderr.decode()[-2000:]}")
    return elapsed


def stages_yaml(n):
    lines = ["stages:"]
    for i in range(1, n + 1):
        lines += [f"  s{i}:", f"    cmd: cp s{i-1}.txt s{i}.txt", f"    deps: [s{i-1}.txt]", f"    outs: [s{i}.txt]"]
    return "\n".join(lines) + "\n"


def setup(tool, exe, d, n):
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    sh(["git", "init", "-q"], d)
    (d / "s0.txt").write_text("seed\n")
    if tool == "kairo":
        sh([exe, "init"], d)
        with open(d / "kairo.yaml", "a") as f:
            f.write(stages_yaml(n))
        return [exe, "run"]
    sh([exe, "init", "-q"], d)
    (d / "dvc.yaml").write_text(stages_yaml(n))
    return [exe, "repro"]


def bench_tool(tool, exe, work, n, rounds):
    firsts, noops = [], []
    for r in range(rounds):
        d = work / f"{tool}-{n}-{r}"
        cmd = setup(tool, exe, d, n)
        firsts.append(timed(cmd, d))
        assert (d / f"s{n}.txt").read_text() == "seed\n", f"{tool} did not produce the chain's end"
        noops.extend(timed(cmd, d) for _ in range(5))
    return statistics.median(firsts), statistics.median(noops)


def commands_alone(work, n, rounds):
    d = work / "baseline"
    d.mkdir(parents=True, exist_ok=True)
    (d / "s0.txt").write_text("seed\n")
    script = f"for i in $(seq 1 {n}); do sh -c 'cp s0.txt x.txt'; done"
    return statistics.median(timed(["sh", "-c", script], d) for _ in range(rounds))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo", required=True)
    ap.add_argument("--dvc", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stages", default="10,100")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    kairo_version = subprocess.run([a.kairo, "--version"], capture_output=True, text=True).stdout.strip()
    dvc_version = subprocess.run([a.dvc, "--version"], capture_output=True, text=True).stdout.strip()
    results = {"kairo": kairo_version, "dvc": dvc_version, "rounds": a.rounds, "chains": []}
    print(f"{kairo_version} vs dvc {dvc_version}, median of {a.rounds} fresh repositories (no-op: of {5 * a.rounds} reruns)")
    print(f"{'stages':>6}  {'tool':<6} {'first run':>10} {'no-op rerun':>12}")
    for n in [int(x) for x in a.stages.split(",")]:
        base = commands_alone(work, n, a.rounds)
        row = {"stages": n, "commands_alone_s": base}
        for tool, exe in [("kairo", a.kairo), ("dvc", a.dvc)]:
            first, noop = bench_tool(tool, exe, work, n, a.rounds)
            row[tool] = {"first_s": first, "noop_s": noop}
            print(f"{n:>6}  {tool:<6} {first:>9.3f}s {noop:>11.3f}s")
        k, d = row["kairo"], row["dvc"]
        row["ratio_first"] = d["first_s"] / k["first_s"]
        row["ratio_noop"] = d["noop_s"] / k["noop_s"]
        row["kairo_overhead_ms_per_stage"] = (k["first_s"] - base) / n * 1000
        row["dvc_overhead_ms_per_stage"] = (d["first_s"] - base) / n * 1000
        print(f"{n:>6}  commands alone {base:.3f}s; kairo overhead {row['kairo_overhead_ms_per_stage']:.1f} ms/stage, "
              f"dvc {row['dvc_overhead_ms_per_stage']:.1f} ms/stage; dvc/kairo: first run {row['ratio_first']:.1f}x, "
              f"no-op {row['ratio_noop']:.1f}x")
        results["chains"].append(row)
    Path(a.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
