//! Running lifecycle policies: storing them, previewing what they would
//! expire, and expiring for real (deleting manifests and tags; blobs are left
//! to garbage collection).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::json;

use super::lifecycle::{Candidate, Expiry, LifecyclePolicy};
use super::{LifecycleError, Registry, RegistryError, Result, now_ms};
use crate::audit::Audit;
use crate::notifications::{Action, Notice, Notifier};
use crate::oci::{Digest, RepoName};
use crate::storage::metadata::{AuditQuery, AuditRecord};
use crate::storage::{ImageRecord, LifecycleRecord, PreviewRecord};

/// Records a lifecycle run of `repo` that expired `done` as `lifecycle.run`,
/// with the expired images' sizes (manifest and blobs, shared ones
/// included: what garbage collection frees can be less).
pub async fn record_lifecycle(audit: &Audit, actor: &str, repo: &RepoName, done: &[PlannedExpiry]) {
    let bytes: u64 = done
        .iter()
        .map(|p| p.image.blob_bytes.saturating_add(p.image.manifest.size))
        .fold(0, u64::saturating_add);
    let detail = format!("images={} size={bytes}", done.len());
    audit
        .record(actor, "lifecycle.run", repo.as_str(), "", &detail)
        .await;
}

/// Pulls of one manifest are recorded at most this often.
pub(super) const PULL_RECORD_INTERVAL: Duration = Duration::from_secs(60);

/// An image a policy expires, with what the API reports about it.
#[derive(Debug, Clone)]
pub struct PlannedExpiry {
    pub expiry: Expiry,
    pub image: ImageRecord,
}

impl Registry {
    pub async fn put_lifecycle_policy(
        &self,
        repo: &RepoName,
        text: &str,
    ) -> Result<(), LifecycleError> {
        LifecyclePolicy::parse(text)?;
        if self
            .inner
            .meta
            .set_lifecycle_policy(repo, Some(text))
            .await?
        {
            Ok(())
        } else {
            Err(RegistryError::NameUnknown(repo.clone()).into())
        }
    }

    pub async fn lifecycle_policy(
        &self,
        repo: &RepoName,
    ) -> Result<LifecycleRecord, LifecycleError> {
        self.repository(repo).await?;
        self.inner
            .meta
            .lifecycle_policy(repo)
            .await?
            .ok_or_else(|| LifecycleError::NoPolicy(repo.clone()))
    }

    pub async fn delete_lifecycle_policy(
        &self,
        repo: &RepoName,
    ) -> Result<LifecycleRecord, LifecycleError> {
        let record = self.lifecycle_policy(repo).await?;
        self.inner.meta.set_lifecycle_policy(repo, None).await?;
        Ok(record)
    }

    /// What `policy` would expire in `repo` now.
    pub async fn plan_expiry(
        &self,
        repo: &RepoName,
        policy: &LifecyclePolicy,
    ) -> Result<Vec<PlannedExpiry>> {
        let images = self.images(repo).await?;
        let in_use = self.inner.meta.pinned_images(repo).await?;
        // Sets and a map, not scans: linear in the repository's size.
        let listed: HashSet<&Digest> = images.iter().flat_map(|i| &i.children).collect();
        let by_digest: HashMap<&Digest, &ImageRecord> =
            images.iter().map(|i| (&i.manifest.digest, i)).collect();
        let candidates: Vec<Candidate> = images
            .iter()
            .map(|i| Candidate {
                digest: i.manifest.digest.clone(),
                tags: i.tags.clone(),
                pushed_at_ms: i.manifest.pushed_at_ms,
                pulled_at_ms: i.last_pulled_at_ms,
                // Images listed by an index go with the index, never on their
                // own; images that tasks or services run stay.
                pinned: in_use.contains(&i.manifest.digest) || listed.contains(&i.manifest.digest),
            })
            .collect();
        Ok(policy
            .evaluate(&candidates, now_ms())
            .into_iter()
            .filter_map(|expiry| {
                let image = (*by_digest.get(&expiry.digest)?).clone();
                Some(PlannedExpiry { expiry, image })
            })
            .collect())
    }

    /// Evaluates `text` (or the stored policy) without changing anything, and
    /// keeps the result as the repository's preview.
    pub async fn preview_lifecycle(
        &self,
        repo: &RepoName,
        text: Option<&str>,
    ) -> Result<PreviewRecord, LifecycleError> {
        let text = match text {
            Some(t) => t.to_string(),
            None => self.lifecycle_policy(repo).await?.text,
        };
        let policy = LifecyclePolicy::parse(&text)?;
        let planned = self.plan_expiry(repo, &policy).await?;
        let results: Vec<serde_json::Value> = planned
            .iter()
            .map(|p| {
                json!({
                    "digest": p.image.manifest.digest.to_string(),
                    "tags": p.image.tags,
                    "pushed_at_ms": p.image.manifest.pushed_at_ms,
                    "rule_priority": p.expiry.rule_priority,
                })
            })
            .collect();
        // Evaluation is quick enough to finish within the request, so a preview is COMPLETE at once.
        let preview = PreviewRecord {
            text,
            status: "COMPLETE".into(),
            results: serde_json::Value::from(results).to_string(),
        };
        self.inner
            .meta
            .set_lifecycle_preview(repo, &preview)
            .await?;
        Ok(preview)
    }

    pub async fn lifecycle_preview(
        &self,
        repo: &RepoName,
    ) -> Result<PreviewRecord, LifecycleError> {
        self.repository(repo).await?;
        self.inner
            .meta
            .lifecycle_preview(repo)
            .await?
            .ok_or_else(|| LifecycleError::NoPreview(repo.clone()))
    }

    /// Applies the stored policy of `repo`; with `dry_run`, only reports.
    pub async fn run_lifecycle(
        &self,
        repo: &RepoName,
        dry_run: bool,
    ) -> Result<Vec<PlannedExpiry>, LifecycleError> {
        let record = self.lifecycle_policy(repo).await?;
        let policy = LifecyclePolicy::parse(&record.text)?;
        let planned = self.plan_expiry(repo, &policy).await?;
        if !dry_run {
            for p in &planned {
                let images = self.images(repo).await?;
                match self
                    .delete_image(repo, &p.image.manifest.digest, &images)
                    .await
                {
                    Ok(true) => {
                        crate::metrics::metrics().lifecycle_expired.inc();
                    }
                    // Listed by an index since, or gone meanwhile: nothing to expire.
                    Ok(false) | Err(RegistryError::ManifestUnknown(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.inner
                .meta
                .mark_lifecycle_evaluated(repo, now_ms())
                .await?;
        }
        Ok(planned)
    }

    /// The newest `limit` lifecycle runs of `repo` in the audit log
    /// (actions `lifecycle.*`; policy changes are `policy.*`), newest first.
    pub async fn lifecycle_history(&self, repo: &RepoName, limit: u32) -> Result<Vec<AuditRecord>> {
        Ok(self
            .inner
            .meta
            .audit_entries(&AuditQuery {
                before: None,
                action: Some("lifecycle.".into()),
                repository: Some(repo.to_string()),
                limit,
            })
            .await?)
    }

    /// Repositories that have a lifecycle policy (for scheduled runs).
    pub async fn repositories_with_lifecycle(&self) -> Result<Vec<RepoName>> {
        Ok(self.inner.meta.repositories_with_lifecycle().await?)
    }
}

/// Applies every repository's lifecycle policy on a schedule.
pub struct LifecycleSchedule {
    registry: Registry,
    interval: Duration,
    notifier: Notifier,
    audit: Audit,
}

impl LifecycleSchedule {
    pub fn new(registry: Registry, interval: Duration) -> Self {
        Self {
            registry,
            interval,
            notifier: Notifier::default(),
            audit: Audit::default(),
        }
    }

    /// Records every run that expired something, as [`crate::audit::SERVER`]'s.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    /// Sends a delete event for every expired image.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// One pass over every repository with a policy; returns how many images expired.
    /// A failing repository is logged and skipped, so one bad policy cannot stop the rest.
    pub async fn run_once(&self) -> Result<usize> {
        let mut expired = 0;
        for repo in self.registry.repositories_with_lifecycle().await? {
            match self.registry.run_lifecycle(&repo, false).await {
                Ok(done) => {
                    if !done.is_empty() {
                        tracing::info!(repo = %repo, expired = done.len(), "lifecycle policy applied");
                        // Scheduled passes that expire nothing are not recorded.
                        record_lifecycle(&self.audit, crate::audit::SERVER, &repo, &done).await;
                        let notices: Vec<Notice> = done
                            .iter()
                            .map(|p| Notice {
                                action: Action::Delete,
                                repository: repo.to_string(),
                                media_type: Some(p.image.manifest.media_type.clone()),
                                digest: Some(p.image.manifest.digest.to_string()),
                                size: Some(p.image.manifest.size),
                                tag: None,
                            })
                            .collect();
                        self.notifier.notify_job("lifecycle", &notices);
                    }
                    expired += done.len();
                }
                Err(e) => tracing::warn!(repo = %repo, error = %e, "lifecycle policy failed"),
            }
        }
        Ok(expired)
    }

    /// Runs a pass every `interval` (the first after one interval) until `shutdown`.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {
                    // One replica applies the policies per interval; the others skip.
                    let _lease = match self.registry.claim_run("lifecycle", self.interval).await {
                        Ok(Some(lease)) => lease,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "lifecycle: cannot take its lease");
                            continue;
                        }
                    };
                    if let Err(e) = self.run_once().await {
                        tracing::warn!(error = %e, "lifecycle pass failed");
                    }
                }
            }
        }
    }
}
