"""Kairo's side of `kairo predict --executor ray` (the job's driver, shipped in its package
beside kairo_ray_job.py, whose fetch/send/packed it uses).

Reads kairo-predict.json: each shard becomes one Ray task (one CPU) that fetches the kairo
binary (once per node, by its hash), the model and the shard's input files (linked, not
copied, from a directory remote the node sees), runs
`kairo predict --model-file ...` on them with one scoring thread, and sends back what it wrote —
its part of the scores, the skipped rows, the prediction-log segments (a directory, as an
uncompressed tar) — to the URLs Kairo signed, each with its size and SHA-256. A
`KAIRO-SHARD {json}` line per shard is printed as it finishes; the first failed shard cancels
the rest. Exit 0 when every shard succeeded, 1 otherwise.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import ray

from kairo_ray_job import fetch, packed, send


def place(url, dest, size):
    """An object at dest: linked when the remote is a directory this node sees (no copy),
    else fetched."""
    if url.startswith("file://") and os.path.getsize(url[len("file://"):]) == size:
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        os.symlink(url[len("file://"):], dest)
    else:
        fetch(url, dest, size)


def kairo_binary(spec):
    """The kairo binary on this node: fetched once per node, shared by its tasks."""
    path = os.path.join(tempfile.gettempdir(), "kairo-bin-" + spec["hash"][:32])
    if not os.path.exists(path):
        fetch(spec["url"], path + f".{os.getpid()}", spec["size"])
        os.chmod(path + f".{os.getpid()}", 0o755)
        os.replace(path + f".{os.getpid()}", path)
    return path


def score(shard, job):
    work = tempfile.mkdtemp(prefix="kairo-shard-")
    result = {"index": shard["index"], "code": 0, "sent": {}}
    try:
        kairo = kairo_binary(job["kairo"])
        place(job["model"]["url"], os.path.join(work, "model.onnx"), job["model"]["size"])
        for i in shard["inputs"]:
            place(i["url"], os.path.join(work, i["path"]), i["size"])
        env = dict(os.environ, RAYON_NUM_THREADS=str(job["threads"]))
        p = subprocess.run([kairo] + shard["args"], cwd=work, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            result["code"] = p.returncode
            result["error"] = (p.stderr.strip() or p.stdout.strip())[-4000:]
            return result
        result["report"] = json.loads(p.stdout.strip().splitlines()[-1])
        for out in shard["send"]:
            path = os.path.join(work, out["path"])
            if os.path.isdir(path):
                data = packed(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read()
            else:
                continue
            send(out["url"], data)
            result["sent"][out["what"]] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        return result
    except Exception as e:  # noqa: BLE001 - named and reported
        result["code"] = 97
        result["error"] = f"{type(e).__name__}: {e}"
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    with open("kairo-predict.json") as f:
        job = json.load(f)
    ray.init()
    task = ray.remote(num_cpus=job["threads"], max_retries=0)(score)
    pending = [task.remote(s, job) for s in job["shards"]]
    ok = True
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            r = ray.get(ref)
            print("KAIRO-SHARD " + json.dumps(r), flush=True)
            if r["code"] != 0 and ok:
                ok = False
                for other in pending:
                    ray.cancel(other)
        if not ok:
            break
    return 0 if ok else 1


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
