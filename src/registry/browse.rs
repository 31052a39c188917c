//! What the web console reads: pages of repositories, tags and untagged
//! manifests, a manifest's links, and a manifest or small blob read for
//! display (which is no pull: lifecycle rules on pull time ignore it).

use bytes::Bytes;

use super::{ManifestRead, Registry, RegistryError, Result};
use crate::oci::{Digest, Reference, RepoName};
use crate::storage::Key;
use crate::storage::metadata::browse::{
    ImageSummary, Listing, ManifestLinks, Position, Reclaimable, RepositoryKey, RepositorySummary,
};

impl Registry {
    /// One page of repositories, keys only.
    pub async fn browse_repositories(&self, page: Listing<'_>) -> Result<Vec<RepositoryKey>> {
        Ok(self.inner.meta.browse_repositories(page).await?)
    }

    /// Tag counts and sizes of the repositories a page shows, in their order.
    pub async fn repository_summaries(
        &self,
        keys: &[RepositoryKey],
    ) -> Result<Vec<RepositorySummary>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.inner.meta.repository_summaries(keys).await?)
    }

    /// One page of an existing repository's tags (referrers left out).
    pub async fn browse_tags(
        &self,
        repo: &RepoName,
        page: Listing<'_>,
    ) -> Result<Vec<ImageSummary>> {
        self.repository(repo).await?;
        Ok(self.inner.meta.browse_tags(repo, page).await?)
    }

    /// One page of an existing repository's untagged manifests, newest first.
    pub async fn browse_untagged(
        &self,
        repo: &RepoName,
        after: Option<Position<'_>>,
        limit: u32,
    ) -> Result<Vec<ImageSummary>> {
        self.repository(repo).await?;
        Ok(self.inner.meta.browse_untagged(repo, after, limit).await?)
    }

    /// The tags, parent indexes and subject of a manifest.
    pub async fn manifest_links(&self, repo: &RepoName, digest: &Digest) -> Result<ManifestLinks> {
        Ok(self.inner.meta.manifest_links(repo, digest).await?)
    }

    /// What garbage collection could reclaim once `digests` are deleted
    /// from `repo`, or once the tag `untag` of the one digest is removed
    /// (nothing, unless that is its last tag and nothing else keeps it).
    /// Blobs are shared across repositories: only those no other manifest
    /// anywhere uses count. Both with and without collections that sweep
    /// untagged manifests.
    pub async fn reclaimable(
        &self,
        repo: &RepoName,
        digests: &[Digest],
        untag: Option<&str>,
    ) -> Result<Reclaimable> {
        let meta = &self.inner.meta;
        Ok(Reclaimable {
            direct: meta.reclaimable(repo, digests, untag, false).await?,
            with_untagged: meta.reclaimable(repo, digests, untag, true).await?,
        })
    }

    /// A manifest and its bytes, for display: unlike
    /// [`get_manifest`](Registry::get_manifest) it records no pull.
    pub async fn inspect_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestRead> {
        let record = self.stat_manifest(repo, reference).await?;
        let bytes = self.manifest_bytes(&record).await?;
        Ok(ManifestRead { record, bytes })
    }

    /// A blob of `repo` read whole (an image config), checked against its
    /// digest; `None` when it is larger than `max` bytes.
    pub async fn read_small_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        max: u64,
    ) -> Result<Option<Bytes>> {
        if self.stat_blob(repo, digest).await? > max {
            return Ok(None);
        }
        let bytes = self.inner.blobs.read_all(&Key::Blob(digest)).await?;
        if Digest::compute(digest.algorithm(), &bytes) != *digest {
            return Err(RegistryError::Storage(
                crate::storage::StorageError::Corrupt(digest.clone()),
            ));
        }
        Ok(Some(bytes))
    }
}
