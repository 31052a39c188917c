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

/// Resolutions kept; each is a few hundred bytes.
const RESOLUTIONS: usize = 100_000;
/// How long a resolution may be served without asking the database again.
const RESOLUTION_TTL: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct BodyWeight;

impl Weighter<Digest, Bytes> for BodyWeight {
    fn weight(&self, _: &Digest, bytes: &Bytes) -> u64 {
        bytes.len() as u64 + 64
    }
}

type ResolutionKey = (RepoName, u64, String);

pub(super) struct ManifestCache {
    bodies: Cache<Digest, Bytes, BodyWeight>,
    resolutions: Cache<ResolutionKey, (ManifestRecord, Instant)>,
    cache_resolutions: bool,
    generations: Mutex<HashMap<RepoName, u64>>,
}

impl ManifestCache {
    pub fn new(body_bytes: u64, cache_resolutions: bool) -> Self {
        Self {
            bodies: Cache::with_weighter(4096, body_bytes.max(1), BodyWeight),
            resolutions: Cache::new(RESOLUTIONS),
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
