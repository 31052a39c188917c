-- Blobs whose stored bytes failed verification (`wharf fsck --repair`): moved
-- aside and treated as absent until the same content is pushed again.

ALTER TABLE blobs ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0;
