-- The high-water mark of a model name that no longer names a model (deleted, or renamed
-- away). A model created again under that name continues the numbering, so prediction-log
-- segments, sketches, promotions and events that name the old versions never meet a new
-- version with the same number.
CREATE TABLE retired_model_names (
    name TEXT PRIMARY KEY,
    last_version BIGINT NOT NULL
);

-- Before this migration a deleted model's history stayed behind under its name: count it.
INSERT INTO retired_model_names (name, last_version)
SELECT t.name, MAX(t.version) FROM (
    SELECT name, version FROM promotions
    UNION ALL SELECT name, version FROM monitor_sketches
    UNION ALL SELECT name, version FROM deployment_revisions
    UNION ALL SELECT name, stable_version FROM deployments
    UNION ALL SELECT name, candidate_version FROM deployments WHERE candidate_version IS NOT NULL
) AS t
WHERE t.name NOT IN (SELECT name FROM registered_models)
GROUP BY t.name;

-- A model deleted and created again before version numbers were kept may have history with
-- numbers above its current versions: continue above all of them.
UPDATE registered_models SET last_version = (
    SELECT MAX(t.version) FROM (
        SELECT name, last_version AS version FROM registered_models
        UNION ALL SELECT name, version FROM promotions
        UNION ALL SELECT name, version FROM monitor_sketches
        UNION ALL SELECT name, version FROM deployment_revisions
        UNION ALL SELECT name, stable_version FROM deployments
        UNION ALL SELECT name, candidate_version FROM deployments WHERE candidate_version IS NOT NULL
    ) AS t WHERE t.name = registered_models.name
);
