//! Reading, mounting and unlinking blobs of a repository.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::verified::VerifiedFiles;
use super::{Registry, RegistryError, Result};
use crate::metrics::metrics;
use crate::oci::{Digest, Hasher, RepoName};
use crate::storage::{BlobBody, ByteStream, FileIdentity, Key, StorageError};

/// Chunks read ahead of the hasher at most; bounds memory per pull.
const HASH_QUEUE: usize = 4;

/// Hashes a full read as it streams, on the blocking pool so hashing chunk
/// `n` overlaps sending it, and holds the last chunk back until the digest is
/// checked. When the stored bytes do not match, the stream ends in an error
/// short of the declared length, so the client sees a broken transfer
/// instead of silently wrong bytes, and the corruption is logged.
struct Verified {
    inner: ByteStream,
    digest: Digest,
    /// The hasher when idle; `None` while a chunk is being hashed or once finished.
    hasher: Option<Hasher>,
    hashing: Option<tokio::task::JoinHandle<Hasher>>,
    /// Read but not yet hashed.
    queue: VecDeque<Bytes>,
    /// The newest chunk, sent only once another follows or the digest checks.
    held: Option<Bytes>,
    ended: bool,
    done: bool,
    /// Told whether the bytes matched the digest.
    records: Arc<VerifiedFiles>,
    /// The file read, recorded on a match (local disk only).
    identity: Option<FileIdentity>,
}

impl Verified {
    /// Moves the hashing along; `Ready` once no chunk is being hashed.
    fn poll_hashing(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StorageError>> {
        loop {
            if let Some(task) = self.hashing.as_mut() {
                let hasher = std::task::ready!(Pin::new(task).poll(cx))
                    .map_err(|e| StorageError::Io(std::io::Error::other(e)))?;
                self.hashing = None;
                self.hasher = Some(hasher);
            }
            match (self.hasher.take(), self.queue.pop_front()) {
                (Some(mut hasher), Some(chunk)) => {
                    self.hashing = Some(tokio::task::spawn_blocking(move || {
                        hasher.update(&chunk);
                        hasher
                    }));
                }
                (hasher, chunk) => {
                    // Nothing to hash (or, defensively, nothing to hash with): keep both.
                    if let Some(chunk) = chunk {
                        self.queue.push_front(chunk);
                    }
                    self.hasher = hasher;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }

    fn fail(&mut self, e: StorageError) -> Poll<Option<Result<Bytes, StorageError>>> {
        self.done = true;
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for Verified {
    type Item = Result<Bytes, StorageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let hashed = this.poll_hashing(cx);
        if let Poll::Ready(Err(e)) = hashed {
            return this.fail(e);
        }
        if !this.ended {
            if this.queue.len() >= HASH_QUEUE {
                // The hasher is behind; its task wakes us.
                return Poll::Pending;
            }
            match this.inner.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    this.queue.push_back(chunk.clone());
                    if let Poll::Ready(Err(e)) = this.poll_hashing(cx) {
                        return this.fail(e);
                    }
                    return match this.held.replace(chunk) {
                        Some(previous) => Poll::Ready(Some(Ok(previous))),
                        // Nothing to send yet: ask again at once.
                        None => {
                            cx.waker().wake_by_ref();
                            Poll::Pending
                        }
                    };
                }
                Poll::Ready(Some(Err(e))) => return this.fail(e),
                Poll::Ready(None) => this.ended = true,
            }
        }
        // Everything is read: wait for the hash, then release the last chunk.
        match this.poll_hashing(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return this.fail(e),
            Poll::Ready(Ok(())) => {}
        }
        if !this.queue.is_empty() || this.hashing.is_some() {
            return Poll::Pending;
        }
        this.done = true;
        let actual = this.hasher.take().map(Hasher::finish);
        if actual.as_ref() == Some(&this.digest) {
            match this.identity {
                Some(identity) => this.records.record(&this.digest, identity),
                None => this.records.matched(&this.digest),
            }
            return Poll::Ready(this.held.take().map(Ok));
        }
        this.records.found_corrupt(&this.digest);
        metrics().corrupt_reads.inc();
        tracing::error!(digest = %this.digest, "stored blob does not match its digest; run `wharf fsck --repair`");
        Poll::Ready(Some(Err(StorageError::Corrupt(this.digest.clone()))))
    }
}

fn verified(
    body: ByteStream,
    digest: Digest,
    records: Arc<VerifiedFiles>,
    identity: Option<FileIdentity>,
) -> ByteStream {
    metrics().hashed_reads.inc();
    Verified {
        inner: body,
        hasher: Some(Hasher::new(digest.algorithm())),
        digest,
        hashing: None,
        queue: VecDeque::new(),
        held: None,
        ended: false,
        done: false,
        records,
        identity,
    }
    .boxed()
}

/// An opened blob: its full size, the range being sent, and the bytes. A
/// `File` body may be sent as it is: it is a range (never hashed), or hashing
/// is off, or the file matched its digest recently (see `verified`).
pub struct BlobRead {
    pub size: u64,
    pub range: Option<Range<u64>>,
    pub body: BlobBody,
}

/// How long a presigned blob URL stays valid.
const REDIRECT_LIFETIME: std::time::Duration = std::time::Duration::from_secs(20 * 60);

impl Registry {
    /// Size of a blob that `repo` may serve.
    pub async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        self.inner
            .meta
            .repo_blob(repo, digest)
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))
    }

    /// A presigned URL that reads the blob straight from the store, when
    /// `storage.redirect` is on and the store can sign one (S3).
    pub async fn blob_redirect(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>> {
        if !self.inner.limits.redirect {
            return Ok(None);
        }
        self.stat_blob(repo, digest).await?;
        Ok(self
            .inner
            .blobs
            .presigned_get(&Key::Blob(digest), REDIRECT_LIFETIME)
            .await?)
    }

    /// Opens a blob, or the inclusive byte range `first..=last` of it
    /// (`last` defaults to the end; a suffix range is given as `first = None`).
    pub async fn open_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<(Option<u64>, Option<u64>)>,
    ) -> Result<BlobRead> {
        let size = self.stat_blob(repo, digest).await?;
        let range = match range {
            None => None,
            Some(spec) => Some(resolve_range(spec, size).ok_or_else(|| {
                RegistryError::RangeNotSatisfiable {
                    digest: digest.clone(),
                    size,
                }
            })?),
        };
        let body = self
            .inner
            .blobs
            .open_body(&Key::Blob(digest), range.clone())
            .await?;
        let hash = range.is_none() && self.inner.limits.verify_reads;
        let records = &self.inner.verified;
        if range.is_some() && records.is_corrupt(digest) {
            // A part cannot be checked; the whole is known to be wrong.
            return Err(StorageError::Corrupt(digest.clone()).into());
        }
        let body = match body {
            BlobBody::File(file) if hash && !records.holds(digest, &file.identity) => {
                // Hashed as it is sent; a match spares the next reads.
                let identity = Some(file.identity);
                let stream = file.into_stream();
                BlobBody::Stream(verified(stream, digest.clone(), records.clone(), identity))
            }
            BlobBody::Stream(stream) if hash => {
                BlobBody::Stream(verified(stream, digest.clone(), records.clone(), None))
            }
            body => body,
        };
        Ok(BlobRead { size, range, body })
    }

    /// Links a blob of `from` into `repo` without copying (cross-repository mount).
    /// False when `from` does not have it; the caller then opens a session.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<bool> {
        self.check_pushable(repo).await?;
        let Some(size) = self.inner.meta.repo_blob(from, digest).await? else {
            return Ok(false);
        };
        self.check_quota(repo, digest, size).await?;
        // Linked only if still stored: a collection may have removed it meanwhile.
        Ok(self.inner.meta.link_existing_blob(repo, digest).await?)
    }

    /// Removes a blob from a repository; the bytes are reclaimed by garbage collection.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        if self.inner.meta.unlink_blob(repo, digest).await? {
            Ok(())
        } else {
            Err(RegistryError::BlobUnknown(digest.clone()))
        }
    }
}

/// Turns an HTTP byte-range spec into a half-open range within `size`, if satisfiable.
fn resolve_range((first, last): (Option<u64>, Option<u64>), size: u64) -> Option<Range<u64>> {
    match (first, last) {
        (Some(first), last) => {
            let end = last.map_or(size, |l| l.saturating_add(1).min(size));
            (first < end).then_some(first..end)
        }
        // `bytes=-N`: the last N bytes.
        (None, Some(n)) if n > 0 && size > 0 => Some(size.saturating_sub(n)..size),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_range;

    #[test]
    fn ranges() {
        assert_eq!(resolve_range((Some(0), Some(9)), 100), Some(0..10));
        assert_eq!(resolve_range((Some(90), None), 100), Some(90..100));
        assert_eq!(resolve_range((Some(90), Some(500)), 100), Some(90..100));
        assert_eq!(resolve_range((None, Some(10)), 100), Some(90..100));
        assert_eq!(resolve_range((Some(100), None), 100), None);
        assert_eq!(resolve_range((Some(5), Some(4)), 100), None);
    }
}
