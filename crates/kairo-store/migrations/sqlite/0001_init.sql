-- Kairo metadata schema v1 (SQLite). Times are RFC 3339 UTC text with milliseconds.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX events_subject ON events (subject, id);
CREATE INDEX events_kind ON events (kind, id);

CREATE TABLE datasets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE dataset_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id INTEGER NOT NULL REFERENCES datasets (id),
    hash TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
    size BIGINT NOT NULL,
    files BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    git_commit TEXT,
    git_branch TEXT,
    UNIQUE (dataset_id, hash)
);

-- Objects that runs, models and other records hold on to; `data gc` never removes these.
CREATE TABLE object_refs (
    hash TEXT NOT NULL,
    owner_kind TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (hash, owner_kind, owner_id)
);
