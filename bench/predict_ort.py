"""The batch-prediction script a competent Python user writes with onnxruntime and pyarrow: the
peer of `kairo predict` in bench/predict.py (run there as its own process, so that its wall time
and peak RSS are measured from start to exit).

Usage: python bench/predict_ort.py MODEL.onnx INPUT.parquet OUTPUT.parquet [--id-column C]...
       [--batch-size 65536]
The model has one [N, k] float input, fed the input's non-id columns in file order. The output
has the id columns, then each model output: a 1-D output as one column named after it, a 2-D
one as NAME_0, NAME_1, ... (a classifier exported with zipmap off: `label`, `probabilities_0`,
`probabilities_1`). Prints {"rows": N, "seconds": S} (S: the loop, without imports and loading).
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--id-column", action="append", default=[])
    ap.add_argument("--batch-size", type=int, default=65536)
    a = ap.parse_args()

    # onnxruntime's default session options: intra-op threads = the machine's physical cores.
    sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    (feed,) = sess.get_inputs()
    outputs = [o.name for o in sess.get_outputs()]
    source = pq.ParquetFile(a.input)
    features = [n for n in source.schema_arrow.names if n not in a.id_column]

    t = time.perf_counter()
    rows, writer = 0, None
    try:
        for batch in source.iter_batches(batch_size=a.batch_size):
            # Float32 feature columns without nulls: to_numpy is zero-copy, column_stack the one copy.
            x = np.column_stack([batch.column(c).to_numpy() for c in features]).astype(np.float32, copy=False)
            results = sess.run(None, {feed.name: x})
            columns = {c: batch.column(c) for c in a.id_column}
            for name, value in zip(outputs, results):
                if value.ndim == 2:
                    for j in range(value.shape[1]):
                        columns[f"{name}_{j}"] = value[:, j]
                else:
                    columns[name] = value
            table = pa.table(columns)
            if writer is None:
                writer = pq.ParquetWriter(a.output, table.schema)
            writer.write_table(table)
            rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t}))


if __name__ == "__main__":
    main()
