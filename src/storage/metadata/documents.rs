//! Control-plane records kept as opaque JSON documents, by kind and key:
//! the load balancer's target groups, load balancers and listeners, and
//! auto scaling's targets and policies. Like the runner's records, every
//! update is a compare-and-swap on `version`.

use async_trait::async_trait;

use super::Result;
use super::runner::Versioned;
use super::sql::{Scope, SqlMetadata};

/// A stored document with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    pub key: String,
    pub version: i64,
    pub doc: String,
}

#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    /// Stores a new document (version 1); false when `(kind, key)` exists.
    async fn insert_document(&self, kind: &str, key: &str, doc: &str) -> Result<bool>;
    async fn document(&self, kind: &str, key: &str) -> Result<Option<Versioned>>;
    /// Every document of a kind, by key.
    async fn documents(&self, kind: &str) -> Result<Vec<Keyed>>;
    /// Replaces a document if its version is still `expected` (the stored
    /// version becomes `expected + 1`); false when it changed meanwhile.
    async fn save_document(&self, kind: &str, key: &str, expected: i64, doc: &str) -> Result<bool>;
    /// Deletes a document if its version is still `expected`; false when it
    /// changed meanwhile or is gone.
    async fn delete_document(&self, kind: &str, key: &str, expected: i64) -> Result<bool>;
}

#[async_trait]
impl DocumentStore for SqlMetadata {
    async fn insert_document(&self, kind: &str, key: &str, doc: &str) -> Result<bool> {
        let mut tx = self.write(Scope::Runner).await?;
        let inserted = sqlx::query(
            "INSERT INTO documents (kind, key, version, doc) VALUES ($1, $2, 1, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(kind)
        .bind(key)
        .bind(doc)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted > 0)
    }

    async fn document(&self, kind: &str, key: &str) -> Result<Option<Versioned>> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT version, doc FROM documents WHERE kind = $1 AND key = $2")
                .bind(kind)
                .bind(key)
                .fetch_optional(&self.readers)
                .await?;
        Ok(row.map(|(version, doc)| Versioned { version, doc }))
    }

    async fn documents(&self, kind: &str) -> Result<Vec<Keyed>> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT key, version, doc FROM documents WHERE kind = $1 ORDER BY key")
                .bind(kind)
                .fetch_all(&self.readers)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(key, version, doc)| Keyed { key, version, doc })
            .collect())
    }

    async fn save_document(&self, kind: &str, key: &str, expected: i64, doc: &str) -> Result<bool> {
        let mut tx = self.write(Scope::Runner).await?;
        let changed = sqlx::query(
            "UPDATE documents SET doc = $1, version = version + 1
             WHERE kind = $2 AND key = $3 AND version = $4",
        )
        .bind(doc)
        .bind(kind)
        .bind(key)
        .bind(expected)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(changed > 0)
    }

    async fn delete_document(&self, kind: &str, key: &str, expected: i64) -> Result<bool> {
        let mut tx = self.write(Scope::Runner).await?;
        let deleted =
            sqlx::query("DELETE FROM documents WHERE kind = $1 AND key = $2 AND version = $3")
                .bind(kind)
                .bind(key)
                .bind(expected)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }
}
