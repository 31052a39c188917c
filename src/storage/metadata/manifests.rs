//! Manifests, the tags that name them and the referrers that point at them,
//! with the references a manifest holds (blobs, child manifests, subject).
//! Depends only on the pure `oci` types and this module's shared items.

use async_trait::async_trait;

use super::{MetadataError, Page, Placement, Result, area_error};
use crate::oci::{Digest, Reference, RepoName, Tag};

/// Why a manifest could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestMetadataError {
    /// The manifest names blobs or child manifests that the repository lacks.
    #[error("referenced content is missing: {blobs:?} {manifests:?}")]
    MissingReferences {
        blobs: Vec<Digest>,
        manifests: Vec<Digest>,
    },
    /// The push would move an immutable tag to another manifest.
    #[error("tag {0} is immutable")]
    TagImmutable(String),
    #[error(transparent)]
    Store(#[from] MetadataError),
}

area_error!(ManifestMetadataError);

/// A stored manifest, as the API reports it.
#[derive(Debug, Clone)]
pub struct ManifestRecord {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    /// Annotations as JSON text, for the referrers API.
    pub annotations: Option<String>,
    pub pushed_at_ms: i64,
}

/// Everything recorded when a manifest is pushed, in one transaction.
pub struct NewManifest<'a> {
    pub repo: &'a RepoName,
    pub record: ManifestRecord,
    pub blobs: &'a [Digest],
    pub children: &'a [Digest],
    pub subject: Option<&'a Digest>,
    /// For an index: the platforms it lists (for the console's tag list).
    pub platforms: &'a [String],
    pub tags: &'a [Tag],
    /// Tags among `tags` that may not be moved to another manifest.
    pub immutable_tags: &'a [Tag],
    /// Writes the manifest's bytes when they are not stored yet.
    pub place: Placement<'a>,
}

/// A manifest with what the ECR API reports about it.
#[derive(Debug, Clone)]
pub struct ImageRecord {
    pub manifest: ManifestRecord,
    pub tags: Vec<String>,
    /// Sum of the sizes of the blobs it references.
    pub blob_bytes: u64,
    /// Manifests it lists, when it is an index.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
    pub last_pulled_at_ms: Option<i64>,
}

/// Manifests, tags and referrers of one repository at a time.
#[async_trait]
pub trait ManifestMetadata: Send + Sync + 'static {
    /// Records a manifest, its references and tags; checks references in the same transaction.
    async fn put_manifest(&self, manifest: NewManifest<'_>) -> Result<(), ManifestMetadataError>;
    async fn resolve(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<ManifestRecord>>;
    /// Deletes a manifest and the tags pointing at it; false when it was not there.
    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;
    /// Removes one tag and keeps the manifest; false when the tag was not there.
    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool>;
    /// Tags in lexical order; `None` when the repository does not exist.
    async fn list_tags(&self, repo: &RepoName, page: Page<'_>) -> Result<Option<Vec<String>>>;
    /// Manifests whose subject is `subject`, optionally of one artifact type.
    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ManifestRecord>>;
    /// Every manifest of a repository with its tags, sizes and references.
    async fn images(&self, repo: &RepoName) -> Result<Vec<ImageRecord>>;
    /// Records a pull of a manifest (for `sinceImagePulled` and `lastRecordedPullTime`).
    async fn record_pull(&self, repo: &RepoName, digest: &Digest, at_ms: i64) -> Result<()>;
}
