//! The scrub: re-hashes every blob on the local disk once per interval, at a
//! bounded rate, so bytes that rot in place (which no file time shows) are
//! found within one interval, and reads of files it matched need no hashing
//! (see `verified`). It walks the recorded blobs in digest order and saves
//! where it is in `scrub.json` beside the blob tree, so a restart resumes the
//! pass instead of starting it over. Remote stores (S3) are not scrubbed:
//! their reads are always hashed.

use std::io::{Read, Seek};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Registry, now_ms};
use crate::metrics::metrics;
use crate::oci::{Digest, Hasher};
use crate::storage::{BlobBody, FileIdentity, Key, LocalFile, Staging, StorageError};

/// Corrupt blobs remembered in the state file (the newest).
const CORRUPT_KEPT: usize = 100;
/// How often the cursor is saved during a pass.
const SAVE_EVERY: Duration = Duration::from_secs(10);
const READ_SIZE: usize = 1024 * 1024;

/// Where the scrub is, as saved in `scrub.json` and shown by `wharf fsck`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScrubState {
    /// The pass in progress continues after this digest; `None` between passes.
    pub cursor: Option<String>,
    /// When the pass in progress (or the last one) started, Unix ms.
    pub pass_started_ms: i64,
    /// When the last pass finished, Unix ms.
    pub last_pass_completed_ms: Option<i64>,
    /// Blobs and bytes the pass in progress (or the last one) hashed.
    pub blobs: u64,
    pub bytes: u64,
    /// Blobs found not to match their digest, newest last, with when (Unix ms).
    pub corrupt: Vec<(String, i64)>,
    /// Blobs the scrub could not read (permissions, I/O errors), likewise.
    pub unreadable: Vec<(String, i64)>,
}

/// What one blob's scrub found.
enum Outcome {
    Matched(u64),
    Corrupt(u64),
    /// Gone, changed while read, or the scrub was stopped: nothing to say.
    Skipped,
}

/// Scrubs the blobs of a registry on the local disk until shutdown.
pub struct ScrubSchedule {
    registry: Registry,
    state_file: PathBuf,
    interval: Duration,
    /// Bytes per second at most.
    rate: u64,
}

impl Registry {
    /// The scrub of this registry's blobs, when they are on the local disk
    /// and hashing is on; `rate` in bytes per second.
    pub fn scrub_schedule(&self, interval: Duration, rate: u64) -> Option<ScrubSchedule> {
        let Staging::Local(root) = &self.inner.staging else {
            return None;
        };
        let on = self.inner.limits.verify_reads && !interval.is_zero() && rate > 0;
        on.then(|| ScrubSchedule {
            registry: self.clone(),
            state_file: root.join("scrub.json"),
            interval,
            rate,
        })
    }

    /// The scrub's saved state, when the blobs are on the local disk.
    pub fn scrub_state(&self) -> Option<ScrubState> {
        match &self.inner.staging {
            Staging::Local(root) => Some(load(&root.join("scrub.json"))),
            Staging::Remote(_) => None,
        }
    }
}

fn load(path: &std::path::Path) -> ScrubState {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

impl ScrubSchedule {
    /// Runs a pass whenever one is due (one interval after the last began,
    /// or at once if one was interrupted) until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let state = self.load().await;
            let wait = if state.cursor.is_some() {
                Duration::ZERO
            } else {
                let due = state.pass_started_ms + self.interval.as_millis() as i64;
                Duration::from_millis(due.saturating_sub(now_ms()).max(0) as u64)
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            if let Err(e) = self.pass(state, &shutdown).await {
                tracing::warn!(error = %e, "blob scrub failed; retrying in a minute");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
            }
        }
    }

    /// Hashes every recorded blob after the state's cursor (all of them for a
    /// new pass), then marks the pass complete. Stops early on shutdown,
    /// with the cursor saved.
    pub async fn pass(
        &self,
        mut state: ScrubState,
        shutdown: &CancellationToken,
    ) -> Result<ScrubState, super::RegistryError> {
        if state.cursor.is_none() {
            state.pass_started_ms = now_ms();
            state.blobs = 0;
            state.bytes = 0;
        }
        // Every digest in memory once per pass (~100 bytes each); keyset
        // pages would bound it for registries of millions of blobs.
        let mut blobs = self.registry.inner.meta.all_blobs().await?;
        blobs.sort_by_cached_key(|(digest, _)| digest.to_string());
        let resume = state.cursor.clone().unwrap_or_default();
        let started = Instant::now();
        let mut read = 0u64;
        let mut saved = Instant::now();
        for (digest, size) in blobs {
            if digest.to_string() <= resume {
                continue;
            }
            match self.scrub(&digest, size, started, read, shutdown).await {
                Ok(Outcome::Matched(n)) => {
                    read += n;
                    state.blobs += 1;
                    state.bytes += n;
                    metrics().scrub_blobs.inc();
                    metrics().scrub_bytes.inc_by(n);
                }
                Ok(Outcome::Corrupt(n)) => {
                    read += n;
                    state.blobs += 1;
                    state.bytes += n;
                    metrics().scrub_corrupt.inc();
                    tracing::error!(%digest, "scrub: stored blob does not match its digest; run `wharf fsck --repair`");
                    note(&mut state.corrupt, &digest);
                }
                Ok(Outcome::Skipped) => {}
                // One file that cannot be read (permissions, a bad sector) is
                // that blob's problem: the pass goes on.
                Err(e) => {
                    metrics().scrub_unreadable.inc();
                    tracing::error!(%digest, error = %e, "scrub: cannot read a stored blob");
                    note(&mut state.unreadable, &digest);
                }
            }
            if shutdown.is_cancelled() {
                // Stopped within this blob: the next run starts with it.
                self.save(&state).await;
                return Ok(state);
            }
            state.cursor = Some(digest.to_string());
            if saved.elapsed() >= SAVE_EVERY {
                self.save(&state).await;
                saved = Instant::now();
            }
        }
        state.cursor = None;
        // What earlier passes found and this one no longer finds is healed or gone.
        let started_ms = state.pass_started_ms;
        state.corrupt.retain(|(_, found)| *found >= started_ms);
        state.unreadable.retain(|(_, found)| *found >= started_ms);
        let completed = now_ms();
        state.last_pass_completed_ms = Some(completed);
        metrics().scrub_last_pass.set(completed / 1000);
        self.save(&state).await;
        tracing::info!(
            blobs = state.blobs,
            bytes = state.bytes,
            "blob scrub pass complete"
        );
        Ok(state)
    }

    /// Hashes one blob, paced so the pass reads at most `rate` bytes per
    /// second (`read` bytes so far since `started`), and records or forgets it.
    async fn scrub(
        &self,
        digest: &Digest,
        size: u64,
        started: Instant,
        read: u64,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, StorageError> {
        let inner = &self.registry.inner;
        let file = match inner.blobs.open_body(&Key::Blob(digest), None).await {
            Ok(BlobBody::File(file)) => file,
            Ok(BlobBody::Stream(_)) | Err(StorageError::NotFound) => return Ok(Outcome::Skipped),
            Err(e) => return Err(e),
        };
        let (algorithm, rate, stop) = (digest.algorithm(), self.rate, shutdown.clone());
        let hashed = tokio::task::spawn_blocking(move || {
            hash_paced(
                file,
                algorithm,
                Pace {
                    started,
                    read,
                    rate,
                },
                &stop,
            )
        })
        .await
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))??;
        let Some((actual, len, identity)) = hashed else {
            return Ok(Outcome::Skipped);
        };
        if actual == *digest && len == size {
            inner.verified.record(digest, identity);
            Ok(Outcome::Matched(len))
        } else {
            inner.verified.found_corrupt(digest);
            Ok(Outcome::Corrupt(len))
        }
    }

    async fn load(&self) -> ScrubState {
        let path = self.state_file.clone();
        tokio::task::spawn_blocking(move || load(&path))
            .await
            .unwrap_or_default()
    }

    async fn save(&self, state: &ScrubState) {
        let (path, state) = (self.state_file.clone(), state.clone());
        let saved = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let temporary = path.with_extension("json.tmp");
            crate::storage::private::create_file(&temporary)?;
            std::fs::write(&temporary, serde_json::to_vec(&state)?)?;
            std::fs::rename(&temporary, &path)
        })
        .await;
        if let Ok(Err(e)) = saved {
            tracing::warn!(error = %e, "scrub: cannot save its state");
        }
    }
}

/// Remembers a finding about `digest` (the newest `CORRUPT_KEPT`).
fn note(found: &mut Vec<(String, i64)>, digest: &Digest) {
    let digest = digest.to_string();
    found.retain(|(d, _)| *d != digest);
    found.push((digest, now_ms()));
    let excess = found.len().saturating_sub(CORRUPT_KEPT);
    found.drain(..excess);
}

/// The pass's budget: `rate` bytes per second since `started`, `read` spent.
struct Pace {
    started: Instant,
    read: u64,
    rate: u64,
}

/// Hashes a whole file, sleeping as the pace requires; `None` when stopped or
/// when the file changed while it was read (its identity then differs).
fn hash_paced(
    file: LocalFile,
    algorithm: crate::oci::Algorithm,
    mut pace: Pace,
    stop: &CancellationToken,
) -> std::io::Result<Option<(Digest, u64, FileIdentity)>> {
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; READ_SIZE];
    let mut len = 0u64;
    let mut reader = &file.file;
    reader.seek(std::io::SeekFrom::Start(file.range.start))?;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if stop.is_cancelled() {
            return Ok(None);
        }
        hasher.update(&buf[..n]);
        len += n as u64;
        pace.read += n as u64;
        let due = Duration::from_secs_f64(pace.read as f64 / pace.rate as f64);
        while pace.started.elapsed() < due {
            if stop.is_cancelled() {
                return Ok(None);
            }
            let left = due.saturating_sub(pace.started.elapsed());
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
    let after = FileIdentity::of(&file.file.metadata()?);
    let unchanged = after.same_version(&file.identity);
    Ok(unchanged.then(|| (hasher.finish(), len, file.identity)))
}
