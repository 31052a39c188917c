//! [`UploadMetadata`] in SQL: the `uploads` table. An append moves a
//! session's size by compare-and-swap, so any replica may take the next one.

use async_trait::async_trait;
use uuid::Uuid;

use super::{SqlMetadata, now_ms};
use crate::oci::RepoName;
use crate::storage::metadata::{
    MetadataError, Result, UploadMetadata, UploadProgress, UploadRecord,
};

#[derive(sqlx::FromRow)]
struct UploadRow {
    repository: String,
    size: i64,
    last_append: i64,
    started_at: i64,
    /// Hex of the saved hash state.
    hash_state: Option<String>,
    /// Chunk object names, each preceded by a space.
    chunks: String,
}

#[async_trait]
impl UploadMetadata for SqlMetadata {
    async fn create_upload(&self, id: Uuid, repo: &RepoName) -> Result<()> {
        let now = now_ms();
        sqlx::query("INSERT INTO uploads (id, repository, size, started_at, updated_at) VALUES ($1, $2, 0, $3, $4)")
            .bind(id.to_string())
            .bind(repo.as_str())
            .bind(now)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn upload(&self, id: Uuid) -> Result<Option<UploadRecord>> {
        // Read through the writer so a session's own previous request is always seen.
        let row: Option<UploadRow> = sqlx::query_as(
            "SELECT repository, size, last_append, started_at, hash_state, chunks
             FROM uploads WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.writer)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let corrupt = |what: &str| MetadataError::Corrupt(format!("upload {id}: {what}"));
        Ok(Some(UploadRecord {
            id,
            repo: (row.repository.parse()).map_err(|e| corrupt(&format!("{e}")))?,
            size: row.size as u64,
            last_append: row.last_append as u64,
            started_at_ms: row.started_at,
            hash_state: (row.hash_state)
                .map(|h| hex::decode(h).map_err(|_| corrupt("hash state")))
                .transpose()?,
            chunks: (row.chunks.split_whitespace())
                .map(|c| c.parse().map_err(|()| corrupt(&format!("chunk {c:?}"))))
                .collect::<Result<_>>()?,
        }))
    }

    async fn advance_upload(
        &self,
        id: Uuid,
        from: u64,
        to: u64,
        progress: UploadProgress<'_>,
    ) -> Result<bool> {
        let chunk = progress.chunk.map(|c| format!(" {c}")).unwrap_or_default();
        let done = sqlx::query(
            "UPDATE uploads SET size = $1, last_append = $2, updated_at = $3, hash_state = $4,
                chunks = chunks || $5
             WHERE id = $6 AND size = $7",
        )
        .bind(to as i64)
        .bind(to.saturating_sub(from) as i64)
        .bind(now_ms())
        .bind(progress.hash_state.map(hex::encode))
        .bind(chunk)
        .bind(id.to_string())
        .bind(from as i64)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_upload(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn idle_uploads(&self, before_ms: i64) -> Result<Vec<Uuid>> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM uploads WHERE updated_at < $1")
            .bind(before_ms)
            .fetch_all(&self.readers)
            .await?;
        Ok(ids.into_iter().filter_map(|id| id.parse().ok()).collect())
    }
}
