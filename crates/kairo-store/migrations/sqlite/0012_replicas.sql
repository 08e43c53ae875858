-- Serving replicas (issue 19): N `kairo serve` processes share one database.

-- What each replica saw of a deployment's candidate, per deployment generation: its running
-- totals, overwritten by the replica itself every poll (so nothing double counts). The rollout
-- guard judges the candidate on the sum over replicas. `latency` is the encoded histogram of
-- `kairo_core::latency::Histogram`.
CREATE TABLE candidate_counts (
    deployment TEXT NOT NULL,
    generation BIGINT NOT NULL,
    replica TEXT NOT NULL,
    version BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    latency TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (deployment, generation, replica)
);

-- Leases: who does a job that must be done once (the rollout guard of a deployment), until
-- when. The holder renews before it expires; anyone takes an expired one.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
