-- The whole schema of the SQLite migrations 0001-0010, for PostgreSQL.
-- Integers are BIGINT (the store reads them as i64) and flags are 0/1
-- integers, so both databases run the same statements. Names compare and sort
-- bytewise (COLLATE "C"), as OCI's lexical pagination needs. Times are Unix ms.

CREATE TABLE repositories (
    name                TEXT COLLATE "C" PRIMARY KEY,
    created_at          BIGINT NOT NULL,
    tag_mutability      TEXT NOT NULL DEFAULT 'MUTABLE',
    mutability_filters  TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE blobs (
    digest       TEXT COLLATE "C" PRIMARY KEY,
    size         BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    quarantined  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE repository_blobs (
    repository  TEXT COLLATE "C" NOT NULL REFERENCES repositories(name) ON DELETE CASCADE,
    digest      TEXT COLLATE "C" NOT NULL REFERENCES blobs(digest),
    linked_at   BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);

CREATE TABLE manifests (
    repository      TEXT COLLATE "C" NOT NULL REFERENCES repositories(name) ON DELETE CASCADE,
    digest          TEXT COLLATE "C" NOT NULL REFERENCES blobs(digest),
    media_type      TEXT NOT NULL,
    size            BIGINT NOT NULL,
    artifact_type   TEXT,
    subject         TEXT COLLATE "C",
    annotations     TEXT,
    pushed_at       BIGINT NOT NULL,
    last_pulled_at  BIGINT,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX manifests_by_subject ON manifests(repository, subject) WHERE subject IS NOT NULL;
CREATE INDEX manifests_by_digest ON manifests(digest);

CREATE TABLE manifest_blobs (
    repository  TEXT COLLATE "C" NOT NULL,
    manifest    TEXT COLLATE "C" NOT NULL,
    blob        TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (repository, manifest, blob),
    FOREIGN KEY (repository, manifest) REFERENCES manifests(repository, digest) ON DELETE CASCADE,
    FOREIGN KEY (repository, blob) REFERENCES repository_blobs(repository, digest)
);
CREATE INDEX manifest_blobs_by_blob ON manifest_blobs(repository, blob);

CREATE TABLE manifest_children (
    repository  TEXT COLLATE "C" NOT NULL,
    parent      TEXT COLLATE "C" NOT NULL,
    child       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (repository, parent, child),
    FOREIGN KEY (repository, parent) REFERENCES manifests(repository, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_children_by_child ON manifest_children(repository, child);

CREATE TABLE tags (
    repository  TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    manifest    TEXT COLLATE "C" NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, name),
    FOREIGN KEY (repository, manifest) REFERENCES manifests(repository, digest) ON DELETE CASCADE
);

CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    repository   TEXT COLLATE "C" NOT NULL,
    size         BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    last_append  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE users (
    name           TEXT COLLATE "C" PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    groups         TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE access_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT COLLATE "C" NOT NULL UNIQUE,
    secret_hash  TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT
);

CREATE TABLE access_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    "user"      TEXT COLLATE "C" NOT NULL,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX access_keys_by_user ON access_keys("user");

CREATE TABLE repository_tags (
    repository  TEXT COLLATE "C" NOT NULL REFERENCES repositories(name) ON DELETE CASCADE,
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (repository, key)
);

CREATE TABLE lifecycle_policies (
    repository         TEXT COLLATE "C" PRIMARY KEY REFERENCES repositories(name) ON DELETE CASCADE,
    text               TEXT NOT NULL,
    last_evaluated_at  BIGINT
);

CREATE TABLE lifecycle_previews (
    repository  TEXT COLLATE "C" PRIMARY KEY REFERENCES repositories(name) ON DELETE CASCADE,
    text        TEXT NOT NULL,
    status      TEXT NOT NULL,
    results     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE repository_policies (
    repository  TEXT COLLATE "C" PRIMARY KEY REFERENCES repositories(name) ON DELETE CASCADE,
    text        TEXT NOT NULL
);

CREATE TABLE runner_settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE clusters (
    name        TEXT COLLATE "C" PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE task_definitions (
    family    TEXT COLLATE "C" NOT NULL,
    revision  BIGINT NOT NULL,
    active    BIGINT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (family, revision)
);

CREATE TABLE tasks (
    id            TEXT COLLATE "C" PRIMARY KEY,
    -- Insertion order, which SQLite keeps as its implicit rowid.
    rowid         BIGSERIAL,
    cluster       TEXT COLLATE "C" NOT NULL,
    service       TEXT,
    client_token  TEXT,
    live          BIGINT NOT NULL,
    stopped_at    BIGINT,
    version       BIGINT NOT NULL,
    doc           TEXT NOT NULL
);
CREATE INDEX tasks_live ON tasks (live, cluster);
CREATE INDEX tasks_client_token ON tasks (cluster, client_token) WHERE client_token IS NOT NULL;

CREATE TABLE services (
    cluster  TEXT COLLATE "C" NOT NULL,
    name     TEXT COLLATE "C" NOT NULL,
    active   BIGINT NOT NULL,
    version  BIGINT NOT NULL,
    doc      TEXT NOT NULL,
    PRIMARY KEY (cluster, name)
);

CREATE TABLE image_pins (
    holder      TEXT NOT NULL,
    repository  TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (holder, repository, digest)
);
CREATE INDEX image_pins_image ON image_pins (repository, digest);

INSERT INTO clusters (name, created_at) VALUES ('default', (extract(epoch FROM now()) * 1000)::BIGINT);

-- Secrets every replica must share, such as the token signing key (PEM).
CREATE TABLE shared_values (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
