//! [`BlobMetadata`] in SQL: the `blobs` and `repository_blobs` tables.

use async_trait::async_trait;

use super::{
    BlobRow, RepoDigestRow, Scope, SqlMetadata, ensure_blob, ensure_repository, link, now_ms,
};
use crate::oci::{Digest, RepoName};
use crate::storage::metadata::{BlobMetadata, BlobMetadataError, Placement, Result};

#[async_trait]
impl BlobMetadata for SqlMetadata {
    async fn repo_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
             WHERE rb.repository = $1 AND rb.digest = $2 AND b.quarantined = 0",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.readers)
        .await?;
        Ok(size.map(|s| s as u64))
    }

    async fn link_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        place: Placement<'_>,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write(Scope::Repository(repo)).await?;
        ensure_repository(&mut tx, repo, now).await?;
        ensure_blob(&mut tx, digest, size, now).await?;
        link(&mut tx, repo, digest, now).await?;
        // The write lock is held: garbage collection cannot remove these bytes now.
        place.await?;
        // Content pushed again heals a quarantined blob.
        sqlx::query("UPDATE blobs SET quarantined = 0 WHERE digest = $1 AND quarantined = 1")
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn link_existing_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.write(Scope::Repository(repo)).await?;
        let stored: Option<i64> = sqlx::query_scalar("SELECT 1 FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if stored.is_none() {
            return Ok(false);
        }
        ensure_repository(&mut tx, repo, now).await?;
        link(&mut tx, repo, digest, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn unlink_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool, BlobMetadataError> {
        let mut tx = self.write(Scope::Repository(repo)).await?;
        let used: Option<String> = sqlx::query_scalar(
            "SELECT manifest FROM manifest_blobs WHERE repository = $1 AND blob = $2 LIMIT 1",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if used.is_some() {
            return Err(BlobMetadataError::InUse(digest.clone()));
        }
        let done =
            sqlx::query("DELETE FROM repository_blobs WHERE repository = $1 AND digest = $2")
                .bind(repo.as_str())
                .bind(digest.to_string())
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.readers)
            .await?;
        Ok(size.map(|size| size as u64))
    }

    async fn blob_totals(&self) -> Result<(u64, u64)> {
        #[derive(sqlx::FromRow)]
        struct Totals {
            count: i64,
            bytes: i64,
        }
        let totals: Totals = sqlx::query_as(
            "SELECT COUNT(*) AS count, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM blobs",
        )
        .fetch_one(&self.readers)
        .await?;
        Ok((totals.count as u64, totals.bytes as u64))
    }

    async fn all_blobs(&self) -> Result<Vec<(Digest, u64)>> {
        let rows: Vec<BlobRow> =
            sqlx::query_as("SELECT digest, size FROM blobs WHERE quarantined = 0 ORDER BY digest")
                .fetch_all(&self.readers)
                .await?;
        rows.into_iter().map(BlobRow::parse).collect()
    }

    async fn users_of(&self, blob: &Digest) -> Result<Vec<(RepoName, Digest)>> {
        let rows: Vec<RepoDigestRow> = sqlx::query_as(
            "SELECT repository, manifest AS digest FROM manifest_blobs WHERE blob = $1
             UNION SELECT repository, digest FROM manifests WHERE digest = $1
             ORDER BY 1, 2",
        )
        .bind(blob.to_string())
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter().map(RepoDigestRow::parse).collect()
    }

    async fn quarantine_blob(&self, digest: &Digest, move_aside: Placement<'_>) -> Result<()> {
        let mut tx = self.write(Scope::Everything).await?;
        sqlx::query("UPDATE blobs SET quarantined = 1 WHERE digest = $1")
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        move_aside.await?;
        tx.commit().await?;
        Ok(())
    }
}
