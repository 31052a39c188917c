//! Lifecycle policies: their text, their last evaluation and preview, and the
//! images running tasks pin (which expiry must keep). Depends only on the pure
//! `oci` types and this module's shared items.

use async_trait::async_trait;

use super::Result;
use crate::oci::{Digest, RepoName};

/// A repository's lifecycle policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRecord {
    pub text: String,
    pub last_evaluated_at_ms: Option<i64>,
}

/// The last lifecycle preview of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRecord {
    pub text: String,
    pub status: String,
    /// JSON array of the expiring images.
    pub results: String,
}

/// What lifecycle expiry reads and records.
#[async_trait]
pub trait LifecycleMetadata: Send + Sync + 'static {
    async fn lifecycle_policy(&self, repo: &RepoName) -> Result<Option<LifecycleRecord>>;
    /// Stores (`Some`) or deletes (`None`) a policy; false when the repository does not exist.
    async fn set_lifecycle_policy(&self, repo: &RepoName, text: Option<&str>) -> Result<bool>;
    async fn mark_lifecycle_evaluated(&self, repo: &RepoName, at_ms: i64) -> Result<()>;
    /// Repositories that have a lifecycle policy.
    async fn repositories_with_lifecycle(&self) -> Result<Vec<RepoName>>;
    async fn lifecycle_preview(&self, repo: &RepoName) -> Result<Option<PreviewRecord>>;
    async fn set_lifecycle_preview(&self, repo: &RepoName, preview: &PreviewRecord) -> Result<()>;
    /// Manifests of `repo` that running tasks or active services use (kept
    /// from lifecycle expiry and garbage collection).
    async fn pinned_images(&self, repo: &RepoName) -> Result<Vec<Digest>>;
}
