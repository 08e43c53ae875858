"""What every benchmark harness here needs (imported by the bench/*.py scripts, which run with
this directory first on sys.path)."""
import os
import signal
import socket


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
