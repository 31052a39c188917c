//! The SQL of garbage collection. Every statement re-checks its conditions
//! as it deletes, inside the caller's write transaction, so a concurrent push
//! that references something makes it ineligible rather than dangling.
//! Manifests that tasks and services run (`image_pins`) are never swept.

use sqlx::AnyConnection;

use super::{BlobRow, RepoDigestRow};
use crate::oci::{Digest, RepoName};
use crate::storage::metadata::{Result, SweepPolicy, Swept};

/// Indexes may cascade (an index's children become untagged orphans), so
/// manifests are swept until a pass finds nothing, at most this often.
const MAX_PASSES: usize = 64;

const UNTAGGED: &str = "
    DELETE FROM manifests AS m
    WHERE m.pushed_at < $1 AND m.subject IS NULL
      AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = m.repository AND t.manifest = m.digest)
      AND NOT EXISTS (SELECT 1 FROM manifest_children c WHERE c.repository = m.repository AND c.child = m.digest)
      AND NOT EXISTS (SELECT 1 FROM image_pins p WHERE p.repository = m.repository AND p.digest = m.digest)
    RETURNING repository, digest";

const ORPHAN_REFERRERS: &str = "
    DELETE FROM manifests AS m
    WHERE m.pushed_at < $1 AND m.subject IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository = m.repository AND s.digest = m.subject)
      AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = m.repository AND t.manifest = m.digest)
      AND NOT EXISTS (SELECT 1 FROM manifest_children c WHERE c.repository = m.repository AND c.child = m.digest)
      AND NOT EXISTS (SELECT 1 FROM image_pins p WHERE p.repository = m.repository AND p.digest = m.digest)
    RETURNING repository, digest";

const STALE_LINKS: &str = "
    DELETE FROM repository_blobs AS rb
    WHERE rb.linked_at < $1
      AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.repository = rb.repository AND mb.blob = rb.digest)
    RETURNING repository, digest";

const UNREFERENCED: &str = "
    SELECT b.digest, b.size FROM blobs b
    WHERE NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
      AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)
    ORDER BY b.digest";

async fn delete_returning(
    tx: &mut AnyConnection,
    statement: &str,
    before_ms: i64,
) -> Result<Vec<(RepoName, Digest)>> {
    let rows: Vec<RepoDigestRow> = sqlx::query_as(statement)
        .bind(before_ms)
        .fetch_all(&mut *tx)
        .await?;
    rows.into_iter().map(RepoDigestRow::parse).collect()
}

pub(super) async fn sweep(tx: &mut AnyConnection, policy: &SweepPolicy) -> Result<Swept> {
    let mut swept = Swept::default();
    for _ in 0..MAX_PASSES {
        let mut deleted = Vec::new();
        if let Some(before) = policy.untagged_before_ms {
            deleted.extend(delete_returning(tx, UNTAGGED, before).await?);
        }
        if let Some(before) = policy.orphan_referrers_before_ms {
            deleted.extend(delete_returning(tx, ORPHAN_REFERRERS, before).await?);
        }
        if deleted.is_empty() {
            break;
        }
        swept.manifests.extend(deleted);
    }
    swept.links = delete_returning(tx, STALE_LINKS, policy.links_before_ms).await?;
    let rows: Vec<BlobRow> = sqlx::query_as(UNREFERENCED).fetch_all(&mut *tx).await?;
    swept.blobs = rows
        .into_iter()
        .map(BlobRow::parse)
        .collect::<Result<_>>()?;
    Ok(swept)
}

/// Deletes a blob's record if nothing references it; true when it is gone
/// (or never was recorded).
pub(super) async fn forget_blob(tx: &mut AnyConnection, digest: &Digest) -> Result<bool> {
    let d = digest.to_string();
    // One flag: whether a link or a manifest still holds the blob.
    let referenced: i64 = sqlx::query_scalar(
        "SELECT CAST(EXISTS (SELECT 1 FROM repository_blobs WHERE digest = $1)
                  OR EXISTS (SELECT 1 FROM manifests WHERE digest = $1) AS INTEGER)",
    )
    .bind(&d)
    .fetch_one(&mut *tx)
    .await?;
    if referenced != 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM blobs WHERE digest = $1")
        .bind(&d)
        .execute(&mut *tx)
        .await?;
    Ok(true)
}
