-- Prediction-log retention and erasure (issue 21): a segment whose raw rows are gone — past its
-- model's `privacy.retention`, its object unpinned for `kairo data gc` — keeps its index row
-- with the time it was pruned, so windows still count it through its cached sketches.
ALTER TABLE prediction_segments ADD COLUMN pruned_ms BIGINT;
