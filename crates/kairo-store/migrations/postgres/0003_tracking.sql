-- Tracking (the MLflow-compatible API): experiments, and per run its params, tags and metric
-- history. Pipeline runs and runs created through the API share the `runs` table.
CREATE TABLE experiments (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL CHECK (lifecycle_stage IN ('active', 'deleted')),
    creation_time BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL
);
INSERT INTO experiments (id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 0, 0);

CREATE TABLE experiment_tags (
    experiment_id BIGINT NOT NULL REFERENCES experiments (id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
);

ALTER TABLE runs ADD COLUMN experiment_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN run_name TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN lifecycle_stage TEXT NOT NULL DEFAULT 'active';
ALTER TABLE runs ADD COLUMN start_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN end_ms BIGINT;
UPDATE runs SET run_name = stage, user_id = actor, start_ms = (EXTRACT(EPOCH FROM started_at::timestamptz) * 1000)::bigint;
CREATE INDEX runs_experiment ON runs (experiment_id, start_ms);

CREATE TABLE run_params (
    run_id TEXT NOT NULL REFERENCES runs (id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE run_tags (
    run_id TEXT NOT NULL REFERENCES runs (id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- Every logged value, in order; NaN is stored as is_nan = 1 (SQLite turns NaN into NULL).
CREATE TABLE run_metrics (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    is_nan BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    step BIGINT NOT NULL,
    model_id TEXT,
    dataset_name TEXT,
    dataset_digest TEXT
);
CREATE INDEX run_metrics_key ON run_metrics (run_id, key, id);

-- The latest value per (run, key): highest step, then timestamp, then value (as MLflow).
CREATE TABLE run_latest_metrics (
    run_id TEXT NOT NULL REFERENCES runs (id),
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    is_nan BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    step BIGINT NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- Keep the latest table current inside the database: one INSERT per logged value, no round trip.
CREATE FUNCTION kairo_run_metrics_latest() RETURNS trigger AS $$
BEGIN
    INSERT INTO run_latest_metrics (run_id, key, value, is_nan, timestamp, step)
    VALUES (NEW.run_id, NEW.key, NEW.value, NEW.is_nan, NEW.timestamp, NEW.step)
    ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan, timestamp = excluded.timestamp, step = excluded.step
    WHERE excluded.step > run_latest_metrics.step
       OR (excluded.step = run_latest_metrics.step AND excluded.timestamp > run_latest_metrics.timestamp)
       OR (excluded.step = run_latest_metrics.step AND excluded.timestamp = run_latest_metrics.timestamp AND excluded.value >= run_latest_metrics.value);
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER run_metrics_latest AFTER INSERT ON run_metrics FOR EACH ROW EXECUTE FUNCTION kairo_run_metrics_latest();

-- Artifacts uploaded through the server: a path under the artifact root → an object.
CREATE TABLE artifacts (
    path TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

-- Run outputs (MLflow 3: which logged models a run produced, at which step).
CREATE TABLE run_outputs (
    run_id TEXT NOT NULL REFERENCES runs (id),
    model_id TEXT NOT NULL,
    step BIGINT NOT NULL,
    PRIMARY KEY (run_id, model_id)
);

-- MLflow 3 logged models: a model's artifacts, params and tags, apart from any run.
CREATE TABLE logged_models (
    id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments (id),
    name TEXT NOT NULL,
    model_type TEXT,
    source_run_id TEXT,
    status TEXT NOT NULL,
    status_message TEXT,
    creator_id TEXT NOT NULL,
    creation_ms BIGINT NOT NULL,
    last_updated_ms BIGINT NOT NULL,
    artifact_uri TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL DEFAULT 'active'
);
CREATE INDEX logged_models_experiment ON logged_models (experiment_id, creation_ms);
CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL REFERENCES logged_models (id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL REFERENCES logged_models (id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

-- The model registry: named models, numbered versions, tags, and aliases.
CREATE TABLE registered_models (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    user_id TEXT NOT NULL,
    creation_ms BIGINT NOT NULL,
    last_updated_ms BIGINT NOT NULL
);
CREATE TABLE registered_model_tags (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);
CREATE TABLE model_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    description TEXT NOT NULL,
    source TEXT NOT NULL,
    run_id TEXT,
    model_id TEXT,
    run_link TEXT NOT NULL,
    status TEXT NOT NULL,
    current_stage TEXT NOT NULL,
    user_id TEXT NOT NULL,
    creation_ms BIGINT NOT NULL,
    last_updated_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE model_version_tags (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key)
);
CREATE TABLE model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias)
);

-- Datasets a run read, as MLflow's `log_input` reports them (name, digest, source, schema...).
CREATE TABLE run_inputs (
    run_id TEXT NOT NULL REFERENCES runs (id),
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source TEXT NOT NULL,
    schema TEXT,
    profile TEXT,
    tags TEXT NOT NULL,
    PRIMARY KEY (run_id, name, digest)
);
