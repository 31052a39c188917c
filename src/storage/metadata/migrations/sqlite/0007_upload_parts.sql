-- The size of an upload's latest append: ECR's layer-part rule (non-final
-- parts of at least 5 MiB) is checked when the next part arrives.

ALTER TABLE uploads ADD COLUMN last_append INTEGER NOT NULL DEFAULT 0;
