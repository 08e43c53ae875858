"""The unmodified MLflow client against `kairo server`: tracking and proxied artifacts.

Run by crates/kairo/tests/it/server.rs with MLFLOW_TRACKING_URI pointing at a fresh server.
Prints a JSON summary (run ids) on success; any failed assertion exits non-zero.
"""
import json
import os
import tempfile
import time
import urllib.request

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

client = MlflowClient()
exp = mlflow.set_experiment("kairo-compat")
assert mlflow.get_experiment_by_name("kairo-compat").experiment_id == exp.experiment_id
assert mlflow.get_experiment_by_name("no-such-experiment") is None
client.set_experiment_tag(exp.experiment_id, "owner", "my name is kairo")
found_exps = mlflow.search_experiments(filter_string="name LIKE 'kairo-%' AND tags.owner = 'my name is kairo'")
assert [e.name for e in found_exps] == ["kairo-compat"], found_exps

with mlflow.start_run(run_name="parent") as parent:
    run_id = parent.info.run_id
    mlflow.log_param("alpha", 0.5)
    mlflow.log_params({"l1": 0.1, "solver": "saga"})
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"acc": 0.91, "f1": 0.88})
    mlflow.set_tags({"team": "ml-core", "purpose": "compat"})
    mlflow.set_tag("note", "café ünïcode")
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric("batch_m", float(i), now + i, i) for i in range(10)],
        params=[Param("bp", "x")],
        tags=[RunTag("bt", "y")],
    )
    work = tempfile.mkdtemp()
    with open(os.path.join(work, "summary.txt"), "w") as f:
        f.write("hello artifacts\n")
    mlflow.log_artifact(os.path.join(work, "summary.txt"))
    outputs = os.path.join(work, "outputs")
    os.makedirs(os.path.join(outputs, "nested"))
    with open(os.path.join(outputs, "a.csv"), "w") as f:
        f.write("x,y\n1,2\n")
    with open(os.path.join(outputs, "nested", "b.bin"), "wb") as f:
        f.write(bytes(range(256)) * 40)
    mlflow.log_artifacts(outputs, artifact_path="outputs")
    import pandas as pd
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    mlflow.log_input(mlflow.data.from_pandas(frame, name="train-frame"), context="training")
    with mlflow.start_run(run_name="child", nested=True) as child:
        child_id = child.info.run_id
        mlflow.log_metric("acc", 0.95)
        mlflow.log_param("alpha", 0.7)

run = client.get_run(run_id)
assert run.info.status == "FINISHED", run.info.status
assert run.info.run_name == "parent"
assert run.data.params == {"alpha": "0.5", "l1": "0.1", "solver": "saga", "bp": "x"}, run.data.params
assert run.data.metrics["loss"] == 0.2 and run.data.metrics["acc"] == 0.91, run.data.metrics
assert run.data.tags["team"] == "ml-core" and run.data.tags["note"] == "café ünïcode" and run.data.tags["bt"] == "y"
inputs = run.inputs.dataset_inputs
assert [i.dataset.name for i in inputs] == ["train-frame"], inputs
assert {t.key: t.value for t in inputs[0].tags}.get("mlflow.data.context") == "training"
assert inputs[0].dataset.digest and "x" in inputs[0].dataset.schema
history = client.get_metric_history(run_id, "loss")
assert [(m.step, round(m.value, 4)) for m in history] == [(0, 1.0), (1, 0.5), (2, 0.3333), (3, 0.25), (4, 0.2)], history
assert len(client.get_metric_history(run_id, "batch_m")) == 10

top = sorted((a.path, a.is_dir) for a in client.list_artifacts(run_id))
assert top == [("outputs", True), ("summary.txt", False)], top
inner = sorted((a.path, a.is_dir, a.file_size) for a in client.list_artifacts(run_id, "outputs"))
assert inner == [("outputs/a.csv", False, 8), ("outputs/nested", True, None)], inner
local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="outputs", dst_path=tempfile.mkdtemp())
with open(os.path.join(local, "nested", "b.bin"), "rb") as f:
    assert f.read() == bytes(range(256)) * 40
with open(os.path.join(local, "a.csv")) as f:
    assert f.read() == "x,y\n1,2\n"

child_run = client.get_run(child_id)
assert child_run.data.tags.get("mlflow.parentRunId") == run_id

found = mlflow.search_runs(
    experiment_ids=[exp.experiment_id],
    filter_string="metrics.acc > 0.9 and params.alpha = '0.5' and tags.team LIKE 'ml%'",
)
assert list(found["run_id"]) == [run_id], found
ordered = client.search_runs([exp.experiment_id], order_by=["metrics.acc DESC"])
assert [r.info.run_id for r in ordered] == [child_id, run_id]
page = client.search_runs([exp.experiment_id], max_results=1, order_by=["attributes.start_time ASC"])
assert len(page) == 1 and page.token, "a next page token"
rest = client.search_runs([exp.experiment_id], max_results=1, order_by=["attributes.start_time ASC"], page_token=page.token)
assert rest[0].info.run_id != page[0].info.run_id
finished = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'")
assert len(finished) == 2

try:
    client.log_param(run_id, "alpha", "0.6")
    raise AssertionError("changing a param must fail")
except mlflow.exceptions.MlflowException as e:
    assert e.error_code == "INVALID_PARAMETER_VALUE", e.error_code

client.delete_run(child_id)
assert [r.info.run_id for r in client.search_runs([exp.experiment_id])] == [run_id]
client.restore_run(child_id)

# Models: log an sklearn model (MLflow 3 logged model + registration), alias it, load it back.
import numpy as np
from sklearn.linear_model import LogisticRegression

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.4], [0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.8, 0.3], [0.3, 0.7]])
y = np.array([0, 1, 1, 1, 0, 0, 1, 0])
clf = LogisticRegression().fit(X, y)
with mlflow.start_run(run_name="train-model") as model_run:
    mlflow.log_metric("train_acc", clf.score(X, y))
    info = mlflow.sklearn.log_model(clf, name="model", registered_model_name="kairo-clf", input_example=X[:2])
assert info.model_id.startswith("m-"), info.model_id
assert str(info.registered_model_version) == "1", info.registered_model_version
client.set_registered_model_alias("kairo-clf", "champion", "1")
loaded = mlflow.pyfunc.load_model("models:/kairo-clf@champion")
assert (loaded.predict(X) == clf.predict(X)).all(), "the served model predicts like the original"
versions = client.search_model_versions("name='kairo-clf'")
assert [v.version for v in versions] == ["1"] and versions[0].aliases == ["champion"], versions
assert versions[0].run_id == model_run.info.run_id
assert client.get_model_version_by_alias("kairo-clf", "champion").version == "1"
assert client.get_registered_model("kairo-clf").aliases == {"champion": "1"}
by_id = mlflow.sklearn.load_model(f"models:/{info.model_id}")
assert (by_id.predict(X) == clf.predict(X)).all()

# Registry searches. The 3.x client appends "tag.`mlflow.prompt.is_prompt` != 'true'" to every
# registered-model filter; a model without that tag must still match, as on MLflow's server.
def names(models):
    return [m.name for m in models]

assert names(client.search_registered_models(filter_string="name='kairo-clf'")) == ["kairo-clf"]
assert names(client.search_registered_models()) == ["kairo-clf"]
client.create_registered_model("kairo-other", tags={"team": "ml-core"})
client.set_registered_model_tag("kairo-clf", "team", "ml")
assert names(client.search_registered_models(filter_string="name LIKE 'kairo-%' AND tags.team = 'ml'")) == ["kairo-clf"]
assert names(client.search_registered_models(filter_string="tag.team ILIKE 'ML%'")) == ["kairo-clf", "kairo-other"]
assert names(client.search_registered_models(filter_string="name IN ('kairo-other', 'nope')")) == ["kairo-other"]
assert names(client.search_registered_models(filter_string="name != 'kairo-clf'")) == ["kairo-other"]
# A prompt (registered by a client that stores prompts, here over plain REST) is left out of
# model searches unless asked for.
prompt = {"name": "kairo-prompt", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]}
request = urllib.request.Request(
    os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/registered-models/create",
    data=json.dumps(prompt).encode(),
    headers={"Content-Type": "application/json"},
)
urllib.request.urlopen(request).read()
assert names(client.search_registered_models()) == ["kairo-clf", "kairo-other"]
assert names(client.search_registered_models(filter_string="name = 'kairo-prompt'")) == []
found_prompts = client.search_registered_models(filter_string="tags.`mlflow.prompt.is_prompt` = 'true'")
assert names(found_prompts) == ["kairo-prompt"]
for unsupported in ["metrics.acc > 1", "run_id = 'x'", "name > 'a'", "tags.team IS NULL", "name = kairo"]:
    try:
        client.search_registered_models(filter_string=unsupported)
        raise AssertionError(f"{unsupported!r} must be refused")
    except mlflow.exceptions.MlflowException as e:
        assert e.error_code == "INVALID_PARAMETER_VALUE", (unsupported, e.error_code)
mvs = client.search_model_versions(f"name='kairo-clf' AND version_number >= 1 AND run_id = '{model_run.info.run_id}'")
assert [(v.name, v.version) for v in mvs] == [("kairo-clf", "1")], mvs
assert client.search_model_versions("name IN ('kairo-clf') AND version_number > 1") == []
try:
    client.search_model_versions("model_id = 'x'")
    raise AssertionError("model_id is not a model version search key on MLflow's server")
except mlflow.exceptions.MlflowException as e:
    assert e.error_code == "INVALID_PARAMETER_VALUE", e.error_code

print(json.dumps({"experiment": exp.experiment_id, "parent": run_id, "child": child_id, "model_run": model_run.info.run_id}))
