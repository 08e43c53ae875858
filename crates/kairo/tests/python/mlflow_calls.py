"""Calls MlflowClient methods named on the command line, through the unmodified client.

Usage: mlflow_calls.py '[["set_registered_model_alias", "clf", "champion", 1], ...]'
Prints one JSON line per call: {"ok": true, "result": ...} or
{"ok": false, "error_code": ..., "message": ...} when the server refused it.
Run by crates/kairo/tests/it with MLFLOW_TRACKING_URI pointing at `kairo server`.
"""
import json
import sys

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

client = MlflowClient()


def plain(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "version") and hasattr(value, "name"):
        return {"name": value.name, "version": int(value.version), "aliases": list(getattr(value, "aliases", []))}
    return str(value)


for name, *args in json.loads(sys.argv[1]):
    try:
        out = {"ok": True, "result": plain(getattr(client, name)(*args))}
    except MlflowException as e:
        out = {"ok": False, "error_code": e.error_code, "message": e.message}
    print(json.dumps(out), flush=True)
