-- Kairo's facts about a registered version: the ONNX object it serves, its signature,
-- metrics, and the reference profile of its training data. Immutable once written.
CREATE TABLE model_version_details (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    object TEXT NOT NULL,
    size BIGINT NOT NULL,
    signature TEXT NOT NULL,
    metrics TEXT NOT NULL,
    profile TEXT,
    PRIMARY KEY (name, version)
);

-- A request to move an alias: gates evaluated, approval, outcome.
CREATE TABLE promotions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    alias TEXT NOT NULL,
    status TEXT NOT NULL,
    gates TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    decided_by TEXT,
    reason TEXT,
    created_ms BIGINT NOT NULL,
    decided_ms BIGINT
);
CREATE INDEX promotions_model ON promotions (name, version, alias, status);

-- What a model's endpoint serves: the stable version, an optional candidate (canary or
-- shadow) and its limits. `generation` increases with every change so servers can poll.
CREATE TABLE deployments (
    name TEXT PRIMARY KEY,
    stable_version BIGINT NOT NULL,
    candidate_version BIGINT,
    strategy TEXT NOT NULL,
    weight BIGINT NOT NULL,
    limits TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- Versions that served 100% of a deployment, in order; rollback returns to the previous one.
CREATE TABLE deployment_revisions (
    name TEXT NOT NULL,
    seq BIGINT NOT NULL,
    version BIGINT NOT NULL,
    started_ms BIGINT NOT NULL,
    PRIMARY KEY (name, seq)
);

-- Prediction log segments (Arrow IPC objects in the store), indexed by deployment and time.
CREATE TABLE prediction_segments (
    deployment TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    rows BIGINT NOT NULL,
    object TEXT NOT NULL,
    PRIMARY KEY (deployment, start_ms, object)
);

-- Ground truth that arrives after the prediction, joined by request id.
CREATE TABLE feedback (
    request_id TEXT NOT NULL,
    row_index BIGINT NOT NULL,
    label TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (request_id, row_index)
);
