//! Integrity checks: every recorded blob is read back and hashed, stored
//! bytes without a record are listed, and the database checks itself. With
//! `repair`, corrupt blobs are quarantined: moved aside and treated as absent,
//! so they are never served and a push of the same content heals them.

use std::collections::HashSet;

use futures::TryStreamExt;

use super::{Registry, Result};
use crate::oci::{Digest, Hasher, RepoName};
use crate::storage::{Key, StorageError};

/// What one check found.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    pub blobs_checked: usize,
    pub bytes_checked: u64,
    /// Recorded, but no bytes stored.
    pub missing: Vec<Digest>,
    /// Stored bytes that do not hash to the digest (or have the wrong size).
    pub corrupt: Vec<Digest>,
    /// Stored bytes without a record (garbage collection removes them).
    pub orphans: Vec<Digest>,
    /// Manifests that are, or reference, missing or corrupt content.
    pub broken_manifests: Vec<(RepoName, Digest)>,
    /// Problems the metadata database reports about itself.
    pub database: Vec<String>,
    /// Corrupt blobs moved aside by this run.
    pub quarantined: usize,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.corrupt.is_empty()
            && self.broken_manifests.is_empty()
            && self.database.is_empty()
    }
}

/// Progress of a check.
pub enum FsckEvent<'a> {
    /// About to hash this many blobs of this many bytes.
    Planned {
        blobs: usize,
        bytes: u64,
    },
    Checked {
        digest: &'a Digest,
        size: u64,
    },
}

impl Registry {
    pub async fn fsck(
        &self,
        repair: bool,
        on_event: &(dyn Fn(FsckEvent<'_>) + Send + Sync),
    ) -> Result<FsckReport> {
        let mut report = FsckReport {
            database: self.inner.meta.check_integrity().await?,
            ..Default::default()
        };
        let blobs = self.inner.meta.all_blobs().await?;
        on_event(FsckEvent::Planned {
            blobs: blobs.len(),
            bytes: blobs.iter().map(|(_, s)| s).sum(),
        });
        for (digest, size) in &blobs {
            match self.hash_stored(digest).await {
                Ok((actual, stored)) if actual == *digest && stored == *size => {}
                Ok(_) => report.corrupt.push(digest.clone()),
                Err(StorageError::NotFound) => report.missing.push(digest.clone()),
                Err(e) => return Err(e.into()),
            }
            report.blobs_checked += 1;
            report.bytes_checked += size;
            on_event(FsckEvent::Checked {
                digest,
                size: *size,
            });
        }

        let recorded: HashSet<&Digest> = blobs.iter().map(|(d, _)| d).collect();
        report.orphans = self
            .unrecorded_blobs(i64::MAX, &|d| recorded.contains(d))
            .await?
            .into_iter()
            .map(|b| b.digest)
            .collect();

        for digest in report.missing.iter().chain(&report.corrupt) {
            report
                .broken_manifests
                .extend(self.inner.meta.users_of(digest).await?);
        }
        report
            .broken_manifests
            .sort_by_cached_key(|(repo, d)| (repo.to_string(), d.to_string()));
        report.broken_manifests.dedup();

        if repair {
            for digest in &report.corrupt {
                let blobs = &self.inner.blobs;
                let move_aside = Box::pin(async move {
                    blobs
                        .rename(&Key::Blob(digest), &Key::Quarantine(digest))
                        .await
                });
                self.inner.meta.quarantine_blob(digest, move_aside).await?;
                report.quarantined += 1;
            }
        }
        Ok(report)
    }

    /// The digest and size of a blob's stored bytes.
    async fn hash_stored(&self, digest: &Digest) -> Result<(Digest, u64), StorageError> {
        let mut hasher = Hasher::new(digest.algorithm());
        let mut size = 0u64;
        let mut stream = self.inner.blobs.open(&Key::Blob(digest), None).await?;
        while let Some(chunk) = stream.try_next().await? {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((hasher.finish(), size))
    }
}
