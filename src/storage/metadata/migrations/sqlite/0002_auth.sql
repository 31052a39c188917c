-- Users managed with `wharf user`, and access tokens for machines (`wharf token`).

CREATE TABLE users (
    name           TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,   -- argon2 PHC string
    groups         TEXT NOT NULL,   -- JSON array of group names
    created_at     INTEGER NOT NULL
);

CREATE TABLE access_tokens (
    id           TEXT PRIMARY KEY,  -- public part of the secret
    name         TEXT NOT NULL UNIQUE,
    secret_hash  TEXT NOT NULL,     -- hex SHA-256 of the secret (the secret is random, 256 bits)
    scopes       TEXT NOT NULL,     -- JSON array of scope strings
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER            -- NULL: never
);
