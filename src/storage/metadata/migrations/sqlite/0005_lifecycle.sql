-- Lifecycle policies per repository, their last preview, and pull times.

CREATE TABLE lifecycle_policies (
    repository         TEXT PRIMARY KEY REFERENCES repositories(name) ON DELETE CASCADE,
    text               TEXT NOT NULL,
    last_evaluated_at  INTEGER
);

CREATE TABLE lifecycle_previews (
    repository  TEXT PRIMARY KEY REFERENCES repositories(name) ON DELETE CASCADE,
    text        TEXT NOT NULL,
    status      TEXT NOT NULL,
    results     TEXT NOT NULL,  -- JSON array of {digest, rule_priority}
    created_at  INTEGER NOT NULL
);

ALTER TABLE manifests ADD COLUMN last_pulled_at INTEGER;
