-- ECS container instances: one record per (cluster, instance), a JSON
-- document like the runner's other records; `version` guards
-- read-modify-write (and is the instance's ECS `version`).
CREATE TABLE container_instances (
    cluster TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (cluster, id)
);
