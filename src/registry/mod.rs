//! Domain services of the registry: uploads, blobs, manifests, tags and
//! referrers. Calls `storage`; knows nothing of HTTP.

mod blobs;
mod browse;
mod cache;
mod discovery;
mod error;
mod expiry;
mod fsck;
mod gc;
mod images;
pub mod lifecycle;
mod manifests;
mod quota;
mod repositories;
mod scrub;
mod uploads;
mod verified;

use std::sync::Arc;

use crate::storage::{BlobStore, MetadataStore, Staging};

pub use crate::storage::BlobBody;
/// The console's listing types, as the registry's browse calls take and return them.
pub use crate::storage::metadata::browse::{
    ImageSummary, Listing, ManifestLinks, Order, Position, Reclaim, Reclaimable, RepositoryKey,
    RepositorySummary,
};
pub use blobs::BlobRead;
use cache::ManifestCache;
pub use discovery::{Referrer, TagPage};
pub use error::{LifecycleError, RegistryError, RepositoryError, Result};
pub use expiry::{LifecycleSchedule, PlannedExpiry, record_lifecycle};
pub use fsck::{FsckEvent, FsckReport};
pub use gc::{GcEvent, GcPolicy, GcReport, GcSchedule, record_gc};
pub use manifests::{ManifestRead, PushedManifest};
pub use quota::{Quota, QuotaScope};
pub use repositories::RepositorySettings;
pub use scrub::{ScrubSchedule, ScrubState};
pub use uploads::ChunkRange;
use uploads::UploadLocks;

/// Now, in Unix milliseconds (the unit of every stored time).
pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// Limits the registry enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_manifest_bytes: usize,
    /// Bytes of manifests kept in memory; manifests are immutable by digest.
    pub manifest_cache_bytes: u64,
    /// Whether pushing to a repository that does not exist creates it.
    pub create_on_push: bool,
    /// Whether full blob reads are hashed as they are sent (unless the file
    /// matched its digest less than `verified_for` ago and is unchanged).
    pub verify_reads: bool,
    /// How long a file's match holds: the scrub interval (zero: not at all).
    pub verified_for: std::time::Duration,
    /// Whether blob GETs redirect to a presigned URL of the store (when it can sign).
    pub redirect: bool,
    pub quotas: Vec<Quota>,
    /// Whether other replicas write the same metadata: reference resolutions
    /// are then never cached, so a tag moved anywhere is seen at once.
    pub shared_metadata: bool,
}

/// Recent pull records remembered (~60 bytes each).
const PULL_RECORDS: usize = 20_000;

/// The registry service; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    blobs: BlobStore,
    staging: Staging,
    meta: Arc<dyn MetadataStore>,
    uploads: UploadLocks,
    manifests: ManifestCache,
    /// When each manifest's pull was last recorded, so pulls are written at
    /// most once a minute; keyed by a hash of (repository, digest), 16 bytes.
    pulls: quick_cache::sync::Cache<[u8; 16], std::time::Instant>,
    /// Blob files hashed recently, which reads need not hash again.
    verified: Arc<verified::VerifiedFiles>,
    limits: Limits,
    /// Held while this process collects garbage (the lease is per process
    /// on SQLite): one collection at a time.
    gc_running: tokio::sync::Mutex<()>,
}

impl Registry {
    pub fn new(
        blobs: BlobStore,
        staging: Staging,
        meta: Arc<dyn MetadataStore>,
        limits: Limits,
    ) -> Self {
        let manifests = ManifestCache::new(limits.manifest_cache_bytes, !limits.shared_metadata);
        Self {
            inner: Arc::new(Inner {
                blobs,
                staging,
                meta,
                uploads: UploadLocks::default(),
                manifests,
                // Entries matter for a minute; a forgotten one costs one more write.
                pulls: quick_cache::sync::Cache::new(PULL_RECORDS),
                verified: Arc::new(verified::VerifiedFiles::new(limits.verified_for)),
                limits,
                gc_running: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Whether the metadata database and the blob store both answer.
    pub async fn check_ready(&self) -> Result<()> {
        self.inner.meta.ping().await?;
        self.inner.blobs.check().await?;
        Ok(())
    }

    /// The lease of background job `job` (see [`Lease`](crate::storage::Lease)).
    pub async fn lease(&self, job: &str) -> Result<Option<crate::storage::Lease>> {
        Ok(self.inner.meta.try_lease(job).await?)
    }

    /// The right to run periodic job `job` now: `None` when another replica
    /// runs it or ran it less than `every` ago, so it runs once per period
    /// across all replicas.
    pub async fn claim_run(
        &self,
        job: &str,
        every: std::time::Duration,
    ) -> Result<Option<crate::storage::Lease>> {
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        Ok(self.inner.meta.claim_run(job, every_ms, now_ms()).await?)
    }

    /// Storage per repository (see [`RepositoryUsage`](crate::storage::RepositoryUsage)).
    pub async fn usage(&self) -> Result<Vec<crate::storage::RepositoryUsage>> {
        Ok(self.inner.meta.usage().await?)
    }

    /// How many blobs are stored and their total size (each counted once).
    pub async fn blob_totals(&self) -> Result<(u64, u64)> {
        Ok(self.inner.meta.blob_totals().await?)
    }

    /// Refuses a push to a missing repository unless pushes create repositories.
    async fn check_pushable(&self, repo: &crate::oci::RepoName) -> Result<()> {
        if !self.inner.limits.create_on_push && self.inner.meta.repository(repo).await?.is_none() {
            return Err(RegistryError::NameUnknown(repo.clone()));
        }
        Ok(())
    }
}
