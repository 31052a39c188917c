//! The transactional metadata store: repositories, blob links, manifests and
//! their references, tags and upload sessions. One trait, one implementation
//! per database; callers never see SQL.

mod credentials;
mod runner;
mod sql;

use async_trait::async_trait;
use futures::future::BoxFuture;
use uuid::Uuid;

use super::{Chunk, StorageError};

use crate::oci::{Digest, Reference, RepoName, Tag};

pub use credentials::{
    AccessKeyRecord, AccessTokenRecord, CredentialStore, UserRecord, UserRemoval,
};
pub use runner::{Pins, RunnerStore, StoredDefinition, TaskRow, Versioned};
pub use sql::{Database, Dialect, SqlMetadata};

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The manifest names blobs or child manifests that the repository lacks.
    #[error("referenced content is missing: {blobs:?} {manifests:?}")]
    MissingReferences {
        blobs: Vec<Digest>,
        manifests: Vec<Digest>,
    },
    /// A manifest of the repository still needs this blob.
    #[error("blob {0} is referenced by a manifest")]
    BlobInUse(Digest),
    /// A unique name is taken.
    #[error("{0}")]
    Conflict(String),
    /// A push would move an immutable tag to another manifest.
    #[error("tag {0} is immutable")]
    TagImmutable(String),
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

/// The right to run a background job (garbage collection, lifecycle, the
/// task runner's loop) while it is held: one process at a time across the
/// replicas. Dropping it lets another take the job.
pub struct Lease {
    /// The PostgreSQL session holding the advisory lock; closing it releases
    /// the lock, also when this process dies. SQLite needs none (one process).
    connection: Option<sqlx::AnyConnection>,
}

impl Lease {
    /// Whether the lease still holds (its database session is alive).
    pub async fn alive(&mut self) -> bool {
        match &mut self.connection {
            None => true,
            Some(connection) => sqlx::query("SELECT 1").execute(connection).await.is_ok(),
        }
    }
}

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

/// Puts a blob's bytes in place (or removes them). The store runs it inside
/// the transaction that records (or forgets) the blob, serialized per digest
/// with garbage collection: bytes are never removed under a blob that is being
/// recorded, nor recorded while being removed.
pub type Placement<'a> = BoxFuture<'a, Result<(), StorageError>>;

/// Everything recorded when a manifest is pushed, in one transaction.
pub struct NewManifest<'a> {
    pub repo: &'a RepoName,
    pub record: ManifestRecord,
    pub blobs: &'a [Digest],
    pub children: &'a [Digest],
    pub subject: Option<&'a Digest>,
    pub tags: &'a [Tag],
    /// Tags among `tags` that may not be moved to another manifest.
    pub immutable_tags: &'a [Tag],
    /// Writes the manifest's bytes when they are not stored yet.
    pub place: Placement<'a>,
}

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

/// What deleting a repository did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryDeletion {
    NotFound,
    /// It holds images and `force` was not given.
    NotEmpty,
    Deleted(RepositoryRecord),
}

/// What garbage collection may delete. Times are Unix milliseconds.
#[derive(Debug, Clone)]
pub struct SweepPolicy {
    /// Blob links no manifest uses are dropped once older than this.
    pub links_before_ms: i64,
    /// Untagged manifests that no index lists and that name no subject are
    /// deleted once pushed before this; `None` keeps them.
    pub untagged_before_ms: Option<i64>,
    /// Referrers whose subject is gone are deleted once pushed before this; `None` keeps them.
    pub orphan_referrers_before_ms: Option<i64>,
}

/// What a sweep deleted (or would delete).
#[derive(Debug, Clone, Default)]
pub struct Swept {
    pub manifests: Vec<(RepoName, Digest)>,
    pub links: Vec<(RepoName, Digest)>,
    /// Recorded blobs nothing references any more, with their sizes.
    pub blobs: Vec<(Digest, u64)>,
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

/// One page of a listing.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    pub last: Option<&'a str>,
    pub limit: u32,
}

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
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
    /// Storage per repository, in name order; shared blobs count in every
    /// repository's logical size and in nobody's unique bytes.
    async fn usage(&self) -> Result<Vec<RepositoryUsage>>;
    /// Every recorded blob that is not quarantined.
    async fn all_blobs(&self) -> Result<Vec<(Digest, u64)>>;
    /// Marks a blob whose bytes are corrupt as absent (until pushed again) and
    /// runs `move_aside` on its bytes, in one transaction.
    async fn quarantine_blob(&self, digest: &Digest, move_aside: Placement<'_>) -> Result<()>;
    /// Manifests that are, or reference, this blob.
    async fn users_of(&self, digest: &Digest) -> Result<Vec<(RepoName, Digest)>>;
    /// Problems the database finds in itself (integrity and foreign keys).
    async fn check_integrity(&self) -> Result<Vec<String>>;
    /// Distinct bytes held by the repositories whose names match `pattern`
    /// (`*` any characters), and whether `digest` is already among them.
    async fn quota_usage(&self, pattern: &str, digest: &Digest) -> Result<(u64, bool)>;
    /// Fails when the database does not answer.
    async fn ping(&self) -> Result<()>;
    /// Takes the lease of background job `job`; `None` while another process holds it.
    async fn try_lease(&self, job: &str) -> Result<Option<Lease>>;
    /// Takes the lease of a periodic job unless it is held, or the job last
    /// ran (in any process) less than `every_ms` before `now_ms`; records this run.
    async fn claim_run(&self, job: &str, every_ms: i64, now_ms: i64) -> Result<Option<Lease>>;
    /// How many blobs are recorded and their total size.
    async fn blob_totals(&self) -> Result<(u64, u64)>;
    /// The size of a recorded blob.
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>>;
    /// Links content the registry already stores (a cross-repository mount);
    /// false when it is not stored.
    async fn link_existing_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;
    /// Removes a blob from a repository; false when it was not linked.
    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;

    /// Records a manifest, its references and tags; checks references in the same transaction.
    async fn put_manifest(&self, manifest: NewManifest<'_>) -> Result<()>;
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
    async fn list_repositories(&self, page: Page<'_>) -> Result<Vec<String>>;
    /// Manifests whose subject is `subject`, optionally of one artifact type.
    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ManifestRecord>>;

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
    /// Manifests of `repo` that running tasks or active services use (kept
    /// from lifecycle expiry and garbage collection).
    async fn pinned_images(&self, repo: &RepoName) -> Result<Vec<Digest>>;
    async fn repository_policy(&self, repo: &RepoName) -> Result<Option<String>>;
    /// Stores (`Some`) or deletes (`None`) a repository policy; false when the repository does not exist.
    async fn set_repository_policy(&self, repo: &RepoName, text: Option<&str>) -> Result<bool>;
    async fn lifecycle_policy(&self, repo: &RepoName) -> Result<Option<LifecycleRecord>>;
    /// Stores (`Some`) or deletes (`None`) a policy; false when the repository does not exist.
    async fn set_lifecycle_policy(&self, repo: &RepoName, text: Option<&str>) -> Result<bool>;
    async fn mark_lifecycle_evaluated(&self, repo: &RepoName, at_ms: i64) -> Result<()>;
    /// Repositories that have a lifecycle policy.
    async fn repositories_with_lifecycle(&self) -> Result<Vec<RepoName>>;
    async fn lifecycle_preview(&self, repo: &RepoName) -> Result<Option<PreviewRecord>>;
    async fn set_lifecycle_preview(&self, repo: &RepoName, preview: &PreviewRecord) -> Result<()>;
    /// Records a pull of a manifest (for `sinceImagePulled` and `lastRecordedPullTime`).
    async fn record_pull(&self, repo: &RepoName, digest: &Digest, at_ms: i64) -> Result<()>;
    /// Every manifest of a repository with its tags, sizes and references.
    async fn images(&self, repo: &RepoName) -> Result<Vec<ImageRecord>>;

    /// Garbage collection's metadata half, in one transaction: deletes expired
    /// manifests and stale blob links (see [`SweepPolicy`]) and reports them
    /// with the blobs nothing references any more. `dry_run` rolls it back.
    async fn sweep(&self, policy: &SweepPolicy, dry_run: bool) -> Result<Swept>;
    /// Forgets a blob nothing references and runs `remove` on its bytes, in
    /// one transaction; false (and `remove` not run) when it is referenced
    /// again. A blob without a record (bytes left by a crash) counts as unreferenced.
    async fn remove_blob(&self, digest: &Digest, remove: Placement<'_>) -> Result<bool>;
    /// Upload sessions untouched since `before_ms`.
    async fn idle_uploads(&self, before_ms: i64) -> Result<Vec<Uuid>>;

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
}
