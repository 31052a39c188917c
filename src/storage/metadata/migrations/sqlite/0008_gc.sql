-- Garbage collection asks "does anything still reference this digest?" across repositories.

CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);
CREATE INDEX manifests_by_digest ON manifests(digest);
