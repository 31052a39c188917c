//! Domain errors of the registry services, worded for an operator's log: each
//! HTTP adapter chooses its own wire code and message.
//!
//! Split by who can receive them, so an adapter maps only what its calls
//! return: [`RegistryError`] for content (blobs, uploads, manifests, tags,
//! referrers), the only kind the OCI API calls see; [`RepositoryError`] and
//! [`LifecycleError`] for repository administration and lifecycle policies,
//! which only the ECR API (and the CLI) calls. Each of those adds its own
//! failures to a wrapped `RegistryError`.

use super::lifecycle::PolicyError;
use crate::oci::{Digest, RepoName};
use crate::storage::{BlobMetadataError, ManifestMetadataError, MetadataError, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("blob {0} is not known to this repository")]
    BlobUnknown(Digest),
    #[error("blob {digest} is {size} bytes; the requested range is not satisfiable")]
    RangeNotSatisfiable { digest: Digest, size: u64 },
    #[error("upload session not found")]
    UploadUnknown,
    #[error("upload is at offset {size}; the chunk does not continue it")]
    ChunkOutOfOrder { size: u64 },
    #[error("upload invalid: {0}")]
    UploadInvalid(String),
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("size mismatch: {0}")]
    SizeInvalid(String),
    #[error("manifest {0} is not known to this repository")]
    ManifestUnknown(String),
    #[error("{0}")]
    ManifestInvalid(String),
    #[error("manifest is larger than the {limit} byte limit")]
    ManifestTooLarge { limit: usize },
    #[error("manifest references content this repository does not have: {0:?}")]
    ManifestBlobUnknown(Vec<Digest>),
    #[error("repository {0} is not known")]
    NameUnknown(RepoName),
    #[error(
        "the tag {0} already exists in this repository and cannot be overwritten because it is immutable"
    )]
    TagImmutable(String),
    #[error("blob {0} is referenced by a manifest of this repository; delete the manifest first")]
    BlobInUse(Digest),
    #[error(
        "storage quota of {scope} exceeded: {used} of {limit} bytes used, this push adds {adding}"
    )]
    QuotaExceeded {
        scope: String,
        limit: u64,
        used: u64,
        adding: u64,
    },
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("metadata: {0}")]
    Metadata(MetadataError),
}

impl From<MetadataError> for RegistryError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::Storage(e) => RegistryError::Storage(e),
            other => RegistryError::Metadata(other),
        }
    }
}

impl From<ManifestMetadataError> for RegistryError {
    fn from(e: ManifestMetadataError) -> Self {
        match e {
            ManifestMetadataError::MissingReferences {
                mut blobs,
                manifests,
            } => {
                blobs.extend(manifests);
                RegistryError::ManifestBlobUnknown(blobs)
            }
            ManifestMetadataError::TagImmutable(t) => RegistryError::TagImmutable(t),
            ManifestMetadataError::Store(e) => e.into(),
        }
    }
}

impl From<BlobMetadataError> for RegistryError {
    fn from(e: BlobMetadataError) -> Self {
        match e {
            BlobMetadataError::InUse(d) => RegistryError::BlobInUse(d),
            BlobMetadataError::Store(e) => e.into(),
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    /// A dependency (the blob store, the database) does not answer now; the
    /// adapters answer 503 with `Retry-After` rather than blame themselves.
    pub fn is_unavailable(&self) -> bool {
        match self {
            RegistryError::Storage(e) => e.is_unavailable(),
            RegistryError::Metadata(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

/// Failures of creating and deleting repositories.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("repository {0} exists already")]
    Exists(RepoName),
    #[error("repository {0} still holds images")]
    NotEmpty(RepoName),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<MetadataError> for RepositoryError {
    fn from(e: MetadataError) -> Self {
        RepositoryError::Registry(e.into())
    }
}

/// Failures of storing, reading and previewing lifecycle policies.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("invalid lifecycle policy: {0}")]
    Invalid(#[from] PolicyError),
    #[error("repository {0} has no lifecycle policy")]
    NoPolicy(RepoName),
    #[error("repository {0} has no lifecycle policy preview")]
    NoPreview(RepoName),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<MetadataError> for LifecycleError {
    fn from(e: MetadataError) -> Self {
        LifecycleError::Registry(e.into())
    }
}
