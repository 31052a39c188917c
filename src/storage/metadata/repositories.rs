//! Repositories and their settings: creation and deletion, tag mutability,
//! resource tags, repository policies, and what their content weighs (usage
//! and quotas). Depends only on the pure `oci` types and this module's shared items.

use async_trait::async_trait;

use super::{Page, Result};
use crate::oci::{Digest, RepoName};

/// A repository and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryRecord {
    pub name: RepoName,
    pub created_at_ms: i64,
    /// `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION` or `MUTABLE_WITH_EXCLUSION`.
    pub tag_mutability: String,
    /// Tag patterns the mutability setting makes an exception for.
    pub mutability_filters: Vec<String>,
    /// Resource tags (key, value).
    pub tags: Vec<(String, String)>,
}

/// What deleting a repository did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryDeletion {
    NotFound,
    /// It holds images and `force` was not given.
    NotEmpty,
    Deleted(RepositoryRecord),
}

/// What a repository's content weighs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryUsage {
    pub repo: RepoName,
    /// Every distinct blob (layers, configs, manifests) the repository can serve.
    pub logical_bytes: u64,
    /// The part of it no other repository shares: what deleting the repository frees.
    pub unique_bytes: u64,
}

/// Repositories, their settings and their weight.
#[async_trait]
pub trait RepositoryMetadata: Send + Sync + 'static {
    /// Repository names in lexical order (the OCI catalog).
    async fn list_repositories(&self, page: Page<'_>) -> Result<Vec<String>>;
    /// Creates a repository with its settings; false when it exists already.
    async fn create_repository(&self, repo: &RepositoryRecord) -> Result<bool>;
    async fn repository(&self, name: &RepoName) -> Result<Option<RepositoryRecord>>;
    async fn repositories(&self, page: Page<'_>) -> Result<Vec<RepositoryRecord>>;
    /// Deletes a repository with its manifests, tags and blob links (the
    /// bytes are reclaimed by garbage collection).
    async fn delete_repository(&self, name: &RepoName, force: bool) -> Result<RepositoryDeletion>;
    async fn set_tag_mutability(
        &self,
        name: &RepoName,
        mutability: &str,
        filters: &[String],
    ) -> Result<bool>;
    /// Adds (or overwrites) and removes resource tags; false when the repository does not exist.
    async fn update_repository_tags(
        &self,
        name: &RepoName,
        add: &[(String, String)],
        remove: &[String],
    ) -> Result<bool>;
    async fn repository_policy(&self, repo: &RepoName) -> Result<Option<String>>;
    /// The policies of those of `repos` that have one, read at once (for a
    /// page that authorizes many repositories).
    async fn repository_policies(&self, repos: &[RepoName]) -> Result<Vec<(RepoName, String)>>;
    /// Stores (`Some`) or deletes (`None`) a repository policy; false when the repository does not exist.
    async fn set_repository_policy(&self, repo: &RepoName, text: Option<&str>) -> Result<bool>;
    /// Storage per repository, in name order; shared blobs count in every
    /// repository's logical size and in nobody's unique bytes.
    async fn usage(&self) -> Result<Vec<RepositoryUsage>>;
    /// Distinct bytes held by the repositories whose names match `pattern`
    /// (`*` any characters), and whether `digest` is already among them.
    async fn quota_usage(&self, pattern: &str, digest: &Digest) -> Result<(u64, bool)>;
}
