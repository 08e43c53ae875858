"""Push and pull to one remote server: kairo vs DVC (its plugin for that kind) vs the raw client.

Run by bench/remotes.sh, which starts the server with the .ci/start-*.sh script and exports
what kairo reads. Targets:
- azure: Azurite (AZURE_STORAGE_USE_EMULATOR, AZURITE_BLOB_STORAGE_URL, KAIRO_TEST_AZURE_URL);
  DVC (dvc-azure) gets the account through a connection string; raw: azure-storage-blob.
- gcs: fake-gcs-server (GOOGLE_SERVICE_ACCOUNT's key file names it, KAIRO_TEST_GCS_URL); DVC
  (dvc-gs) gets it as `endpointurl` with anonymous login; raw: google-cloud-storage.
- ssh: OpenSSH's sshd on loopback (KAIRO_SSH_COMMAND, KAIRO_TEST_SSH_URL); DVC (dvc-ssh) gets
  the port, user and key, and a HOME whose ~/.ssh/known_hosts holds the server's key; raw: scp
  (OpenSSH's own client, SFTP protocol).
Each tool writes under its own fresh prefix, so every push sends everything and every pull
fetches everything (local caches emptied first). Every timing starts after `sync`.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def sh(cmd, cwd, env=None):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"$ {' '.join(map(str, cmd))} (in {cwd}) exited {p.returncode}:\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return p.stdout


def start():
    """The clock, after the disk has written what came before: no tool pays for another's writes."""
    os.sync()
    return time.perf_counter()


def timed(cmd, cwd, env=None):
    t = start()
    sh(cmd, cwd, env)
    return time.perf_counter() - t


def make_small(root, count):
    done = root / ".done"
    if done.exists() and done.read_text() == str(count):
        return
    shutil.rmtree(root, ignore_errors=True)
    for d in range(100):
        (root / f"d{d:02}").mkdir(parents=True)
        for f in range(count // 100):
            (root / f"d{d:02}" / f"f{f:03}.bin").write_bytes(os.urandom(4096))
    done.write_text(str(count))


def make_large(path, mib):
    if path.exists() and path.stat().st_size == mib << 20:
        return
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(1 << 20))


class Target:
    """What each tool needs to reach one server."""

    def __init__(self, kind, work):
        self.kind = kind
        self.dvc_env = dict(os.environ)
        if kind == "azure":
            endpoint = os.environ["AZURITE_BLOB_STORAGE_URL"]
            self.base = os.environ["KAIRO_TEST_AZURE_URL"].rsplit("/", 1)[0]
            self.container = self.base.split("://", 1)[1]
            self.conn = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                         f"BlobEndpoint={endpoint}/{ACCOUNT};")
        elif kind == "gcs":
            self.base = os.environ["KAIRO_TEST_GCS_URL"].rsplit("/", 1)[0]
            self.bucket = self.base.split("://", 1)[1]
            self.endpoint = os.environ["GCS_EMULATOR_URL"]
            # gcsfs's default file system first asks the gRPC Storage Control API (TLS) for the
            # bucket's type, which the emulator does not serve: 60 s lost per command before
            # it falls back to the JSON API. Its own switch turns that off.
            self.dvc_env["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
        elif kind == "ssh":
            url = os.environ["KAIRO_TEST_SSH_URL"]
            self.base = url.rsplit("/", 1)[0]
            login, rest = url.split("://", 1)[1].split("@", 1)
            hostport, path = rest.split("/", 1)
            self.user, (self.host, self.port) = login, hostport.split(":")
            self.root = "/" + path.rsplit("/", 1)[0]
            state = Path(os.environ["KAIRO_TEST_SSH_CONFIG"]).parent
            self.config, self.key = state / "ssh_config", state / "client_key"
            home = work / "dvc-home"
            (home / ".ssh").mkdir(parents=True, exist_ok=True)
            shutil.copy(state / "known_hosts", home / ".ssh" / "known_hosts")
            self.dvc_env["HOME"] = str(home)
        else:
            raise SystemExit(f"unknown target {kind}")

    def kairo_url(self, prefix):
        return f"{self.base}/{prefix}"

    def dvc_remote(self, dvc, project, prefix):
        if self.kind == "azure":
            sh([dvc, "remote", "add", "-d", "r", f"azure://{self.container}/{prefix}"], project)
            sh([dvc, "remote", "modify", "--local", "r", "connection_string", self.conn], project)
        elif self.kind == "gcs":
            sh([dvc, "remote", "add", "-d", "r", f"gs://{self.bucket}/{prefix}"], project)
            sh([dvc, "remote", "modify", "r", "endpointurl", self.endpoint], project)
            sh([dvc, "remote", "modify", "r", "allow_anonymous_login", "true"], project)
        else:
            sh([dvc, "remote", "add", "-d", "r", f"ssh://{self.host}{self.root}/{prefix}"], project)
            for k, v in (("port", self.port), ("user", self.user), ("keyfile", self.key), ("allow_agent", "false")):
                sh([dvc, "remote", "modify", "r", k, v], project)

    def raw_name(self):
        return {"azure": "azure-storage-blob", "gcs": "google-cloud-storage", "ssh": "scp"}[self.kind]

    def raw_round(self, path):
        name = f"raw-{uuid.uuid4().hex[:12]}"
        out = path.with_suffix(".download")
        if self.kind == "azure":
            from azure.storage.blob import BlobServiceClient
            blob = BlobServiceClient.from_connection_string(self.conn).get_blob_client(self.container, name)
            t = start()
            with open(path, "rb") as f:
                blob.upload_blob(f, max_concurrency=4)
            up = time.perf_counter() - t
            t = start()
            with open(out, "wb") as f:
                blob.download_blob(max_concurrency=4).readinto(f)
            down = time.perf_counter() - t
            blob.delete_blob()
        elif self.kind == "gcs":
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage
            client = storage.Client(project="kairo-bench", credentials=AnonymousCredentials(),
                                    client_options={"api_endpoint": self.endpoint})
            blob = client.bucket(self.bucket).blob(name)
            t = start()
            blob.upload_from_filename(str(path))
            up = time.perf_counter() - t
            t = start()
            blob.download_to_filename(str(out))
            down = time.perf_counter() - t
            blob.delete()
        else:
            remote = f"{self.host}:{self.root}/{name}"
            t = start()
            sh(["scp", "-q", "-F", self.config, path, remote], path.parent)
            up = time.perf_counter() - t
            t = start()
            sh(["scp", "-q", "-F", self.config, remote, out], path.parent)
            down = time.perf_counter() - t
            sh(["ssh", "-F", self.config, self.host, "rm", "-f", f"{self.root}/{name}"], path.parent)
        if out.stat().st_size != path.stat().st_size:
            raise SystemExit(f"the raw client's download of {path} has the wrong size")
        out.unlink()
        return up, down


def kairo_round(kairo, work, data, target, env):
    """Push `data` from a fresh project, then pull it into an emptied one: (push s, pull s)."""
    project = work / "kairo-project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    sh(["git", "init", "-q"], project)
    sh([kairo, "init"], project)
    prefix = f"kairo-{uuid.uuid4().hex[:12]}"
    with open(project / "kairo.yaml", "a") as f:
        f.write(f"remotes:\n  r:\n    url: {target.kairo_url(prefix)}\ndefault_remote: r\n")
    copy = project / data.name
    (shutil.copytree if data.is_dir() else shutil.copy)(data, copy)
    sh([kairo, "data", "add", data.name], project, env)
    push = timed([kairo, "data", "push"], project, env)
    shutil.rmtree(project / ".kairo" / "objects")
    # The remote's pack indexes, cached by the push: a fresh machine fetches them.
    shutil.rmtree(project / ".kairo" / "remote-packs", ignore_errors=True)
    if copy.is_dir():
        shutil.rmtree(copy)
    else:
        copy.unlink()
    pull = timed([kairo, "data", "pull"], project, env)
    return push, pull


def dvc_round(dvc, work, data, target):
    project = work / "dvc-project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    sh([dvc, "init", "--no-scm", "-q"], project)
    prefix = f"dvc-{uuid.uuid4().hex[:12]}"
    target.dvc_remote(dvc, project, prefix)
    copy = project / data.name
    (shutil.copytree if data.is_dir() else shutil.copy)(data, copy)
    sh([dvc, "add", "-q", data.name], project)
    push = timed([dvc, "push", "-q"], project, target.dvc_env)
    shutil.rmtree(project / ".dvc" / "cache")
    if copy.is_dir():
        shutil.rmtree(copy)
    else:
        copy.unlink()
    pull = timed([dvc, "pull", "-q"], project, target.dvc_env)
    return push, pull


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True, choices=["azure", "gcs", "ssh"])
    ap.add_argument("--kairo", required=True)
    ap.add_argument("--dvc", required=True)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--small-files", type=int, default=20000)
    ap.add_argument("--large-mib", type=int, default=1024)
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args()
    env = dict(os.environ)
    a.work.mkdir(parents=True, exist_ok=True)
    target = Target(a.target, a.work)
    raw = target.raw_name()
    small, large = a.work / "small", a.work / "large.bin"
    print("making the data", file=sys.stderr, flush=True)
    make_small(small, a.small_files)
    small_name = f"{a.small_files:,} × 4 KiB"
    make_large(large, a.large_mib)
    results = {"target": a.target, "rounds": a.rounds, "large_mib": a.large_mib, "runs": []}
    best = {}
    for r in range(a.rounds):
        for name, data in ((small_name, small), (f"1 × {a.large_mib} MiB", large)):
            for tool, fn in (("kairo", lambda: kairo_round(a.kairo, a.work, data, target, env)),
                             ("dvc", lambda: dvc_round(a.dvc, a.work, data, target))):
                push, pull = fn()
                print(f"  {name} {tool}: push {push:.2f} s, pull {pull:.2f} s", file=sys.stderr, flush=True)
                results["runs"].append({"data": name, "tool": tool, "push_s": push, "pull_s": pull, "round": r})
                k = (name, tool)
                best[k] = (min(best.get(k, (push, pull))[0], push), min(best.get(k, (push, pull))[1], pull))
        up, down = target.raw_round(large)
        print(f"  raw client: upload {up:.2f} s, download {down:.2f} s", file=sys.stderr, flush=True)
        results["runs"].append({"data": f"1 × {a.large_mib} MiB", "tool": raw, "push_s": up,
                                "pull_s": down, "round": r})
        k = (f"1 × {a.large_mib} MiB", raw)
        best[k] = (min(best.get(k, (up, down))[0], up), min(best.get(k, (up, down))[1], down))
    title = {"azure": "Azure Blob (Azurite)", "gcs": "GCS (fake-gcs-server)", "ssh": "SSH (OpenSSH sshd)"}[a.target]
    print(f"\n{title} on loopback, best of {a.rounds}:\n")
    print("| data | tool | push s | pull s |")
    print("|---|---|---:|---:|")
    for (name, tool), (push, pull) in best.items():
        print(f"| {name} | {tool} | {push:.2f} | {pull:.2f} |")
    s_k, s_d = best[(small_name, "kairo")], best[(small_name, "dvc")]
    l_k, l_r = best[(f"1 × {a.large_mib} MiB", "kairo")], best[(f"1 × {a.large_mib} MiB", raw)]
    ratios = {"small_push_dvc_over_kairo": s_d[0] / s_k[0], "small_pull_dvc_over_kairo": s_d[1] / s_k[1],
              "large_push_kairo_over_raw": l_k[0] / l_r[0], "large_pull_kairo_over_raw": l_k[1] / l_r[1]}
    results["ratios"] = ratios
    print(f"\nsmall files: kairo {ratios['small_push_dvc_over_kairo']:.1f}× DVC on push, "
          f"{ratios['small_pull_dvc_over_kairo']:.1f}× on pull (goal ≥ 5×); large file: kairo takes "
          f"{ratios['large_push_kairo_over_raw']:.2f}× the raw client's time on upload, "
          f"{ratios['large_pull_kairo_over_raw']:.2f}× on download (goal ≤ 1.2×)")
    a.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
