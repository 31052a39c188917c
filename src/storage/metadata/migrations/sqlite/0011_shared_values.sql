-- Values every process must share (PostgreSQL replicas keep the token signing
-- key here; the SQLite store has it for symmetry).
CREATE TABLE shared_values (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
