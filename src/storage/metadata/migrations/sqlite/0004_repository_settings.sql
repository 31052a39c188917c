-- Per-repository settings of the ECR-style API, and resource tags.

ALTER TABLE repositories ADD COLUMN tag_mutability TEXT NOT NULL DEFAULT 'MUTABLE';
ALTER TABLE repositories ADD COLUMN mutability_filters TEXT NOT NULL DEFAULT '[]';  -- JSON array of patterns

CREATE TABLE repository_tags (
    repository  TEXT NOT NULL REFERENCES repositories(name) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (repository, key)
);
