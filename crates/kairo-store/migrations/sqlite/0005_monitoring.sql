-- Window sketches of prediction-log segments, counted against a version's reference
-- profile: computed once per (segment, version), merged for any window.
CREATE TABLE monitor_sketches (
    object TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    rows BIGINT NOT NULL,
    sketch TEXT NOT NULL,
    PRIMARY KEY (object, name, version)
);
