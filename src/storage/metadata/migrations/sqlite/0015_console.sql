-- Keyset paging of the web console: tags newest first and untagged manifests
-- newest first, each page one range scan of an index.
CREATE INDEX tags_by_update ON tags(repository, updated_at, name);
CREATE INDEX manifests_by_push ON manifests(repository, pushed_at, digest);
-- Which tags name a manifest (untagged filter, the tags shown on an image).
CREATE INDEX tags_by_manifest ON tags(repository, manifest);
-- The platforms an index lists (space-separated), recorded at push for the
-- console's tag list; NULL for images and for indexes pushed before.
ALTER TABLE manifests ADD COLUMN platforms TEXT;
