"""Real inference clients against `kairo serve`: tritonclient.http with its default settings
(binary tensors, no Content-Type), plain `requests` with OIP JSON and MLflow payloads.
Every prediction must equal onnxruntime's on the same model file and inputs (1e-5).

Usage: python serving_clients.py HOST:PORT FIXTURES_DIR
"""

import json
import sys

import numpy as np
import onnxruntime as ort
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, fixtures = sys.argv[1], sys.argv[2]
base = f"http://{url}"
rng = np.random.default_rng(7)
TOL = 1e-5


def session(model):
    return ort.InferenceSession(f"{fixtures}/{model}.onnx", providers=["CPUExecutionProvider"])


def close(name, got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != onnxruntime {want.shape}"
    if want.dtype.kind in "fc":
        err = np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)) / np.maximum(1.0, np.abs(want)))
        assert err <= TOL, f"{name}: max relative difference {err}"
    else:
        assert (got == want).all(), f"{name}: {got} != onnxruntime {want}"


client = httpclient.InferenceServerClient(url=url)
assert client.is_server_live()
assert client.is_server_ready()
assert client.is_model_ready("clf")
meta = client.get_model_metadata("clf")
assert meta["inputs"][0]["name"] == "input", meta
assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


def triton_infer(served, inputs):
    """Default tritonclient usage: binary inputs, all outputs, binary outputs."""
    tensors = []
    for name, array in inputs.items():
        dtype = "BYTES" if array.dtype == object else {np.float32: "FP32", np.int64: "INT64"}[array.dtype.type]
        t = httpclient.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        tensors.append(t)
    return client.infer(served, tensors)


checked = 0
for served, model, n_features in [("clf", "logreg20", 20), ("forest", "forest20", 20), ("gbr", "gbr", 8), ("mlp", "mlp", 5)]:
    sess = session(model)
    for rows in (1, 37):
        x = rng.normal(size=(rows, n_features)).astype(np.float32)
        want = sess.run(None, {"input": x})
        result = triton_infer(served, {"input": x})
        for out, w in zip(sess.get_outputs(), want):
            close(f"{served}/{out.name}", result.as_numpy(out.name), w)
            checked += 1

# Several inputs, one of them strings (Scaler and OneHotEncoder lowered by Kairo).
sess = session("pipeline_mixed")
rows = 25
mixed = {
    "a": rng.normal(size=(rows, 1)).astype(np.float32),
    "b": rng.normal(size=(rows, 1)).astype(np.float32),
    "c": rng.normal(size=(rows, 1)).astype(np.float32),
    "color": np.array([[c] for c in rng.choice(["red", "green", "blue", "purple"], size=rows)], dtype=object),
}
want = sess.run(None, mixed)
result = triton_infer("mixed", mixed)
for out, w in zip(sess.get_outputs(), want):
    close(f"mixed/{out.name}", result.as_numpy(out.name), w)
    checked += 1

# JSON tensors, outputs chosen, a pinned version, the request id echoed.
sess = session("logreg20")
x = rng.normal(size=(4, 20)).astype(np.float32)
want = sess.run(None, {"input": x})
body = {"id": "py-1", "inputs": [{"name": "input", "shape": [4, 20], "datatype": "FP32", "data": x.tolist()}],
        "outputs": [{"name": "probabilities"}]}
r = requests.post(f"{base}/v2/models/clf/versions/1/infer", json=body, timeout=10)
assert r.status_code == 200, r.text
answer = r.json()
assert answer["id"] == "py-1" and answer["model_version"] == "1"
assert [o["name"] for o in answer["outputs"]] == ["probabilities"]
close("json/probabilities", np.array(answer["outputs"][0]["data"], dtype=np.float32).reshape(4, 2), want[1])

# MLflow scoring payloads.
cols = [f"f{i}" for i in range(20)]
r = requests.post(f"{base}/invocations?model=clf", json={"dataframe_split": {"columns": cols, "data": x.tolist()}}, timeout=10)
assert r.status_code == 200, r.text
preds = r.json()["predictions"]
close("invocations/label", np.array([p["label"] for p in preds]), want[0])
close("invocations/probabilities", np.array([p["probabilities"] for p in preds], dtype=np.float32), want[1])
csv = ",".join(cols) + "\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in x)
r = requests.post(f"{base}/invocations?model=clf", data=csv, headers={"Content-Type": "text/csv"}, timeout=10)
assert r.status_code == 200, r.text
close("csv/label", np.array([p["label"] for p in r.json()["predictions"]]), want[0])

# Client mistakes surface as InferenceServerException naming the input.
try:
    triton_infer("clf", {"input": rng.normal(size=(2, 19)).astype(np.float32)})
    raise AssertionError("a wrong shape was accepted")
except InferenceServerException as e:
    assert "input 'input'" in str(e), str(e)
try:
    triton_infer("clf", {"input": rng.normal(size=(2, 20)).astype(np.float64)})
    raise AssertionError("a wrong dtype was accepted")
except (InferenceServerException, KeyError) as e:
    # tritonclient maps float64 to FP64; Kairo answers 400 naming the input.
    assert "FP64" in str(e) or "float64" in str(e), str(e)

print(json.dumps({"checked_outputs": checked}))
