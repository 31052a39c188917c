//! Upload sessions: what any replica needs to resume an upload, advanced by
//! compare-and-swap on the session's size. Depends only on the pure `oci`
//! types and the staging chunk names.

use async_trait::async_trait;
use uuid::Uuid;

use super::Result;
use crate::oci::RepoName;
use crate::storage::Chunk;

/// An upload session as stored: enough to resume it on any replica.
#[derive(Debug, Clone)]
pub struct UploadRecord {
    pub id: Uuid,
    pub repo: RepoName,
    /// Bytes accepted so far.
    pub size: u64,
    /// Bytes the latest append added.
    pub last_append: u64,
    pub started_at_ms: i64,
    /// The hash state after `size` bytes ([`crate::oci::Hasher::save`]), when known.
    pub hash_state: Option<Vec<u8>>,
    /// The chunk objects holding the bytes, in order (remote staging only).
    pub chunks: Vec<Chunk>,
}

/// What an append records with a session's new size.
#[derive(Debug, Clone, Copy)]
pub struct UploadProgress<'a> {
    /// The hash state after the new size.
    pub hash_state: Option<&'a [u8]>,
    /// The chunk object the append wrote (remote staging).
    pub chunk: Option<Chunk>,
}

/// Upload sessions.
#[async_trait]
pub trait UploadMetadata: Send + Sync + 'static {
    async fn create_upload(&self, id: Uuid, repo: &RepoName) -> Result<()>;
    async fn upload(&self, id: Uuid) -> Result<Option<UploadRecord>>;
    /// Moves an upload's size from `from` to `to` and records `progress`;
    /// false (and nothing recorded) when another writer moved it first.
    async fn advance_upload(
        &self,
        id: Uuid,
        from: u64,
        to: u64,
        progress: UploadProgress<'_>,
    ) -> Result<bool>;
    async fn delete_upload(&self, id: Uuid) -> Result<()>;
    /// Upload sessions untouched since `before_ms`.
    async fn idle_uploads(&self, before_ms: i64) -> Result<Vec<Uuid>>;
}
