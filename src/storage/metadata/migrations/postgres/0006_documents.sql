-- Control-plane records that are JSON documents to the store (load
-- balancers, listeners, target groups, scalable targets, scaling
-- policies): one row per (kind, key); `version` makes every update a
-- compare-and-swap.
CREATE TABLE documents (
    kind     TEXT COLLATE "C" NOT NULL,
    key      TEXT COLLATE "C" NOT NULL,
    version  BIGINT NOT NULL,
    doc      TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
