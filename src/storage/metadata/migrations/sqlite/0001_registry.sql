-- Core registry metadata: repositories, blobs and their links, manifests with
-- their references, tags, and upload sessions. Times are Unix milliseconds.

CREATE TABLE repositories (
    name        TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

-- Verified content, stored once for the whole registry.
CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Which repositories may serve which blobs.
CREATE TABLE repository_blobs (
    repository  TEXT NOT NULL REFERENCES repositories(name) ON DELETE CASCADE,
    digest      TEXT NOT NULL REFERENCES blobs(digest),
    linked_at   INTEGER NOT NULL,
    PRIMARY KEY (repository, digest)
);

CREATE TABLE manifests (
    repository     TEXT NOT NULL REFERENCES repositories(name) ON DELETE CASCADE,
    digest         TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    size           INTEGER NOT NULL,
    artifact_type  TEXT,
    subject        TEXT,
    annotations    TEXT,
    pushed_at      INTEGER NOT NULL,
    PRIMARY KEY (repository, digest),
    FOREIGN KEY (digest) REFERENCES blobs(digest)
);
CREATE INDEX manifests_by_subject ON manifests(repository, subject) WHERE subject IS NOT NULL;

-- Blobs a manifest needs; the link must exist while the manifest does.
CREATE TABLE manifest_blobs (
    repository  TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    blob        TEXT NOT NULL,
    PRIMARY KEY (repository, manifest, blob),
    FOREIGN KEY (repository, manifest) REFERENCES manifests(repository, digest) ON DELETE CASCADE,
    FOREIGN KEY (repository, blob) REFERENCES repository_blobs(repository, digest)
);
CREATE INDEX manifest_blobs_by_blob ON manifest_blobs(repository, blob);

-- Manifests an index lists.
CREATE TABLE manifest_children (
    repository  TEXT NOT NULL,
    parent      TEXT NOT NULL,
    child       TEXT NOT NULL,
    PRIMARY KEY (repository, parent, child),
    FOREIGN KEY (repository, parent) REFERENCES manifests(repository, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_children_by_child ON manifest_children(repository, child);

CREATE TABLE tags (
    repository  TEXT NOT NULL,
    name        TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, name),
    FOREIGN KEY (repository, manifest) REFERENCES manifests(repository, digest) ON DELETE CASCADE
);

CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    repository  TEXT NOT NULL,
    size        INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
