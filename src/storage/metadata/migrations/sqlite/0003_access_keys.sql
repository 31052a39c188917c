-- AWS-style access keys (SigV4) that users sign ECR/ECS API requests with.
-- SigV4 needs the secret itself to recompute signatures, so it is stored as is.

CREATE TABLE access_keys (
    id          TEXT PRIMARY KEY,   -- access key id, AKIA...
    user        TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX access_keys_by_user ON access_keys(user);
