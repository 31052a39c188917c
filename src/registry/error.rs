//! Domain errors of the registry services; the HTTP adapters map them to wire codes.

use crate::oci::{Digest, RepoName};
use crate::storage::{MetadataError, StorageError};

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
    #[error("image {0} is listed by an image index of this repository")]
    ReferencedByIndex(Digest),
    #[error("{0}")]
    LifecycleInvalid(String),
    #[error("Lifecycle policy does not exist for the repository with name '{0}'")]
    LifecyclePolicyNotFound(RepoName),
    #[error("There is no lifecycle policy preview for the repository with name '{0}'")]
    LifecyclePreviewNotFound(RepoName),
    #[error("repository {0} exists already")]
    RepositoryExists(RepoName),
    #[error("repository {0} still holds images")]
    RepositoryNotEmpty(RepoName),
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
            MetadataError::MissingReferences {
                mut blobs,
                manifests,
            } => {
                blobs.extend(manifests);
                RegistryError::ManifestBlobUnknown(blobs)
            }
            MetadataError::BlobInUse(d) => RegistryError::BlobInUse(d),
            MetadataError::TagImmutable(t) => RegistryError::TagImmutable(t),
            MetadataError::Storage(e) => RegistryError::Storage(e),
            other => RegistryError::Metadata(other),
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
