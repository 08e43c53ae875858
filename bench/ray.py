"""Time `kairo run` of a stage run locally and as a Ray job (`executor: ray`), same machine, one
run (see ray.sh). Standard library only.

1. One stage: `python3 step.py` reads a 1 MiB input (the output of a local stage upstream) and
   writes a 1 MiB output and a metrics file. `kairo run step` wall time, locally and on Ray with
   a directory remote (and an S3 one when --s3 is given), median of --rounds; each round changes
   the stage's param, so the run cache never answers and Ray gets a new submission. The Ray
   overhead is split at the timestamps the run leaves: the job's record (`start_time` is when
   Ray accepted the submission, `end_time` when it ended, in ms), and the two the script prints
   when its command starts and ends (`bench-timing`, read back from the run's log). The floor is
   the same script run directly. Also `kairo run --force` on Ray (same inputs: the earlier job
   is deleted and submitted again under the same submission id) and the first run of each
   project (on Ray it pushes the 1 MiB input to the remote).
2. A pipeline of independent stages, each `sleep` (sleep, not CPU work, so the 2 cores are not
   what limits 4 at once), `kairo run -j N` locally vs on Ray (each Ray stage asks
   `resources: {num_cpus: ...}` so N jobs fit on the head's 2 CPUs). Wall time, median of
   --rounds; each command writes its own start and end time into its output, which gives how
   many ran at once.

All timestamps are wall-clock time of this machine (bench, stage commands and Ray share it).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

MIB = 1 << 20

# The benchmarked stage. It prints when its own work starts and ends, so the run's log (the job's
# output, streamed back on Ray) tells the command's time apart from what is around it.
STEP_PY = '''\
"""The benchmarked stage: read the 1 MiB input, write a 1 MiB output and a metrics file."""
import json
import time

start = time.time()
seed = int(next(line.split(":")[1] for line in open("params.yaml") if "seed" in line))
data = open("data/input.bin", "rb").read()
table = bytes((i + seed) % 256 for i in range(256))
open("out.bin", "wb").write(data.translate(table))
json.dump({"seed": seed, "bytes": len(data)}, open("metrics.json", "w"))
print(f"bench-timing start={start:.6f} end={time.time():.6f}", flush=True)
'''

# `prepare` runs locally once per project (its output is the Ray stage's data input);
# `step` is the timed stage.
ONE_STAGE = """\
stages:
  prepare:
    cmd: head -c {size} /dev/urandom > data/input.bin
    deps: [seed.txt]
    outs: [data/input.bin]
  step:
    cmd: python3 step.py
{executor}    deps: [step.py, data/input.bin]
    params: [step.seed]
    outs: [out.bin]
    metrics: [metrics.json]
"""


def pipeline_yaml(stages, sleep_s, executor):
    """Independent stages: each writes its start time, sleeps, then its end time into its output."""
    lines = ["stages:"]
    for i in range(1, stages + 1):
        lines += [f"  s{i}:", f"    cmd: date +%s.%N > o{i}.txt && sleep {sleep_s} && date +%s.%N >> o{i}.txt"]
        lines += executor.rstrip("\n").split("\n") if executor else []
        lines += ["    params: [bench.round]", f"    outs: [o{i}.txt]"]
    return "\n".join(lines) + "\n"


class Bench:
    def __init__(self, a):
        self.kairo = a.kairo
        self.address = a.ray.rstrip("/")
        self.work = Path(a.work)
        # The stage commands' `python3` is the one the Ray head's jobs get (its venv's bin is
        # first on the head's PATH), so local runs, Ray jobs and the floor use one interpreter.
        self.env = dict(os.environ, KAIRO_ACTOR="bench@local", GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b",
                        GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b",
                        PATH=f"{a.python_bin}:{os.environ['PATH']}")
        # kairo.yaml names the cluster; each project keeps its own SQLite metadata.
        for name in ("KAIRO_RAY_ADDRESS", "KAIRO_DATABASE_URL"):
            self.env.pop(name, None)

    # ------------------------------------------------------------------ commands ---
    def sh(self, args, cwd):
        r = subprocess.run(args, cwd=cwd, env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, args))} failed in {cwd}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        return r.stdout

    def timed(self, args, cwd):
        """Run `args`; returns (wall-clock start, wall-clock end, elapsed s)."""
        t0, p0 = time.time(), time.perf_counter()
        r = subprocess.run(args, cwd=cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed, t1 = time.perf_counter() - p0, time.time()
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, args))} failed in {cwd}: {r.stderr.decode()[-3000:]}")
        return t0, t1, elapsed

    def runs(self, cwd, limit, stage=None):
        args = [self.kairo, "runs", "ls", "--json", "--limit", str(limit)] + (["--stage", stage] if stage else [])
        return json.loads(self.sh(args, cwd))

    def ray_get(self, path):
        """GET from the head's Jobs API with its token (.ci/start-ray.sh starts it in token mode)."""
        token = os.environ.get("KAIRO_TEST_RAY_TOKEN", "")
        req = urllib.request.Request(f"{self.address}{path}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def ray_jobs(self):
        """Every job the head knows (the bench's head is its own: no other client submits)."""
        return self.ray_get("/api/jobs/")

    def job_of(self, run_id, jobs=None):
        found = [j for j in (jobs or self.ray_jobs()) if (j.get("metadata") or {}).get("kairo_run") == run_id]
        if len(found) != 1:
            raise SystemExit(f"expected one Ray job for run {run_id}, found {len(found)}")
        return found[0]

    def ray_version(self):
        return self.ray_get("/api/version").get("ray_version", "?")

    # ------------------------------------------------------------------ projects ---
    def project(self, name, remote, stages_yaml, files):
        """A fresh git + kairo project with a remote, the bench's Ray head and `stages_yaml`."""
        d = self.work / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        self.sh(["git", "init", "-q"], d)
        self.sh([self.kairo, "init"], d)
        with open(d / "kairo.yaml", "a") as f:
            f.write(f"remotes:\n  store:\n    url: {remote}\ndefault_remote: store\n"
                    f"ray:\n  address: {self.address}\n  token_env: KAIRO_TEST_RAY_TOKEN\n{stages_yaml}")
        for rel, text in files.items():
            (d / rel).write_text(text)
        self.sh(["git", "add", "-A"], d)
        self.sh(["git", "commit", "-q", "-m", "bench project"], d)
        return d

    def dir_remote(self, name):
        """A directory remote beside the project (inside it, git would see its objects)."""
        p = self.work / f"{name}-remote"
        if p.exists():
            shutil.rmtree(p)
        return f"file://{p}"


# ---------------------------------------------------------------- 1. one stage ---
def bench_timing(log):
    """The command's own start and end, printed by step.py."""
    for line in log.splitlines():
        if line.startswith("bench-timing "):
            kv = dict(part.split("=") for part in line.split()[1:])
            return float(kv["start"]), float(kv["end"])
    raise SystemExit(f"no bench-timing line in the run's log:\n{log[-2000:]}")


def one_round(b, d, executor, seed, force=False):
    """One timed `kairo run step` (a new seed, or --force with the same one); checks what came
    back and returns the round's wall time and timestamps (see `phases`)."""
    (d / "params.yaml").write_text(f"step:\n  seed: {seed}\n")
    args = [b.kairo, "run"] + (["--force"] if force else []) + ["step"]
    t0, t1, wall = b.timed(args, d)
    run = b.runs(d, 1, stage="step")[0]
    if run["status"] != "succeeded" or run["executor"] != executor:
        raise SystemExit(f"step in {d}: {run['status']} on {run['executor']}, expected succeeded on {executor}")
    # The outputs are in place and right: the input shifted by the seed, the metrics of this seed.
    data = (d / "data/input.bin").read_bytes()
    want = data.translate(bytes((i + seed) % 256 for i in range(256)))
    if (d / "out.bin").read_bytes() != want or json.loads((d / "metrics.json").read_text())["seed"] != seed:
        raise SystemExit(f"step in {d}: out.bin or metrics.json is not what seed {seed} gives")
    cmd_start, cmd_end = bench_timing(b.sh([b.kairo, "runs", "show", run["id"], "--log"], d))
    row = {"wall_s": wall, "t0": t0, "cmd_start": cmd_start, "cmd_end": cmd_end, "t1": t1}
    if executor == "ray":
        job = b.job_of(run["id"])
        row["submitted"], row["job_end"] = job["start_time"] / 1000, job["end_time"] / 1000
    return row


def phases(row):
    """Seconds spent in each phase of one round."""
    p = {"wall": row["wall_s"], "to_cmd": row["cmd_start"] - row["t0"], "cmd": row["cmd_end"] - row["cmd_start"],
         "cmd_to_return": row["t1"] - row["cmd_end"]}
    if "submitted" in row:
        p.update(to_submit=row["submitted"] - row["t0"], submit_to_cmd=row["cmd_start"] - row["submitted"],
                 cmd_to_job_end=row["job_end"] - row["cmd_end"], job_end_to_return=row["t1"] - row["job_end"],
                 job=row["job_end"] - row["submitted"])
    return p


def median_phases(rows):
    ps = [phases(r) for r in rows]
    return {k: statistics.median(p[k] for p in ps) for k in ps[0]}


def bench_one_stage(b, rounds, s3):
    # Variants: (name, executor, remote). All projects are alike but for `executor: ray` (and
    # `resources`) on `step`; the local one has the remote too, unused.
    variants = [("local", "local", b.dir_remote("one-local")), ("ray-dir", "ray", b.dir_remote("one-ray-dir"))]
    if s3:
        variants.append(("ray-s3", "ray", f"{s3}/one-ray-s3-{int(time.time())}"))
    projects = {}
    for name, executor, remote in variants:
        ex = "    executor: ray\n    resources: {num_cpus: 1}\n" if executor == "ray" else ""
        files = {"seed.txt": "1\n", "params.yaml": "step:\n  seed: 0\n", "step.py": STEP_PY}
        d = b.project(f"one-{name}", remote, ONE_STAGE.format(size=MIB, executor=ex), files)
        b.sh([b.kairo, "run", "prepare"], d)          # the input, made locally, not timed
        projects[name] = (d, executor)
    # First run of `step` in each project: on Ray it also pushes the input to the remote.
    first = {name: one_round(b, d, ex, seed=1) for name, (d, ex) in projects.items()}
    # The floor: the same script on the same input, straight from the shell.
    floor_dir = b.work / "one-floor"
    floor_dir.mkdir(parents=True, exist_ok=True)
    (floor_dir / "data").mkdir(exist_ok=True)
    shutil.copy(projects["local"][0] / "data/input.bin", floor_dir / "data/input.bin")
    (floor_dir / "step.py").write_text(STEP_PY)
    (floor_dir / "params.yaml").write_text("step:\n  seed: 1\n")
    rows = {name: [] for name in projects}
    rows["ray-dir --force"] = []
    floor = []
    # Rounds interleave the variants; each round has a seed no earlier round had.
    for r in range(rounds):
        seed = r + 2
        floor.append(b.timed(["python3", "step.py"], floor_dir)[2])
        for name, (d, ex) in projects.items():
            rows[name].append(one_round(b, d, ex, seed))
        # Same inputs again, forced: Ray's job for them exists (succeeded, outputs taken), so
        # kairo deletes it and submits anew under the same submission id (one_round finds the
        # job by the new run's id in its metadata, so an attach to the old one would fail it).
        rows["ray-dir --force"].append(one_round(b, projects["ray-dir"][0], "ray", seed, force=True))
    return {"floor_s": statistics.median(floor), "floor_rounds_s": floor,
            "first": {name: {"row": row, "phases": phases(row)} for name, row in first.items()},
            "variants": {name: {"median": median_phases(rs), "rounds": rs} for name, rs in rows.items()}}


# ----------------------------------------------------------------- 2. pipeline ---
def peak_concurrency(intervals):
    """The most intervals open at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def pipeline_round(b, d, executor, stages, jobs, rnd):
    (d / "params.yaml").write_text(f"bench:\n  round: {rnd}\n")
    t0, t1, wall = b.timed([b.kairo, "run", "-j", str(jobs)], d)
    runs = b.runs(d, stages)
    names = sorted(r["stage"] for r in runs)
    ok = all(r["status"] == "succeeded" and r["executor"] == executor
             and r["params"]["params.yaml"]["bench.round"] == rnd for r in runs)
    if not ok or names != sorted(f"s{i}" for i in range(1, stages + 1)):
        raise SystemExit(f"round {rnd} in {d}: not every stage ran and succeeded on {executor}")
    # Each output holds its command's start and end.
    cmds = [tuple(map(float, (d / f"o{i}.txt").read_text().split())) for i in range(1, stages + 1)]
    row = {"wall_s": wall, "peak_concurrent": peak_concurrency(cmds),
           "to_first_cmd_s": min(s for s, _ in cmds) - t0, "last_cmd_to_return_s": t1 - max(e for _, e in cmds)}
    if executor == "ray":
        # Per job: Ray accepted the submission -> its command started (queueing for CPUs,
        # supervisor, working dir, driver).
        all_jobs = b.ray_jobs()
        waits = []
        for r in runs:
            job = b.job_of(r["id"], all_jobs)
            i = int(r["stage"][1:])
            waits.append(cmds[i - 1][0] - job["start_time"] / 1000)
        row["submit_to_cmd_median_s"] = statistics.median(waits)
        row["submit_to_cmd_max_s"] = max(waits)
    return row


def bench_pipeline(b, rounds, stages, sleep_s, jobs, num_cpus):
    variants = [("local", "local", ""),
                ("ray-dir", "ray", f"    executor: ray\n    resources: {{num_cpus: {num_cpus}}}\n")]
    projects = {}
    for name, executor, ex in variants:
        d = b.project(f"pipe-{name}", b.dir_remote(f"pipe-{name}"), pipeline_yaml(stages, sleep_s, ex),
                      {"params.yaml": "bench:\n  round: 0\n"})
        projects[name] = (d, executor)
    rows = {name: [] for name in projects}
    for r in range(rounds):
        for name, (d, executor) in projects.items():
            rows[name].append(pipeline_round(b, d, executor, stages, jobs, r + 1))
    out = {}
    for name, rs in rows.items():
        out[name] = {"median": {k: statistics.median(x[k] for x in rs) for k in rs[0]}, "rounds": rs}
    return out


# -------------------------------------------------------------------- report ---
def ms(x):
    return f"{x * 1000:,.0f} ms"


def table_one_stage(res, rounds):
    v, first = res["variants"], res["first"]
    local = v["local"]["median"]["wall"]
    names = {"local": "local", "ray-dir": "Ray, directory remote", "ray-s3": "Ray, S3 remote (s3s-fs)",
             "ray-dir --force": "Ray, directory remote, `--force` (same inputs: job deleted, resubmitted)"}
    print(f"\nOne stage (1 MiB in; 1 MiB + metrics out), `kairo run step`, median of {rounds}:\n")
    print("| executor | `kairo run` | fastest – slowest | × local | − the script alone "
          "| first run of the project |")
    print("|---|---:|---:|---:|---:|---:|")
    fl = res["floor_rounds_s"]
    print(f"| floor: `python3 step.py` | {ms(res['floor_s'])} | {ms(min(fl))} – {ms(max(fl))} | | | |")
    for name, label in names.items():
        if name not in v:
            continue
        wall = v[name]["median"]["wall"]
        walls = [r["wall_s"] for r in v[name]["rounds"]]
        f = first.get(name)
        print(f"| {label} | {ms(wall)} | {ms(min(walls))} – {ms(max(walls))} | {wall / local:.1f}× | "
              f"{ms(wall - res['floor_s'])} | {ms(f['phases']['wall']) if f else ''} |")
    cols = [n for n in ("local", "ray-dir", "ray-s3") if n in v]
    print("\nWhere the time goes (median of each phase on its own, so they need not add up to the wall time):\n")
    print("| phase | " + " | ".join(names[c] for c in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    rows = [("`kairo run` start → job submitted (inputs hashed, package and data uploaded)", "to_submit"),
            ("job submitted → command starts (Ray: supervisor, working dir, driver, inputs fetched)",
             "submit_to_cmd"),
            ("**`kairo run` start → command starts**", "to_cmd"),
            ("the command (`step.py`, timed by itself)", "cmd"),
            ("command ends → job ends (outputs sent to staging, driver exits)", "cmd_to_job_end"),
            ("job ends → `kairo run` returns (status polled every 100 ms, outputs fetched, verified, recorded)",
             "job_end_to_return"),
            ("**command ends → `kairo run` returns**", "cmd_to_return"),
            ("Ray's job record: `start_time` → `end_time`", "job"),
            ("**wall**", "wall")]
    for label, key in rows:
        cells = [ms(v[c]["median"][key]) if key in v[c]["median"] else "—" for c in cols]
        print(f"| {label} | " + " | ".join(cells) + " |")


def table_pipeline(res, rounds, stages, sleep_s, jobs, num_cpus):
    waves = -(-stages // jobs)
    local = res["local"]["median"]["wall_s"]
    print(f"\n{stages} independent stages of `sleep {sleep_s}`, `kairo run -j {jobs}` "
          f"(Ray stages: `resources: {{num_cpus: {num_cpus}}}` on the head's 2 CPUs), median of {rounds}:\n")
    print("| executor | wall | fastest – slowest | × local | most commands at once | `kairo run` → first command "
          "| last command → return | Ray: submitted → command starts (median, max) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| ideal: {waves} wave{'s' if waves > 1 else ''} × {sleep_s} s | {waves * sleep_s:.2f} s | | | "
          f"{min(jobs, stages)} | | | |")
    for name, label in (("local", "local"), ("ray-dir", "Ray, directory remote")):
        m = res[name]["median"]
        ray = (f"{m['submit_to_cmd_median_s']:.2f} s, {m['submit_to_cmd_max_s']:.2f} s"
               if "submit_to_cmd_median_s" in m else "")
        walls = [r["wall_s"] for r in res[name]["rounds"]]
        print(f"| {label} | {m['wall_s']:.2f} s | {min(walls):.2f} – {max(walls):.2f} s "
              f"| {m['wall_s'] / local:.2f}× | {m['peak_concurrent']:g} "
              f"| {ms(m['to_first_cmd_s'])} | {ms(m['last_cmd_to_return_s'])} | {ray} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo", required=True)
    ap.add_argument("--build", default="release", help="label of the binary's build, for the report")
    ap.add_argument("--ray", required=True, help="the Ray head's Jobs API (dashboard) address")
    ap.add_argument("--python-bin", required=True, help="the bin directory of the Ray head's venv")
    ap.add_argument("--s3", default="", help="an s3:// prefix for the S3 variant (AWS_* in the environment)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--stages", type=int, default=10)
    ap.add_argument("--sleep", type=float, default=2)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--num-cpus", type=float, default=0.5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    b = Bench(a)
    b.work.mkdir(parents=True, exist_ok=True)
    sleep_s = int(a.sleep) if a.sleep == int(a.sleep) else a.sleep
    kairo_version = subprocess.run([a.kairo, "--version"], capture_output=True, text=True).stdout.strip()
    results = {"kairo": kairo_version, "build": a.build, "ray": b.ray_version(), "rounds": a.rounds,
               "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "loadavg_before": os.getloadavg()}
    print(f"{kairo_version} ({a.build} build), Ray {results['ray']}, {os.cpu_count()} cores, "
          f"load average before: {os.getloadavg()[0]:.1f}", flush=True)

    results["one_stage"] = bench_one_stage(b, a.rounds, a.s3)
    table_one_stage(results["one_stage"], a.rounds)
    results["pipeline"] = {"stages": a.stages, "sleep_s": a.sleep, "jobs": a.jobs, "num_cpus": a.num_cpus,
                           **bench_pipeline(b, a.rounds, a.stages, sleep_s, a.jobs, a.num_cpus)}
    table_pipeline(results["pipeline"], a.rounds, a.stages, sleep_s, a.jobs, a.num_cpus)

    results["loadavg_after"] = os.getloadavg()
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    Path(a.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
