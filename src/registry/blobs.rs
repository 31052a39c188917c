//! Reading, mounting and unlinking blobs of a repository.

use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::{Registry, RegistryError, Result};
use crate::metrics::metrics;
use crate::oci::{Digest, Hasher, RepoName};
use crate::storage::{ByteStream, Key, StorageError};

/// Hashes a full read as it streams and holds the last chunk back until the
/// digest is checked. When the stored bytes do not match, the stream ends in
/// an error short of the declared length, so the client sees a broken
/// transfer instead of silently wrong bytes, and the corruption is logged.
struct Verified {
    inner: ByteStream,
    digest: Digest,
    hasher: Option<Hasher>,
    held: Option<Bytes>,
}

impl Stream for Verified {
    type Item = Result<Bytes, StorageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(hasher) = this.hasher.as_mut() else {
                return Poll::Ready(None);
            };
            match this.inner.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    hasher.update(&chunk);
                    if let Some(previous) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.hasher = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    let actual = this.hasher.take().map(Hasher::finish);
                    if actual.as_ref() == Some(&this.digest) {
                        return Poll::Ready(this.held.take().map(Ok));
                    }
                    metrics().corrupt_reads.inc();
                    tracing::error!(digest = %this.digest, "stored blob does not match its digest; run `wharf fsck --repair`");
                    return Poll::Ready(Some(Err(StorageError::Corrupt(this.digest.clone()))));
                }
            }
        }
    }
}

fn verified(body: ByteStream, digest: Digest) -> ByteStream {
    Verified {
        inner: body,
        hasher: Some(Hasher::new(digest.algorithm())),
        digest,
        held: None,
    }
    .boxed()
}

/// An opened blob: its full size, the range being sent, and the bytes.
pub struct BlobRead {
    pub size: u64,
    pub range: Option<Range<u64>>,
    pub body: ByteStream,
}

impl Registry {
    /// Size of a blob that `repo` may serve.
    pub async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        self.inner
            .meta
            .repo_blob(repo, digest)
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))
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
            .open(&Key::Blob(digest), range.clone())
            .await?;
        let body = if range.is_none() && self.inner.limits.verify_reads {
            verified(body, digest.clone())
        } else {
            body
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
