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
ALTER TABLE repositories ADD COLUMN logical_bytes BIGINT NOT NULL DEFAULT 0;

UPDATE repositories SET logical_bytes = (
    SELECT COALESCE(SUM(b.size), 0) FROM blobs b
     WHERE b.digest IN (SELECT rb.digest FROM repository_blobs rb WHERE rb.repository = repositories.name
                        UNION
                        SELECT m.digest FROM manifests m WHERE m.repository = repositories.name));

CREATE INDEX repositories_by_size ON repositories(logical_bytes, name);

CREATE FUNCTION repository_size_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_repository TEXT;
    row_digest TEXT;
    other_exists BOOLEAN;
    delta_sign BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        row_repository := NEW.repository; row_digest := NEW.digest; delta_sign := 1;
    ELSE
        row_repository := OLD.repository; row_digest := OLD.digest; delta_sign := -1;
    END IF;
    IF TG_TABLE_NAME = 'repository_blobs' THEN
        other_exists := EXISTS (SELECT 1 FROM manifests m WHERE m.repository = row_repository AND m.digest = row_digest);
    ELSE
        other_exists := EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repository = row_repository AND rb.digest = row_digest);
    END IF;
    IF NOT other_exists THEN
        UPDATE repositories
           SET logical_bytes = logical_bytes + delta_sign * COALESCE((SELECT size FROM blobs WHERE digest = row_digest), 0)
         WHERE name = row_repository;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER repository_size_blobs AFTER INSERT OR DELETE ON repository_blobs
    FOR EACH ROW EXECUTE FUNCTION repository_size_change();
CREATE TRIGGER repository_size_manifests AFTER INSERT OR DELETE ON manifests
    FOR EACH ROW EXECUTE FUNCTION repository_size_change();
