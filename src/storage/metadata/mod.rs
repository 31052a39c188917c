//! The transactional metadata store: repositories, blob links, manifests and
//! their references, tags, upload sessions and background work. One trait per
//! area, [`MetadataStore`] the sum of them; one implementation per database
//! ([`SqlMetadata`]); callers never see SQL.
//!
//! Callers that hold an `Arc<dyn MetadataStore>` call every area's methods
//! without importing the area traits (a trait object's supertrait methods
//! are its own); a caller holding a [`SqlMetadata`] imports the traits it uses.
//!
//! Errors: every method can fail with [`MetadataError`] (the database, a
//! corrupt value, a blob placement), and most fail with nothing else. The few
//! that can fail in their area's own way say so in their signature with the
//! area's error, named after its trait ([`ManifestMetadataError`],
//! [`BlobMetadataError`], [`CredentialStoreError`], [`RunnerStoreError`]),
//! which wraps a `MetadataError` for the rest.

mod audit;
mod blobs;
pub mod browse;
mod credentials;
mod documents;
mod lifecycle;
mod maintenance;
mod manifests;
mod repositories;
mod runner;
mod sql;
mod uploads;

use futures::future::BoxFuture;

use super::StorageError;

pub use audit::{AuditEntry, AuditQuery, AuditRecord, AuditStore};
pub use blobs::{BlobMetadata, BlobMetadataError};
pub use browse::BrowseMetadata;
pub use credentials::{
    AccessKeyRecord, AccessTokenRecord, CredentialStore, CredentialStoreError, UserRecord,
    UserRemoval,
};
pub use documents::{DocumentStore, Keyed};
pub use lifecycle::{LifecycleMetadata, LifecycleRecord, PreviewRecord};
pub use maintenance::{Lease, MaintenanceMetadata, SweepPolicy, Swept};
pub use manifests::{
    ImageRecord, ManifestMetadata, ManifestMetadataError, ManifestRecord, NewManifest,
};
pub use repositories::{RepositoryDeletion, RepositoryMetadata, RepositoryRecord, RepositoryUsage};
pub use runner::{Pins, RunnerStore, RunnerStoreError, StoredDefinition, TaskRow, Versioned};
pub use sql::{Database, Dialect, SqlMetadata};
pub use uploads::{UploadMetadata, UploadProgress, UploadRecord};

/// What any call of the store can fail with; none of it is the caller's doing.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Placing or removing a blob's bytes failed; nothing was recorded.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl MetadataError {
    /// The database (or the blob store, during a placement) does not answer
    /// now: a lost or refused connection, a full pool, a server shutting down.
    pub fn is_unavailable(&self) -> bool {
        match self {
            MetadataError::Database(e) => match e {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_) => true,
                // SQLSTATE classes 08 (connection exception) and 57P (operator
                // intervention: shutdown, crash recovery, cannot connect now).
                sqlx::Error::Database(e) => e
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
                _ => false,
            },
            MetadataError::Storage(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

pub type Result<T, E = MetadataError> = std::result::Result<T, E>;

/// The conversions an area's error (an enum with a `Store(MetadataError)`
/// variant) shares: whatever becomes a `MetadataError` becomes it, so `?`
/// works on database and placement results.
macro_rules! area_error {
    ($area:ident) => {
        impl From<sqlx::Error> for $area {
            fn from(e: sqlx::Error) -> Self {
                $area::Store(e.into())
            }
        }

        impl From<$crate::storage::StorageError> for $area {
            fn from(e: $crate::storage::StorageError) -> Self {
                $area::Store(e.into())
            }
        }
    };
}
use area_error;

/// Puts a blob's bytes in place (or removes them). The store runs it inside
/// the transaction that records (or forgets) the blob, serialized per digest
/// with garbage collection: bytes are never removed under a blob that is being
/// recorded, nor recorded while being removed.
pub type Placement<'a> = BoxFuture<'a, Result<(), StorageError>>;

/// One page of a listing.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    pub last: Option<&'a str>,
    pub limit: u32,
}

/// The whole registry store: every area at once, for the services that are
/// handed one `Arc<dyn MetadataStore>`. Implemented for every type that
/// implements all the areas.
pub trait MetadataStore:
    AuditStore
    + BlobMetadata
    + BrowseMetadata
    + ManifestMetadata
    + RepositoryMetadata
    + LifecycleMetadata
    + UploadMetadata
    + MaintenanceMetadata
{
}

impl<T> MetadataStore for T where
    T: AuditStore
        + BlobMetadata
        + BrowseMetadata
        + ManifestMetadata
        + RepositoryMetadata
        + LifecycleMetadata
        + UploadMetadata
        + MaintenanceMetadata
{
}
