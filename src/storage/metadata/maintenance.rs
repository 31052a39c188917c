//! Background work and health: the leases that keep a job to one process,
//! garbage collection's metadata half, and the database's own checks.
//! Depends only on the pure `oci` types and this module's shared items.

use async_trait::async_trait;

use super::{Placement, Result};
use crate::oci::{Digest, RepoName};

/// The right to run a background job (garbage collection, lifecycle, the
/// task runner's loop) while it is held: one process at a time across the
/// replicas. Dropping it lets another take the job.
pub struct Lease {
    /// The PostgreSQL session holding the advisory lock; closing it releases
    /// the lock, also when this process dies. SQLite needs none (one process).
    pub(super) connection: Option<sqlx::AnyConnection>,
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

/// Leases, garbage collection and self-checks.
#[async_trait]
pub trait MaintenanceMetadata: Send + Sync + 'static {
    /// Fails when the database does not answer.
    async fn ping(&self) -> Result<()>;
    /// Takes the lease of background job `job`; `None` while another process holds it.
    async fn try_lease(&self, job: &str) -> Result<Option<Lease>>;
    /// Takes the lease of a periodic job unless it is held, or the job last
    /// ran (in any process) less than `every_ms` before `now_ms`; records this run.
    async fn claim_run(&self, job: &str, every_ms: i64, now_ms: i64) -> Result<Option<Lease>>;
    /// Garbage collection's metadata half, in one transaction: deletes expired
    /// manifests and stale blob links (see [`SweepPolicy`]) and reports them
    /// with the blobs nothing references any more. `dry_run` rolls it back.
    async fn sweep(&self, policy: &SweepPolicy, dry_run: bool) -> Result<Swept>;
    /// Forgets a blob nothing references and runs `remove` on its bytes, in
    /// one transaction; false (and `remove` not run) when it is referenced
    /// again. A blob without a record (bytes left by a crash) counts as unreferenced.
    async fn remove_blob(&self, digest: &Digest, remove: Placement<'_>) -> Result<bool>;
    /// Problems the database finds in itself (integrity and foreign keys).
    async fn check_integrity(&self) -> Result<Vec<String>>;
}
