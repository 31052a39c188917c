-- The task runner's state: ECS clusters, task definitions, tasks and services.
-- Records are JSON documents (their ECS shape plus what the runner keeps);
-- the columns are what queries filter on. `version` guards read-modify-write.
CREATE TABLE runner_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE clusters (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);

CREATE TABLE task_definitions (
    family TEXT NOT NULL,
    revision INTEGER NOT NULL,
    active INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (family, revision)
);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    cluster TEXT NOT NULL,
    service TEXT,
    client_token TEXT,
    live INTEGER NOT NULL,
    stopped_at INTEGER,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX tasks_live ON tasks (live, cluster);
CREATE INDEX tasks_client_token ON tasks (cluster, client_token) WHERE client_token IS NOT NULL;

CREATE TABLE services (
    cluster TEXT NOT NULL,
    name TEXT NOT NULL,
    active INTEGER NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (cluster, name)
);

-- Images a live task or an active service deployment runs: kept from
-- lifecycle expiry and garbage collection. holder = task id or service key.
CREATE TABLE image_pins (
    holder TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (holder, repository, digest)
);
CREATE INDEX image_pins_image ON image_pins (repository, digest);

INSERT INTO clusters (name, created_at) VALUES ('default', CAST(strftime('%s', 'now') AS INTEGER) * 1000);
