-- Serving replicas (issue 19): which `kairo serve` process wrote a prediction-log segment
-- (its random per-start id, the one it holds leases and publishes candidate counts under).
-- Segments written before this migration name none ('').
ALTER TABLE prediction_segments ADD COLUMN replica TEXT NOT NULL DEFAULT '';
