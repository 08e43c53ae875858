-- Runs: one execution of a pipeline stage. The whole record is JSON in `record`; the columns
-- are what queries filter on. A run is immutable once its status leaves 'running'.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    run_trigger TEXT NOT NULL,
    actor TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    cache_key TEXT NOT NULL,
    cacheable BIGINT NOT NULL,
    reproduces TEXT,
    record TEXT NOT NULL
);
CREATE INDEX runs_stage ON runs (stage, id);
CREATE INDEX runs_cache_key ON runs (cache_key, status);

-- The lineage edges: which path versions a run read (direction 'in') and wrote ('out').
CREATE TABLE run_io (
    run_id TEXT NOT NULL REFERENCES runs (id),
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    path TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (run_id, direction, path)
);
CREATE INDEX run_io_hash ON run_io (hash, direction);
