"""Kairo's side of a pipeline stage running as a Ray job (shipped in the job's package).

Reads kairo-job.json beside it: fetches each input (a URL Kairo signed for one object of the
project's remote, or a file:// path), checks its size, runs the stage's command through the
shell, then sends each declared output back (a file as is, a directory as an uncompressed tar)
to the URL Kairo signed for it, and prints one `KAIRO-OUTPUT {json}` line per output with its
kind, size and SHA-256 so Kairo can verify what it receives. Exit: the command's code; 97 when
an input cannot be fetched or an output is missing or cannot be sent. Standard library only.
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.request

MISSING = 97


def fetch(url, dest, size):
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    if url.startswith("file://"):
        src = open(url[len("file://"):], "rb")
    else:
        src = urllib.request.urlopen(url, timeout=600)
    got = 0
    with src, open(dest + ".kairo-part", "wb") as out:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            got += len(chunk)
            out.write(chunk)
    if got != size:
        raise RuntimeError(f"input {dest}: got {got} bytes, expected {size}")
    os.replace(dest + ".kairo-part", dest)


def send(url, data):
    if url.startswith("file://"):
        path = url[len("file://"):]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".part", "wb") as out:
            out.write(data)
        os.replace(path + ".part", path)
        return
    req = urllib.request.Request(url, data=data, method="PUT")
    with urllib.request.urlopen(req, timeout=600) as r:
        r.read()


def packed(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                tar.add(full, arcname=os.path.relpath(full, path), recursive=False)
    return buf.getvalue()


def main():
    job = json.load(open("kairo-job.json"))
    for i in job["inputs"]:
        try:
            fetch(i["url"], i["path"], i["size"])
        except Exception as e:  # noqa: BLE001 - named and reported
            print(f"kairo: could not fetch input {i['path']}: {e}", flush=True)
            return MISSING
    code = subprocess.run(job["cmd"], shell=True).returncode
    if code != 0:
        return code
    for o in job["outputs"]:
        path = o["path"]
        if os.path.isdir(path):
            kind, data = "dir", packed(path)
        elif os.path.isfile(path):
            kind, data = "file", open(path, "rb").read()
        else:
            print(f"kairo: the command succeeded but did not produce output {path}", flush=True)
            return MISSING
        try:
            send(o["url"], data)
        except Exception as e:  # noqa: BLE001
            print(f"kairo: could not send output {path}: {e}", flush=True)
            return MISSING
        report = {"path": path, "kind": kind, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        print("KAIRO-OUTPUT " + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
