//! In-process caches for the hot read path (manifest GET/HEAD).
//!
//! Manifest bodies are immutable by digest, so their cache is never stale.
//! Reference resolutions (tag or digest to record) change when the repository
//! is written; every write in this process bumps the repository's generation,
//! which is part of the cache key, so older entries become unreachable at once.
//! Writes by other processes on the same database (the `wharf lifecycle` CLI)
//! are seen once an entry is older than `RESOLUTION_TTL`. Replicas sharing a
//! database cache no resolutions at all: a tag pushed to one is pulled from
//! another at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::oci::{Digest, Reference, RepoName};
use crate::storage::ManifestRecord;

/// How long a resolution may be served without asking the database again.
const RESOLUTION_TTL: Duration = Duration::from_secs(2);
/// What an entry costs beyond the bytes it holds (key, bookkeeping, allocation).
const ENTRY_OVERHEAD: u64 = 128;

/// Weighs entries by the heap bytes they hold, so a budget in bytes bounds memory.
#[derive(Clone)]
struct HeapWeight;

impl Weighter<Digest, Bytes> for HeapWeight {
    fn weight(&self, digest: &Digest, bytes: &Bytes) -> u64 {
        (digest.hex().len() + bytes.len()) as u64 + ENTRY_OVERHEAD
    }
}

impl Weighter<ResolutionKey, (ManifestRecord, Instant)> for HeapWeight {
    fn weight(
        &self,
        (repo, _, reference): &ResolutionKey,
        (r, _): &(ManifestRecord, Instant),
    ) -> u64 {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        (repo.as_str().len()
            + reference.len()
            + r.digest.hex().len()
            + r.media_type.len()
            + text(&r.artifact_type)
            + text(&r.annotations)) as u64
            + ENTRY_OVERHEAD
    }
}

type ResolutionKey = (RepoName, u64, String);

pub(super) struct ManifestCache {
    bodies: Cache<Digest, Bytes, HeapWeight>,
    resolutions: Cache<ResolutionKey, (ManifestRecord, Instant), HeapWeight>,
    cache_resolutions: bool,
    generations: Mutex<HashMap<RepoName, u64>>,
}

impl ManifestCache {
    /// A cache holding at most about `bytes`: three quarters for manifest
    /// bodies, a quarter for reference resolutions.
    pub fn new(bytes: u64, cache_resolutions: bool) -> Self {
        let resolution_bytes = (bytes / 4).max(1);
        let body_bytes = (bytes - bytes / 4).max(1);
        // Estimated item counts only size the hash tables.
        let items = |budget: u64, typical: u64| (budget / typical).clamp(16, 1 << 20) as usize;
        Self {
            bodies: Cache::with_weighter(items(body_bytes, 1024), body_bytes, HeapWeight),
            resolutions: Cache::with_weighter(
                items(resolution_bytes, 320),
                resolution_bytes,
                HeapWeight,
            ),
            cache_resolutions,
            generations: Mutex::new(HashMap::new()),
        }
    }

    fn generation(&self, repo: &RepoName) -> u64 {
        let generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        generations.get(repo).copied().unwrap_or(0)
    }

    /// The key under which a resolution read now may be cached; take it
    /// *before* asking the database, so a write racing the read wins.
    pub fn resolution_key(&self, repo: &RepoName, reference: &Reference) -> ResolutionKey {
        (repo.clone(), self.generation(repo), reference.to_string())
    }

    pub fn resolution(&self, key: &ResolutionKey) -> Option<ManifestRecord> {
        self.resolutions
            .get(key)
            .filter(|(_, at)| at.elapsed() < RESOLUTION_TTL)
            .map(|(record, _)| record)
    }

    pub fn remember_resolution(&self, key: ResolutionKey, record: ManifestRecord) {
        if !self.cache_resolutions {
            return;
        }
        self.resolutions.insert(key, (record, Instant::now()));
    }

    /// Call after every committed write that can change what a reference of `repo` resolves to.
    pub fn invalidate(&self, repo: &RepoName) {
        let mut generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        *generations.entry(repo.clone()).or_insert(0) += 1;
    }

    pub fn body(&self, digest: &Digest) -> Option<Bytes> {
        self.bodies.get(digest)
    }

    /// Keeps a copy that owns exactly the manifest's bytes: the `Bytes` a
    /// request hands us may be a slice of the connection's read buffer, and
    /// keeping the slice would pin that whole buffer (the layer pushed just
    /// before included) for as long as the entry lives.
    pub fn remember_body(&self, digest: Digest, bytes: &[u8]) {
        self.bodies.insert(digest, Bytes::copy_from_slice(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize, annotations: usize) -> ManifestRecord {
        ManifestRecord {
            digest: Digest::compute(crate::oci::Algorithm::Sha256, &i.to_le_bytes()),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 500,
            artifact_type: None,
            annotations: Some("x".repeat(annotations)),
            pushed_at_ms: 0,
        }
    }

    /// The budget counts the bytes entries hold: large manifests and large
    /// annotations cannot make the cache hold more than it was given.
    #[test]
    fn the_budget_bounds_bytes_not_entries() {
        let budget = 1024 * 1024;
        let cache = ManifestCache::new(budget, true);
        let repo: RepoName = "team/app".parse().unwrap();
        for i in 0..2_000 {
            let r = record(i, 4096);
            cache.remember_body(r.digest.clone(), &vec![b'{'; 8192]);
            let key = cache.resolution_key(&repo, &Reference::Digest(r.digest.clone()));
            cache.remember_resolution(key, r);
        }
        // 2,000 entries of each would be ~24 MiB; the budget is 1 MiB.
        assert!(cache.bodies.weight() <= budget - budget / 4);
        assert!(cache.resolutions.weight() <= budget / 4);
        assert!(cache.bodies.weight() > budget / 2, "the cache is used");
        assert!(cache.bodies.len() < 100);
    }
}
