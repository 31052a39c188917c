-- The audit log: who did what, when (pushes, deletes, policy changes,
-- sign-ins, credentials, garbage collections, lifecycle runs). Append-only;
-- `id` orders it and pages it; old entries are pruned by age.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    repository  TEXT NOT NULL DEFAULT '',
    target      TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_by_action ON audit_log (action, id);
CREATE INDEX audit_log_by_repository ON audit_log (repository, id);
CREATE INDEX audit_log_by_time ON audit_log (at);
