"""Run Evidently's DataDriftPreset on two CSV files the way a user would, and write its verdicts.

Usage: python evidently_run.py REFERENCE.csv CURRENT.csv OUT.json [--categorical a,b,c]

Columns named in --categorical are declared categorical (and read as strings); every other
column is declared numerical, so Evidently does not guess types. Without --categorical, the
columns pandas reads as text are the categorical ones.

OUT.json: {"evidently_version", "rows", "dataset_drift", "drifted", "share", "drift_share",
"columns": [{"name", "kind", "method", "score", "threshold", "drift"}], "seconds": {...}}.
A column's `drift` is Evidently's own verdict (the status of the per-column ValueDrift test),
not recomputed here.
"""
import argparse
import json
import time

T0 = time.perf_counter()
import pandas as pd  # noqa: E402
import evidently  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

T_IMPORT = time.perf_counter()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("current")
    ap.add_argument("out")
    ap.add_argument("--categorical", default=None, help="comma-separated categorical columns")
    args = ap.parse_args()

    categorical = [c for c in args.categorical.split(",") if c] if args.categorical is not None else None
    dtype = {c: str for c in categorical} if categorical is not None else None
    def read(path):
        if path.endswith(".parquet"):
            frame = pd.read_parquet(path)
            return frame.astype({c: str for c in categorical}) if categorical else frame
        return pd.read_csv(path, dtype=dtype)

    reference = read(args.reference)
    current = read(args.current)
    if categorical is None:
        categorical = [c for c in reference.columns if not pd.api.types.is_numeric_dtype(reference[c])]
    numerical = [c for c in reference.columns if c not in categorical]
    t_load = time.perf_counter()

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    report = Report([DataDriftPreset()], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    result = snapshot.dict()
    t_report = time.perf_counter()

    # Metrics: one DriftedColumnsCount plus one ValueDrift per column (config: column, method,
    # threshold; value: the score). Tests: one per metric, joined by metric id; FAIL = drifted.
    status = {t["metric_config"]["metric_id"]: t["status"] for t in result["tests"]}
    columns, dataset = [], None
    for m in result["metrics"]:
        kind = m["config"]["type"]
        if kind.endswith(":ValueDrift"):
            name = m["config"]["column"]
            columns.append({
                "name": name,
                "kind": "categorical" if name in categorical else "numeric",
                "method": m["config"]["method"],
                "score": m["value"],
                "threshold": m["config"]["threshold"],
                "drift": status[m["id"]] == "FAIL",
            })
        elif kind.endswith(":DriftedColumnsCount"):
            dataset = m
    out = {
        "evidently_version": evidently.__version__,
        "pandas_version": pd.__version__,
        "rows": {"reference": len(reference), "current": len(current)},
        "dataset_drift": status[dataset["id"]] == "FAIL",
        "drifted": int(dataset["value"]["count"]),
        "share": dataset["value"]["share"],
        "drift_share": dataset["config"]["drift_share"],
        "columns": columns,
        "seconds": {
            "import": T_IMPORT - T0,
            "load_csv": t_load - T_IMPORT,
            "report": t_report - t_load,
        },
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
