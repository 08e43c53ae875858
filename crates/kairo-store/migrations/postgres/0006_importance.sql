-- Permutation feature importance of a version on its holdout, computed at registration.
ALTER TABLE model_version_details ADD COLUMN importance TEXT;
