"""Run an ONNX model in onnxruntime on a CSV's columns and print its outputs as JSON.

    python onnx_outputs.py MODEL.onnx DATA.csv

Each model input is the CSV column of the same name, shaped [N, 1]: floats (empty → NaN)
for tensor(float) inputs, the text itself for tensor(string) inputs.
"""
import csv
import json
import sys

import numpy as np
import onnxruntime as ort

model, data = sys.argv[1], sys.argv[2]
with open(data, newline="") as f:
    rows = list(csv.DictReader(f))
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
feeds = {}
for i in session.get_inputs():
    cells = [r[i.name] for r in rows]
    if i.type == "tensor(string)":
        feeds[i.name] = np.array(cells, dtype=object).reshape(-1, 1)
    else:
        feeds[i.name] = np.array([float(c) if c != "" else np.nan for c in cells], dtype=np.float32).reshape(-1, 1)
outputs = session.run(None, feeds)
result = {}
for spec, value in zip(session.get_outputs(), outputs):
    value = np.asarray(value)
    if value.dtype.kind in "OUS":
        result[spec.name] = [str(v) for v in value.ravel()]
    else:
        result[spec.name] = [float(v) for v in value.ravel()]
print(json.dumps(result))
