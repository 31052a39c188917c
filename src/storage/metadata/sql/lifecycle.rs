//! [`LifecycleMetadata`] in SQL: the `lifecycle_policies` and
//! `lifecycle_previews` tables, and the runner's `image_pins`.

use async_trait::async_trait;

use super::{PolicyTable, SqlMetadata, now_ms, repo_name};
use crate::oci::{Digest, RepoName};
use crate::storage::metadata::{
    LifecycleMetadata, LifecycleRecord, MetadataError, PreviewRecord, Result,
};

#[derive(sqlx::FromRow)]
struct PolicyRow {
    text: String,
    last_evaluated_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct PreviewRow {
    text: String,
    status: String,
    results: String,
}

#[async_trait]
impl LifecycleMetadata for SqlMetadata {
    async fn lifecycle_policy(&self, repo: &RepoName) -> Result<Option<LifecycleRecord>> {
        let row: Option<PolicyRow> = sqlx::query_as(
            "SELECT text, last_evaluated_at FROM lifecycle_policies WHERE repository = $1",
        )
        .bind(repo.as_str())
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|row| LifecycleRecord {
            text: row.text,
            last_evaluated_at_ms: row.last_evaluated_at,
        }))
    }

    async fn set_lifecycle_policy(&self, repo: &RepoName, text: Option<&str>) -> Result<bool> {
        self.set_policy_text(PolicyTable::Lifecycle, repo, text)
            .await
    }

    async fn mark_lifecycle_evaluated(&self, repo: &RepoName, at_ms: i64) -> Result<()> {
        sqlx::query("UPDATE lifecycle_policies SET last_evaluated_at = $1 WHERE repository = $2")
            .bind(at_ms)
            .bind(repo.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn repositories_with_lifecycle(&self) -> Result<Vec<RepoName>> {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT repository FROM lifecycle_policies ORDER BY repository")
                .fetch_all(&self.readers)
                .await?;
        names.iter().map(|n| repo_name(n)).collect()
    }

    async fn lifecycle_preview(&self, repo: &RepoName) -> Result<Option<PreviewRecord>> {
        let row: Option<PreviewRow> = sqlx::query_as(
            "SELECT text, status, results FROM lifecycle_previews WHERE repository = $1",
        )
        .bind(repo.as_str())
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|row| PreviewRecord {
            text: row.text,
            status: row.status,
            results: row.results,
        }))
    }

    async fn set_lifecycle_preview(&self, repo: &RepoName, preview: &PreviewRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO lifecycle_previews (repository, text, status, results, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (repository) DO UPDATE SET text = excluded.text, status = excluded.status,
             results = excluded.results, created_at = excluded.created_at",
        )
        .bind(repo.as_str())
        .bind(&preview.text)
        .bind(&preview.status)
        .bind(&preview.results)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn pinned_images(&self, repo: &RepoName) -> Result<Vec<Digest>> {
        let digests: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT digest FROM image_pins WHERE repository = $1")
                .bind(repo.as_str())
                .fetch_all(&self.readers)
                .await?;
        digests
            .into_iter()
            .map(|d| {
                d.parse()
                    .map_err(|e| MetadataError::Corrupt(format!("pinned digest {d}: {e}")))
            })
            .collect()
    }
}
