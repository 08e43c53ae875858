"""Driver for bench/training.sh: the same train/test split for Kairo and scikit-learn."""
import argparse
import json
import os
import subprocess
import time

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score, root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ap = argparse.ArgumentParser()
ap.add_argument("--kairo", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--large-rows", type=int, default=1_000_000)
ap.add_argument("--large-trees", type=int, default=10)
ap.add_argument("--out", required=True)
args = ap.parse_args()
os.makedirs(args.work, exist_ok=True)


def frame(x, y, names=None):
    df = pd.DataFrame(x, columns=names or [f"f{i}" for i in range(x.shape[1])])
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df["target"] = y
    return df


def sets():
    for name, loader, task in [("breast_cancer", datasets.load_breast_cancer, "clf"),
                               ("wine", datasets.load_wine, "clf"),
                               ("diabetes", datasets.load_diabetes, "reg")]:
        d = loader()
        yield name, frame(d.data, d.target, list(d.feature_names)), task, {}
    x, y = datasets.make_classification(n_samples=args.large_rows, n_features=20, n_informative=10,
                                        n_redundant=4, random_state=0)
    yield f"synthetic_{args.large_rows // 1000}k", frame(x.astype(np.float32), y), "clf", {"trees": args.large_trees}


def sklearn_model(algo, task, trees):
    if task == "reg":
        return {"linear": LinearRegression(), "gbdt": HistGradientBoostingRegressor(random_state=0)}[algo]
    return {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "gbdt": HistGradientBoostingClassifier(random_state=0),
        "random_forest": RandomForestClassifier(n_estimators=trees, n_jobs=2, random_state=0),
    }[algo]


def scores(task, y, predicted, proba):
    if task == "reg":
        return {"r2": r2_score(y, predicted), "rmse": root_mean_squared_error(y, predicted)}
    out = {"accuracy": accuracy_score(y, predicted)}
    if proba is not None and proba.shape[1] == 2:
        out["auc"] = roc_auc_score(y, proba[:, 1])
    return out


rows = []
for name, df, task, extra in sets():
    strat = df["target"] if task == "clf" else None
    train, test = train_test_split(df, test_size=0.2, random_state=0, stratify=strat)
    tr, te = os.path.join(args.work, f"{name}-train.csv"), os.path.join(args.work, f"{name}-test.csv")
    train.to_csv(tr, index=False)
    test.to_csv(te, index=False)
    algos = ["linear", "gbdt"] if task == "reg" else ["logistic", "gbdt", "random_forest"]
    trees = extra.get("trees", 100)
    for algo in algos:
        model = sklearn_model(algo, task, trees)
        x, y = train.drop(columns="target"), train["target"]
        t0 = time.perf_counter()
        model.fit(x, y)
        sk_fit = time.perf_counter() - t0
        proba = model.predict_proba(test.drop(columns="target")) if task == "clf" else None
        sk = scores(task, test["target"], model.predict(test.drop(columns="target")), proba)
        cmd = [args.kairo, "train", "--data", tr, "--test-data", te, "--target", "target", "--algo", algo,
               "--out", os.path.join(args.work, f"{name}-{algo}.onnx"), "--json"]
        if task == "reg":
            cmd += ["--task", "regression"]
        if algo == "random_forest":
            cmd += ["--param", f"n_estimators={trees}"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        kairo_wall = time.perf_counter() - t0
        k = json.loads(out.stdout)
        km = k["metrics"]
        row = {"dataset": name, "rows": len(df), "algo": algo, "trees": trees if algo == "random_forest" else None,
               "kairo": {m: km[m] for m in sk}, "sklearn": sk,
               "kairo_fit_s": k["fit_seconds"], "kairo_process_s": kairo_wall, "sklearn_fit_s": sk_fit}
        rows.append(row)
        diffs = []
        for m in sk:
            if m in ("accuracy", "auc"):
                diffs.append(f"{m} {km[m]:.4f} vs {sk[m]:.4f} ({(km[m] - sk[m]) * 100:+.2f} pp)")
            elif m == "rmse":
                diffs.append(f"{m} {km[m]:.2f} vs {sk[m]:.2f} ({(km[m] / sk[m] - 1) * 100:+.1f}%)")
            else:
                diffs.append(f"{m} {km[m]:.4f} vs {sk[m]:.4f}")
        print(f"{name:<16} {algo:<14} fit {k['fit_seconds']:7.2f}s vs {sk_fit:7.2f}s "
              f"(process {kairo_wall:6.2f}s)  " + "; ".join(diffs), flush=True)
with open(args.out, "w") as f:
    json.dump(rows, f, indent=1)
