"""Time kairo vs dvc vs cp/b3sum on one 2 GiB file, 20,000 files of 4 KiB, and no-op status.

Runs are interleaved round by round (kairo, dvc, cp, ...) so that the machine's drift (page
cache, a VM's memory) hits every tool alike; each result is the median over the rounds. Before
every timed run the tool's store and pointers are reset, dirty pages are flushed (`sync`), the
kernel's caches are dropped (when running as root) and the inputs are read once, so every tool
starts from the same warm page cache holding just its input.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

BIG = 2 << 30
SMALL_FILES = 20_000
SMALL_SIZE = 4096


def sh(cmd, cwd, env=None, check=True):
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    return r.returncode


def timed(cmd, cwd, env=None, ok=(0,)):
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    if r.returncode not in ok:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    return elapsed


def rm(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def make_data(work):
    big = os.path.join(work, "big.bin")
    if not os.path.exists(big) or os.path.getsize(big) != BIG:
        print("generating a 2 GiB file", file=sys.stderr)
        with open(big, "wb") as f:
            for _ in range(BIG // (64 << 20)):
                f.write(os.urandom(64 << 20))
    many = os.path.join(work, "many")
    if not os.path.isdir(many) or sum(len(fs) for _, _, fs in os.walk(many)) != SMALL_FILES:
        print("generating 20,000 files of 4 KiB", file=sys.stderr)
        rm(many)
        for i in range(SMALL_FILES):
            d = os.path.join(many, f"d{i % 100:02d}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
                f.write(os.urandom(SMALL_SIZE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kairo", required=True)
    ap.add_argument("--dvc", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    work = a.work
    os.makedirs(work, exist_ok=True)
    make_data(work)
    if not os.path.isdir(os.path.join(work, ".git")):
        sh(["git", "init", "-q"], work)
        sh([a.dvc, "init", "-q"], work)
        sh([a.dvc, "config", "core.analytics", "false"], work)
        sh([a.dvc, "config", "core.autostage", "false"], work)
        # Keep DVC's state database (its stat cache) inside the scratch repo so resets reach it.
        sh([a.dvc, "config", "core.site_cache_dir", os.path.join(work, ".dvc", "site")], work)
        sh([a.kairo, "init"], work)
    env = dict(os.environ, KAIRO_ACTOR="bench@local")
    env_nofsync = dict(env, KAIRO_FSYNC="0")
    b3sum = shutil.which("b3sum")

    can_drop = os.geteuid() == 0

    def warm(tool=None):
        """Flush, drop caches, then read every input byte so the page cache holds the inputs.
        Dropping the caches also evicts the tool's own program (kairo's binary is 70 MB, DVC is
        Python and its packages): running `tool --version` once loads it again, so the timed run
        measures the work rather than paging in the program (`cat` and `cp` are tiny)."""
        sh(["sync"], work)
        if can_drop:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        for dirpath, _, files in os.walk(os.path.join(work, "many")):
            for name in files:
                with open(os.path.join(dirpath, name), "rb") as f:
                    f.read()
        with open(os.path.join(work, "big.bin"), "rb") as f:
            while f.read(64 << 20):
                pass
        if tool:
            sh([tool, "--version"], work)

    def reset_kairo(target):
        rm(os.path.join(work, ".kairo", "objects"))
        rm(os.path.join(work, ".kairo", "stat-cache"))
        rm(os.path.join(work, target + ".kairo"))
        warm(a.kairo)

    def reset_dvc(target):
        for p in ("cache", "site", "tmp"):
            rm(os.path.join(work, ".dvc", p))
        rm(os.path.join(work, target + ".dvc"))
        warm(a.dvc)

    def reset_copy():
        rm(os.path.join(work, "copy.bin"))
        rm(os.path.join(work, "copy-many"))
        warm()

    results = {}

    def record(name, seconds):
        results.setdefault(name, []).append(seconds)

    for r in range(a.rounds):
        print(f"round {r + 1}/{a.rounds}", file=sys.stderr)
        reset_copy()
        record("big: cp", timed(["cp", "big.bin", "copy.bin"], work))
        reset_copy()
        record("big: cp + sync", timed(["sh", "-c", "cp big.bin copy.bin && sync"], work))
        reset_copy()
        if b3sum:
            record("big: b3sum", timed([b3sum, "big.bin"], work))
        reset_kairo("big.bin")
        record("big: kairo data add", timed([a.kairo, "data", "add", "big.bin"], work, env))
        reset_kairo("big.bin")
        record("big: kairo data add (fsync off)", timed([a.kairo, "data", "add", "big.bin"], work, env_nofsync))
        reset_dvc("big.bin")
        record("big: dvc add", timed([a.dvc, "add", "-q", "big.bin"], work))

        reset_copy()
        record("many: cp -r", timed(["cp", "-r", "many", "copy-many"], work))
        reset_copy()
        # The floor for `add`: reading every file once (one process, no hashing, no writes).
        record("many: read every file once", timed(["sh", "-c", "find many -type f -print0 | xargs -0 cat > /dev/null"], work))
        reset_copy()
        reset_kairo("many")
        record("many: kairo data add", timed([a.kairo, "data", "add", "many"], work, env))
        reset_kairo("many")
        record("many: kairo data add (fsync off)", timed([a.kairo, "data", "add", "many"], work, env_nofsync))
        reset_dvc("many")
        record("many: dvc add", timed([a.dvc, "add", "-q", "many"], work))

    # No-op status: everything tracked and unchanged. The floor is git: the same 20,000 files
    # committed to a repository of their own, `git status --porcelain` there.
    sh([a.kairo, "data", "add", "many", "big.bin"], work, env)
    sh([a.dvc, "add", "-q", "many", "big.bin"], work)
    twin = os.path.join(work, "git-twin")
    if not os.path.isdir(os.path.join(twin, ".git")):
        rm(twin)
        os.makedirs(twin)
        sh(["cp", "-r", os.path.join(work, "many"), twin], work)
        sh(["git", "init", "-q"], twin)
        sh(["git", "add", "many"], twin)
        sh(["git", "-c", "user.name=bench", "-c", "user.email=bench@local", "commit", "-qm", "many"], twin)
    warm()
    for _ in range(2):
        timed([a.kairo, "data", "status"], work, env)
        timed([a.dvc, "status"], work)
        timed(["git", "status", "--porcelain"], twin)
    for _ in range(max(20, a.rounds)):
        record("status: kairo data status", timed([a.kairo, "data", "status"], work, env))
        record("status: dvc status", timed([a.dvc, "status"], work))
        record("status: git status --porcelain (20,000 files)", timed(["git", "status", "--porcelain"], twin))

    med = {k: statistics.median(v) for k, v in results.items()}
    ratios = {
        "big: kairo / cp": med["big: kairo data add (fsync off)"] / med["big: cp"],
        "big: kairo (fsync) / cp + sync": med["big: kairo data add"] / med["big: cp + sync"],
        "big: kairo (fsync) / cp": med["big: kairo data add"] / med["big: cp"],
        "big: dvc / cp": med["big: dvc add"] / med["big: cp"],
        "big: dvc / kairo (fsync)": med["big: dvc add"] / med["big: kairo data add"],
        "many: dvc / kairo (fsync)": med["many: dvc add"] / med["many: kairo data add"],
        "many: dvc / kairo (fsync off)": med["many: dvc add"] / med["many: kairo data add (fsync off)"],
        "many: kairo (fsync) / read every file once": med["many: kairo data add"] / med["many: read every file once"],
        "many: kairo (fsync off) / read every file once": med["many: kairo data add (fsync off)"]
        / med["many: read every file once"],
        "status: dvc / kairo": med["status: dvc status"] / med["status: kairo data status"],
        "status: kairo / git status": med["status: kairo data status"]
        / med["status: git status --porcelain (20,000 files)"],
    }
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "dvc": subprocess.run([a.dvc, "--version"], capture_output=True, text=True).stdout.strip(),
        "rounds": a.rounds,
        "caches_dropped_between_runs": can_drop,
        "median_seconds": med,
        "all_seconds": results,
        "ratios": ratios,
    }
    with open(a.out, "w") as f:
        json.dump(report, f, indent=2)
    width = max(len(k) for k in med)
    print(f"{'measurement':<{width}}  median s  (min..max over {a.rounds}+ runs)")
    for k, v in med.items():
        print(f"{k:<{width}}  {v:8.3f}  ({min(results[k]):.3f}..{max(results[k]):.3f})")
    print()
    for k, v in ratios.items():
        print(f"{k:<{width}}  {v:8.2f}x")


if __name__ == "__main__":
    main()
