-- Each repository's logical size (the distinct blobs and manifests it can
-- serve, shared blobs counted in each repository, as `wharf du` counts it),
-- stored so the console can list repositories largest first in keyset pages
-- over one index. Triggers keep it exact inside every transaction that links
-- or unlinks a blob or adds or removes a manifest (push, mount, delete, GC,
-- repository deletion), so no write path can forget it. A digest counts once
-- whether it is linked as a blob, recorded as a manifest, or both. Every
-- write touches only the rows of the repository it holds the store's lock
-- for (GC holds them all), so updating that repository's row adds no
-- contention and no lock-order cycle.
ALTER TABLE repositories ADD COLUMN logical_bytes INTEGER NOT NULL DEFAULT 0;

UPDATE repositories SET logical_bytes = (
    SELECT COALESCE(SUM(b.size), 0) FROM blobs b
     WHERE b.digest IN (SELECT rb.digest FROM repository_blobs rb WHERE rb.repository = repositories.name
                        UNION
                        SELECT m.digest FROM manifests m WHERE m.repository = repositories.name));

CREATE INDEX repositories_by_size ON repositories(logical_bytes, name);

CREATE TRIGGER repository_size_link AFTER INSERT ON repository_blobs
WHEN NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository = NEW.repository AND m.digest = NEW.digest)
BEGIN
    UPDATE repositories
       SET logical_bytes = logical_bytes + COALESCE((SELECT size FROM blobs WHERE digest = NEW.digest), 0)
     WHERE name = NEW.repository;
END;

CREATE TRIGGER repository_size_unlink AFTER DELETE ON repository_blobs
WHEN NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository = OLD.repository AND m.digest = OLD.digest)
BEGIN
    UPDATE repositories
       SET logical_bytes = logical_bytes - COALESCE((SELECT size FROM blobs WHERE digest = OLD.digest), 0)
     WHERE name = OLD.repository;
END;

CREATE TRIGGER repository_size_manifest AFTER INSERT ON manifests
WHEN NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repository = NEW.repository AND rb.digest = NEW.digest)
BEGIN
    UPDATE repositories
       SET logical_bytes = logical_bytes + COALESCE((SELECT size FROM blobs WHERE digest = NEW.digest), 0)
     WHERE name = NEW.repository;
END;

CREATE TRIGGER repository_size_unmanifest AFTER DELETE ON manifests
WHEN NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repository = OLD.repository AND rb.digest = OLD.digest)
BEGIN
    UPDATE repositories
       SET logical_bytes = logical_bytes - COALESCE((SELECT size FROM blobs WHERE digest = OLD.digest), 0)
     WHERE name = OLD.repository;
END;
