//! Online garbage collection: expired manifests, stale blob links, blobs that
//! nothing references, bytes left without a record, and idle upload sessions
//! are removed while pushes and pulls go on. Safety rests on the metadata
//! store: a sweep re-checks every condition as it deletes, and a blob's bytes
//! are removed only inside the transaction that forgets it, serialized with
//! any push that records it again.

use std::collections::HashSet;
use std::time::Duration;

use futures::TryStreamExt;

use super::{Registry, Result, now_ms};
use crate::audit::Audit;
use crate::metrics::metrics;
use crate::notifications::{Action, Notice, Notifier};
use crate::oci::{Digest, RepoName};
use crate::storage::{Key, StoredBlob, SweepPolicy};

/// What a collection may remove.
#[derive(Debug, Clone)]
pub struct GcPolicy {
    /// Blobs linked (uploaded or mounted) more recently than this are kept
    /// even if no manifest uses them yet: their manifest may be on its way.
    pub grace: Duration,
    /// Untagged manifests that no index lists and that have no subject are
    /// deleted once this old; `None` keeps them.
    pub untagged_after: Option<Duration>,
    /// Whether referrers (signatures, SBOMs) whose subject is gone are deleted
    /// (once older than the grace period).
    pub orphan_referrers: bool,
    /// Upload sessions untouched this long are abandoned.
    pub upload_idle: Duration,
}

/// What one collection removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    pub manifests: Vec<(RepoName, Digest)>,
    pub links: usize,
    pub blobs: Vec<(Digest, u64)>,
    pub uploads: usize,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|(_, size)| size).sum()
    }
}

/// Records a collection in the audit log (`gc.run` or `gc.dry_run`, with
/// its counts and bytes): the one place a collection is recorded, by the
/// schedule, `wharf gc` and the console alike.
pub async fn record_gc(audit: &Audit, actor: &str, dry_run: bool, report: &GcReport) {
    let action = if dry_run { "gc.dry_run" } else { "gc.run" };
    let detail = format!(
        "manifests={} links={} blobs={} bytes={} uploads={}",
        report.manifests.len(),
        report.links,
        report.blobs.len(),
        report.bytes(),
        report.uploads
    );
    audit.record(actor, action, "", "", &detail).await;
}

/// Progress of a collection, for a progress bar or log lines.
pub enum GcEvent<'a> {
    /// The metadata sweep is done; this many blobs are candidates for removal.
    Candidates(usize),
    /// One candidate was handled; `removed` is false when it was referenced again.
    Blob {
        digest: &'a Digest,
        size: u64,
        removed: bool,
    },
}

fn before(now: i64, age: Duration) -> i64 {
    now.saturating_sub(age.as_millis() as i64)
}

impl Registry {
    /// Collects garbage once. `dry_run` changes nothing and reports what a
    /// run would remove now.
    pub async fn collect_garbage(
        &self,
        policy: &GcPolicy,
        dry_run: bool,
        on_event: &(dyn Fn(GcEvent<'_>) + Send + Sync),
    ) -> Result<GcReport> {
        let now = now_ms();
        let grace_cutoff = before(now, policy.grace);
        let sweep = SweepPolicy {
            links_before_ms: grace_cutoff,
            untagged_before_ms: policy.untagged_after.map(|age| before(now, age)),
            orphan_referrers_before_ms: policy.orphan_referrers.then_some(grace_cutoff),
        };
        let swept = self.inner.meta.sweep(&sweep, dry_run).await?;
        if !dry_run {
            let repos: HashSet<&RepoName> = swept.manifests.iter().map(|(r, _)| r).collect();
            for repo in repos {
                self.inner.manifests.invalidate(repo);
            }
        }

        // Candidates: recorded blobs nothing references, and stored bytes
        // without a record (a crash between placing and recording) older than the grace.
        let mut candidates = swept.blobs.clone();
        let recorded: HashSet<Digest> = candidates.iter().map(|(d, _)| d.clone()).collect();
        let orphans = self
            .unrecorded_blobs(grace_cutoff, &|d| recorded.contains(d))
            .await?;
        candidates.extend(orphans.into_iter().map(|b| (b.digest, b.size)));
        on_event(GcEvent::Candidates(candidates.len()));

        let mut report = GcReport {
            manifests: swept.manifests,
            links: swept.links.len(),
            ..Default::default()
        };
        for (digest, size) in candidates {
            let removed = if dry_run {
                true
            } else {
                let blobs = &self.inner.blobs;
                let key = Key::Blob(&digest);
                let remove = Box::pin(async move { blobs.delete(&key).await });
                self.inner.meta.remove_blob(&digest, remove).await?
            };
            on_event(GcEvent::Blob {
                digest: &digest,
                size,
                removed,
            });
            if removed {
                report.blobs.push((digest, size));
            }
        }

        report.uploads = self
            .abandon_idle_uploads(before(now, policy.upload_idle), dry_run)
            .await?;
        if !dry_run {
            let m = metrics();
            m.gc_runs.inc();
            m.gc_blobs_removed.inc_by(report.blobs.len() as u64);
            m.gc_bytes_reclaimed.inc_by(report.bytes());
        }
        Ok(report)
    }

    /// Collects garbage now, on demand (`wharf gc`, the console), and
    /// records it in `audit` as `actor`'s. A run takes the collection's
    /// lease first, as the schedule does, so two never run at once: `None`
    /// when another collection holds it. A dry run changes nothing and
    /// needs no lease.
    pub async fn collect_garbage_now(
        &self,
        policy: &GcPolicy,
        dry_run: bool,
        audit: &Audit,
        actor: &str,
        on_event: &(dyn Fn(GcEvent<'_>) + Send + Sync),
    ) -> Result<Option<GcReport>> {
        let report = if dry_run {
            self.collect_garbage(policy, true, on_event).await?
        } else {
            // In this process (SQLite's lease is the process) and across replicas.
            let Ok(_running) = self.inner.gc_running.try_lock() else {
                return Ok(None);
            };
            let Some(_lease) = self.claim_run("gc", Duration::ZERO).await? else {
                return Ok(None);
            };
            self.collect_garbage(policy, false, on_event).await?
        };
        record_gc(audit, actor, dry_run, &report).await;
        Ok(Some(report))
    }

    /// Stored bytes without any record (left by a crash between writing and
    /// recording) last modified before `before_ms`; `known` names digests the
    /// caller already knows to be recorded, sparing a query each.
    pub(super) async fn unrecorded_blobs(
        &self,
        before_ms: i64,
        known: &(dyn Fn(&Digest) -> bool + Send + Sync),
    ) -> Result<Vec<StoredBlob>> {
        let mut orphans = Vec::new();
        let mut stored = self.inner.blobs.list_blobs();
        while let Some(blob) = stored.try_next().await? {
            if blob.modified_ms < before_ms
                && !known(&blob.digest)
                && self.inner.meta.blob_size(&blob.digest).await?.is_none()
            {
                orphans.push(blob);
            }
        }
        Ok(orphans)
    }

    /// Removes upload sessions idle since `before_ms`, and staged files of that
    /// age that belong to no session (an interrupted monolithic upload).
    async fn abandon_idle_uploads(&self, before_ms: i64, dry_run: bool) -> Result<usize> {
        let mut ids = self.inner.meta.idle_uploads(before_ms).await?;
        for id in self.inner.staging.files_older_than(before_ms).await? {
            if !ids.contains(&id) && self.inner.meta.upload(id).await?.is_none() {
                ids.push(id);
            }
        }
        if !dry_run {
            for id in &ids {
                self.abandon_upload(*id).await?;
            }
        }
        Ok(ids.len())
    }
}

/// Runs collections on a schedule until shutdown.
pub struct GcSchedule {
    registry: Registry,
    policy: GcPolicy,
    interval: Duration,
    notifier: Notifier,
    audit: Audit,
}

impl GcSchedule {
    pub fn new(registry: Registry, policy: GcPolicy, interval: Duration) -> Self {
        Self {
            registry,
            policy,
            interval,
            notifier: Notifier::default(),
            audit: Audit::default(),
        }
    }

    /// Records every collection in the audit log, as [`crate::audit::SERVER`]'s.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    /// Sends a delete event for every manifest a collection deletes.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Collects every `interval` (the first after one interval) until `shutdown`.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {
                    // One replica collects per interval; the others skip.
                    let _lease = match self.registry.claim_run("gc", self.interval).await {
                        Ok(Some(lease)) => lease,
                        Ok(None) => {
                            tracing::debug!("garbage collection left to the replica that holds its lease");
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "garbage collection: cannot take its lease");
                            continue;
                        }
                    };
                    let Ok(_running) = self.registry.inner.gc_running.try_lock() else {
                        continue;
                    };
                    match self.registry.collect_garbage(&self.policy, false, &|_| {}).await {
                        Ok(r) => {
                            record_gc(&self.audit, crate::audit::SERVER, false, &r).await;
                            tracing::info!(
                                manifests = r.manifests.len(), links = r.links, blobs = r.blobs.len(),
                                bytes = r.bytes(), uploads = r.uploads, "garbage collected"
                            );
                            let notices: Vec<Notice> = r.manifests.iter().map(|(repo, digest)| Notice {
                                action: Action::Delete,
                                repository: repo.to_string(),
                                media_type: None,
                                digest: Some(digest.to_string()),
                                size: None,
                                tag: None,
                            }).collect();
                            self.notifier.notify_job("gc", &notices);
                        }
                        Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
                    }
                }
            }
        }
    }
}
