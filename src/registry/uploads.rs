//! Blob upload sessions (distribution-spec "pushing blobs"): each PATCH appends
//! to the session's staged bytes and records, in one compare-and-swap on the
//! session record, the new size, the hash state after it and (remote staging)
//! the chunk it wrote. So any process (a restarted one, another replica)
//! continues or completes a session without reading its bytes again.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use uuid::Uuid;

use super::{Registry, RegistryError, Result, now_ms};
use crate::metrics::metrics;
use crate::oci::{Algorithm, Digest, Hasher, RepoName};
use crate::storage::{Hold, StorageError, UploadProgress, UploadRecord};

type Slot = Arc<tokio::sync::Mutex<()>>;
type Slots = Arc<Mutex<HashMap<Uuid, Slot>>>;

/// One lock per session in this process: requests to one session take turns
/// here, so only requests on different replicas race (and the session
/// record's compare-and-swap settles those).
#[derive(Default)]
pub(super) struct UploadLocks {
    slots: Slots,
}

/// A request's turn at a session. It ends when the request is done and the
/// staging jobs it started are too: a job outlives a request whose client
/// hung up, and holds the turn ([`Turn::hold`]) so that the next request
/// never writes the session's file alongside it.
pub(super) struct Turn(Arc<Held>);

/// The lock of a turn; the session's lock is forgotten when the last turn
/// ends (sessions often end on another replica).
struct Held {
    slots: Slots,
    id: Uuid,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl UploadLocks {
    async fn turn(&self, id: Uuid) -> Turn {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(id).or_default().clone()
        };
        // Built before waiting, so a waiter dropped while it waits also
        // forgets a lock nobody else holds (Held's drop).
        let mut held = Held {
            slots: self.slots.clone(),
            id,
            guard: None,
        };
        held.guard = Some(slot.lock_owned().await);
        Turn(Arc::new(held))
    }

    #[cfg(test)]
    fn sessions(&self) -> usize {
        self.slots.lock().unwrap().len()
    }
}

impl Turn {
    /// The turn, for staging jobs to keep until they end.
    fn hold(&self) -> Hold {
        self.0.clone()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map holds it: nobody waits for a turn.
        if slots
            .get(&self.id)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            slots.remove(&self.id);
        }
    }
}

/// A `Content-Range` the client sent with a chunk (inclusive bounds).
#[derive(Debug, Clone, Copy)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
}

impl ChunkRange {
    /// Bytes the range covers; `0-18446744073709551615` is one more than a
    /// u64 holds, so this saturates (no body is that long) instead of
    /// wrapping to 0 and passing for an empty chunk.
    pub fn length(&self) -> u64 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }
}

/// A broken request body is the client's fault; anything else is ours.
fn body_error(e: StorageError) -> RegistryError {
    match e {
        StorageError::Body(e) => RegistryError::UploadInvalid(format!("request body: {e}")),
        other => other.into(),
    }
}

/// The hasher that continues a session: a fresh one of `algorithm` while it
/// holds no bytes, else the state its last append saved. `None` (a session
/// from before states were saved): its bytes are hashed again at completion.
fn saved_hasher(session: &UploadRecord, algorithm: Algorithm) -> Option<Hasher> {
    match &session.hash_state {
        _ if session.size == 0 => Some(Hasher::new(algorithm)),
        Some(saved) => Hasher::restore(saved),
        None => None,
    }
}

/// Checks a body's length against what the client declared.
fn check_length(written: u64, declared: Option<u64>) -> Result<()> {
    match declared {
        Some(n) if n != written => Err(RegistryError::SizeInvalid(format!(
            "Content-Length was {n} but {written} bytes arrived"
        ))),
        _ => Ok(()),
    }
}

impl Registry {
    /// Opens an upload session in `repo`.
    pub async fn start_upload(&self, repo: &RepoName) -> Result<Uuid> {
        self.check_pushable(repo).await?;
        let id = Uuid::new_v4();
        self.inner.meta.create_upload(id, repo).await?;
        Ok(id)
    }

    /// Bytes accepted so far by a session.
    pub async fn upload_size(&self, repo: &RepoName, id: Uuid) -> Result<u64> {
        Ok(self.session(repo, id).await?.size)
    }

    /// A session of `repo`, or `UploadUnknown`.
    pub async fn session(&self, repo: &RepoName, id: Uuid) -> Result<crate::storage::UploadRecord> {
        match self.inner.meta.upload(id).await? {
            Some(u) if &u.repo == repo => Ok(u),
            _ => Err(RegistryError::UploadUnknown),
        }
    }

    /// Appends one chunk (or a streamed body) to a session; returns the new size.
    /// Chunks are hashed with sha256 until the final PUT names the algorithm.
    pub async fn append_upload<S>(
        &self,
        repo: &RepoName,
        id: Uuid,
        range: Option<ChunkRange>,
        content_length: Option<u64>,
        body: S,
    ) -> Result<u64>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin + Send,
    {
        self.append(repo, id, range, content_length, body, Algorithm::Sha256)
            .await
    }

    /// `hint` is the algorithm to hash with when this is the session's first data.
    async fn append<S>(
        &self,
        repo: &RepoName,
        id: Uuid,
        range: Option<ChunkRange>,
        content_length: Option<u64>,
        body: S,
        hint: Algorithm,
    ) -> Result<u64>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin + Send,
    {
        let turn = self.inner.uploads.turn(id).await;
        let session = self.session(repo, id).await?;
        let offset = session.size;
        if let Some(r) = range {
            if r.start != offset || r.end < r.start {
                return Err(RegistryError::ChunkOutOfOrder { size: offset });
            }
            if let Some(n) = content_length
                && n != r.length()
            {
                return Err(RegistryError::UploadInvalid(
                    "Content-Range and Content-Length disagree".into(),
                ));
            }
        }
        let mut peek = body.peekable();
        if std::pin::Pin::new(&mut peek).peek().await.is_none() {
            // An empty body stages nothing.
            check_length(0, content_length)?;
            return Ok(offset);
        }
        let hasher = saved_hasher(&session, hint);
        let (appended, hasher) = self
            .inner
            .staging
            .append(id, offset, peek, hasher, turn.hold())
            .await
            .map_err(body_error)?;
        let written = appended.written;
        // A short or long body does not count; the next append replaces its bytes.
        check_length(written, content_length.or(range.map(|r| r.length())))?;
        let hash_state = hasher.as_ref().map(Hasher::save);
        let progress = UploadProgress {
            hash_state: hash_state.as_deref(),
            chunk: appended.chunk,
        };
        if !self
            .inner
            .meta
            .advance_upload(id, offset, offset + written, progress)
            .await?
        {
            let size = self.session(repo, id).await?.size;
            return Err(RegistryError::ChunkOutOfOrder { size });
        }
        Ok(offset + written)
    }

    /// Completes a session: appends the final chunk if any, verifies the digest
    /// and makes the blob visible in `repo`. On a digest mismatch the session
    /// and its staged data are discarded.
    pub async fn complete_upload<S>(
        &self,
        repo: &RepoName,
        id: Uuid,
        expected: &Digest,
        range: Option<ChunkRange>,
        content_length: Option<u64>,
        body: S,
    ) -> Result<u64>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin + Send,
    {
        // A final chunk is checked against the session's offset like a PATCH
        // (416, session unchanged), never appended blindly.
        let size = self
            .append(repo, id, range, content_length, body, expected.algorithm())
            .await?;
        let turn = self.inner.uploads.turn(id).await;
        // Re-read under the lock: a concurrent PUT may have completed it.
        let session = self.session(repo, id).await?;
        let actual = match saved_hasher(&session, expected.algorithm()) {
            Some(h) if h.algorithm() == expected.algorithm() => h.finish(),
            _ => self.rehash(&session, expected.algorithm()).await?,
        };
        let outcome = if &actual == expected {
            match self.check_quota(repo, expected, size).await {
                Ok(()) => {
                    self.inner
                        .staging
                        .prepare(id, &session.chunks, session.size, expected)
                        .await?;
                    let place = self
                        .inner
                        .staging
                        .commit(id, session.size, expected, turn.hold());
                    self.inner
                        .meta
                        .link_blob(repo, expected, size, Box::pin(place))
                        .await
                        .map_err(RegistryError::from)
                }
                Err(e) => Err(e),
            }
        } else {
            Err(RegistryError::DigestMismatch {
                expected: expected.clone(),
                actual,
            })
        };
        if outcome.is_ok() {
            self.inner.staging.committed(id).await?;
            self.inner.meta.delete_upload(id).await?;
        } else {
            self.discard(id, turn.hold()).await?;
        }
        drop(turn);
        if outcome.is_ok() {
            let seconds = (now_ms() - session.started_at_ms).max(0) as f64 / 1000.0;
            metrics().upload_seconds.observe(seconds);
        }
        outcome.map(|()| size)
    }

    /// Cancels a session and removes its staged data.
    pub async fn cancel_upload(&self, repo: &RepoName, id: Uuid) -> Result<()> {
        let turn = self.inner.uploads.turn(id).await;
        self.session(repo, id).await?;
        self.discard(id, turn.hold()).await?;
        Ok(())
    }

    /// Drops a session whatever its state (garbage collection of idle ones).
    pub(super) async fn abandon_upload(&self, id: Uuid) -> Result<()> {
        let turn = self.inner.uploads.turn(id).await;
        self.discard(id, turn.hold()).await?;
        Ok(())
    }

    /// Monolithic upload (`POST ?digest=`): one body, verified, then visible.
    /// It needs no session record: an interrupted one leaves only a staging file.
    pub async fn put_blob<S>(
        &self,
        repo: &RepoName,
        expected: &Digest,
        content_length: Option<u64>,
        body: S,
    ) -> Result<u64>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin + Send,
    {
        self.check_pushable(repo).await?;
        let started = std::time::Instant::now();
        let id = Uuid::new_v4();
        let hasher = Some(Hasher::new(expected.algorithm()));
        let staged = self
            .inner
            .staging
            // A session of its own that no other request can name.
            .append(id, 0, body, hasher, Arc::new(()))
            .await
            .map_err(body_error);
        let chunks: Vec<_> = staged.iter().filter_map(|(a, _)| a.chunk).collect();
        let checked = staged.and_then(|(appended, hasher)| {
            let written = appended.written;
            check_length(written, content_length)?;
            let actual = hasher
                .map(Hasher::finish)
                .ok_or_else(|| RegistryError::UploadInvalid("the upload was not hashed".into()))?;
            if &actual == expected {
                Ok(written)
            } else {
                Err(RegistryError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                })
            }
        });
        let checked = match checked {
            Ok(written) => self
                .check_quota(repo, expected, written)
                .await
                .map(|()| written),
            Err(e) => Err(e),
        };
        let written = match checked {
            Ok(written) => written,
            Err(e) => {
                self.inner.staging.discard(id, Arc::new(())).await?;
                return Err(e);
            }
        };
        if let Err(e) = self
            .inner
            .staging
            .prepare(id, &chunks, written, expected)
            .await
        {
            self.inner.staging.discard(id, Arc::new(())).await?;
            return Err(e.into());
        }
        let place = self
            .inner
            .staging
            .commit(id, written, expected, Arc::new(()));
        let linked = self
            .inner
            .meta
            .link_blob(repo, expected, written, Box::pin(place))
            .await;
        if let Err(e) = linked {
            self.inner.staging.discard(id, Arc::new(())).await?;
            return Err(e.into());
        }
        metrics()
            .upload_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(written)
    }

    /// Hashes a session's staged bytes again, streaming them from staging.
    async fn rehash(&self, session: &UploadRecord, algorithm: Algorithm) -> Result<Digest> {
        let mut hasher = Hasher::new(algorithm);
        let mut stream = self
            .inner
            .staging
            .read(session.id, &session.chunks, session.size)
            .await?;
        while let Some(piece) = stream.next().await {
            hasher.update(&piece?);
        }
        Ok(hasher.finish())
    }

    async fn discard(&self, id: Uuid, hold: Hold) -> Result<()> {
        self.inner.staging.discard(id, hold).await?;
        self.inner.meta.delete_upload(id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The next request's turn waits for the jobs a finished (or dropped)
    /// request left holding its turn, and the lock is forgotten after.
    #[tokio::test]
    async fn a_turn_waits_for_the_jobs_holding_the_last_one() {
        let locks = UploadLocks::default();
        let id = Uuid::new_v4();
        let turn = locks.turn(id).await;
        let job = turn.hold();
        drop(turn);
        let waited = tokio::time::timeout(Duration::from_millis(100), locks.turn(id)).await;
        assert!(waited.is_err(), "a job still holds the session");
        drop(job);
        let next = tokio::time::timeout(Duration::from_secs(5), locks.turn(id))
            .await
            .expect("the turn is free once the job ends");
        drop(next);
        assert_eq!(locks.sessions(), 0, "an idle session's lock is forgotten");
    }

    /// A request that gives up while waiting for its turn leaves no lock behind.
    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_no_lock() {
        let locks = UploadLocks::default();
        let id = Uuid::new_v4();
        let turn = locks.turn(id).await;
        let mut waiter = Box::pin(locks.turn(id));
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        // Released while the waiter waits (it would be next), then it gives up.
        drop(turn);
        drop(waiter);
        assert_eq!(locks.sessions(), 0);
    }
}
