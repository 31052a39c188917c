//! Blob records and their links to repositories: which content is stored,
//! how big it is, and which repositories may serve it. Depends only on the
//! pure `oci` types and this module's shared items.

use async_trait::async_trait;

use super::{MetadataError, Placement, Result, area_error};
use crate::oci::{Digest, RepoName};

/// Why a blob could not be unlinked.
#[derive(Debug, thiserror::Error)]
pub enum BlobMetadataError {
    /// A manifest of the repository still needs this blob.
    #[error("blob {0} is referenced by a manifest")]
    InUse(Digest),
    #[error(transparent)]
    Store(#[from] MetadataError),
}

area_error!(BlobMetadataError);

/// Stored content and the repositories linked to it.
#[async_trait]
pub trait BlobMetadata: Send + Sync + 'static {
    /// Size of a blob if `repo` may serve it.
    async fn repo_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>>;
    /// Records verified content and links it to `repo`, creating the
    /// repository; `place` puts the bytes at the blob's address meanwhile.
    async fn link_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        place: Placement<'_>,
    ) -> Result<()>;
    /// Links content the registry already stores (a cross-repository mount);
    /// false when it is not stored.
    async fn link_existing_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;
    /// Removes a blob from a repository; false when it was not linked.
    async fn unlink_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool, BlobMetadataError>;
    /// The size of a recorded blob.
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>>;
    /// How many blobs are recorded and their total size.
    async fn blob_totals(&self) -> Result<(u64, u64)>;
    /// Every recorded blob that is not quarantined.
    async fn all_blobs(&self) -> Result<Vec<(Digest, u64)>>;
    /// Manifests that are, or reference, this blob.
    async fn users_of(&self, digest: &Digest) -> Result<Vec<(RepoName, Digest)>>;
    /// Marks a blob whose bytes are corrupt as absent (until pushed again) and
    /// runs `move_aside` on its bytes, in one transaction.
    async fn quarantine_blob(&self, digest: &Digest, move_aside: Placement<'_>) -> Result<()>;
}
