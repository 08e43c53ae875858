-- Version numbers are never reused: each registered model keeps the highest number it ever
-- gave out. Details left behind by versions deleted before this migration (and their pins)
-- are removed; the high-water mark counts them, so their numbers are never given out again.
ALTER TABLE registered_models ADD COLUMN last_version BIGINT NOT NULL DEFAULT 0;
UPDATE registered_models SET last_version = COALESCE((
    SELECT MAX(t.version) FROM (
        SELECT name, version FROM model_versions
        UNION ALL
        SELECT name, version FROM model_version_details
    ) AS t WHERE t.name = registered_models.name
), 0);
DELETE FROM object_refs WHERE owner_kind = 'model_version' AND NOT EXISTS (
    SELECT 1 FROM model_versions v WHERE v.name || '/' || v.version = object_refs.owner_id
);
DELETE FROM model_version_details WHERE NOT EXISTS (
    SELECT 1 FROM model_versions v
    WHERE v.name = model_version_details.name AND v.version = model_version_details.version
);
