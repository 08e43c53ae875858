-- The team server's identities (issue "team server"). Credentials are never stored: a
-- password as an argon2id PHC string, a token as the BLAKE3 hash of its secret.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'service')),
    password_hash TEXT,
    created_ms BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    disabled_ms BIGINT
);

-- API tokens: `kairo_<id>_<secret>`. `grants` narrows what the token may do to some of its
-- user's grants (empty: all of them).
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name),
    hash TEXT NOT NULL,
    note TEXT NOT NULL,
    grants TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT,
    revoked_ms BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_name);

-- Roles granted to users: globally (`*`) or on `model:NAME` / `experiment:ID`.
CREATE TABLE grants (
    user_name TEXT NOT NULL REFERENCES users (name),
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (user_name, role, scope)
);

-- The event log as a hash chain: each event's hash covers its fields and the hash of the event
-- before it (`kairo_core::event::chain_hash`), so an edited or deleted event is found by
-- `kairo events verify`. Events written before this migration have none.
ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN hash TEXT;
