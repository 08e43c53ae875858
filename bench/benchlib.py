"""What every benchmark harness here needs (imported by the bench/*.py scripts, which run with
this directory first on sys.path)."""
import socket


def free_port():
    """A TCP port on loopback nobody listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
