//! Storage adapters: blob content over `object_store`, metadata in a SQL database.
//! Nothing here knows about HTTP.

pub mod blobs;
pub mod metadata;
pub mod private;
pub mod s3;
pub mod staging;

pub use blobs::{
    BlobBody, BlobStore, ByteStream, FileIdentity, Key, LocalFile, StorageError, StoredBlob,
};
pub use metadata::{
    AccessKeyRecord, AccessTokenRecord, AuditEntry, AuditQuery, AuditRecord, AuditStore,
    BlobMetadata, BlobMetadataError, CredentialStore, CredentialStoreError, Database, Dialect,
    ImageRecord, Lease, LifecycleMetadata, LifecycleRecord, MaintenanceMetadata, ManifestMetadata,
    ManifestMetadataError, ManifestRecord, MetadataError, MetadataStore, NewManifest, Page,
    Placement, PreviewRecord, RepositoryDeletion, RepositoryMetadata, RepositoryRecord,
    RepositoryUsage, RunnerStore, RunnerStoreError, SqlMetadata, SweepPolicy, Swept,
    UploadMetadata, UploadProgress, UploadRecord, UserRecord, UserRemoval,
};
pub use staging::{Appended, Chunk, Hold, Staging};
