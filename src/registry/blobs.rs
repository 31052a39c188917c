//! Reading, mounting and unlinking blobs of a repository.

use std::ops::Range;

use super::{Registry, RegistryError, Result};
use crate::oci::{Digest, RepoName};
use crate::storage::{ByteStream, Key};

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
        if self.inner.meta.repo_blob(from, digest).await?.is_none() {
            return Ok(false);
        }
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
