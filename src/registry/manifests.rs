//! Pushing, reading and deleting manifests and tags.

use bytes::Bytes;

use super::{Registry, RegistryError, Result};
use crate::oci::manifest::{self, ManifestError};
use crate::oci::{Algorithm, Digest, Reference, RepoName, Tag};
use crate::storage::{Key, ManifestRecord, NewManifest, StorageError};

/// What a successful manifest push reports back.
pub struct PushedManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

/// A manifest as served: its record and, for GET, its bytes.
pub struct ManifestRead {
    pub record: ManifestRecord,
    pub bytes: Bytes,
}

impl Registry {
    /// Validates and stores a manifest under `reference` (and any extra `tags`).
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        extra_tags: &[Tag],
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<PushedManifest> {
        self.check_pushable(repo).await?;
        let limit = self.inner.limits.max_manifest_bytes;
        if bytes.len() > limit {
            return Err(RegistryError::ManifestTooLarge { limit });
        }
        let algorithm = match reference {
            Reference::Digest(d) => d.algorithm(),
            Reference::Tag(_) => Algorithm::Sha256,
        };
        let digest = Digest::compute(algorithm, &bytes);
        if let Reference::Digest(expected) = reference
            && expected != &digest
        {
            return Err(RegistryError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        let parsed = manifest::parse(content_type, &bytes).map_err(|e| match e {
            ManifestError::Invalid(_)
            | ManifestError::Schema1
            | ManifestError::UnsupportedMediaType(_)
            | ManifestError::MediaTypeMismatch { .. } => {
                RegistryError::ManifestInvalid(e.to_string())
            }
        })?;
        let mut tags: Vec<Tag> = extra_tags.to_vec();
        if let Reference::Tag(t) = reference {
            tags.push(t.clone());
        }
        let annotations = parsed.annotations.as_ref().map(|a| a.to_string());
        let subject = parsed.subject.as_ref().map(|s| s.digest.clone());

        let immutable = self.immutable_tags(repo, &tags).await?;
        self.check_quota(repo, &digest, bytes.len() as u64).await?;
        // The bytes are written inside the transaction that records the manifest,
        // so it is visible only once both exist and a collection cannot interleave.
        let blobs = &self.inner.blobs;
        let body = bytes.clone();
        let key = Key::Blob(&digest);
        let place = Box::pin(async move {
            if !blobs.exists(&key).await? {
                blobs.put_bytes(&key, body).await?;
            }
            Ok(())
        });
        self.inner
            .meta
            .put_manifest(NewManifest {
                repo,
                record: ManifestRecord {
                    digest: digest.clone(),
                    media_type: parsed.media_type.clone(),
                    size: bytes.len() as u64,
                    artifact_type: parsed.artifact_type.clone(),
                    annotations,
                    pushed_at_ms: 0,
                },
                blobs: &parsed.blobs,
                children: &parsed.children,
                subject: subject.as_ref(),
                platforms: &parsed.platforms,
                tags: &tags,
                immutable_tags: &immutable,
                place,
            })
            .await?;
        self.inner.manifests.invalidate(repo);
        self.inner.manifests.remember_body(digest.clone(), &bytes);
        Ok(PushedManifest { digest, subject })
    }

    /// The tags among `tags` that the repository's mutability settings protect.
    async fn immutable_tags(&self, repo: &RepoName, tags: &[Tag]) -> Result<Vec<Tag>> {
        let Some(settings) = self.inner.meta.repository(repo).await? else {
            return Ok(Vec::new());
        };
        let matches = |t: &Tag| {
            settings
                .mutability_filters
                .iter()
                .any(|f| crate::glob::glob_match(f, t.as_str()))
        };
        Ok(tags
            .iter()
            .filter(|t| match settings.tag_mutability.as_str() {
                "IMMUTABLE" => true,
                "IMMUTABLE_WITH_EXCLUSION" => !matches(t),
                "MUTABLE_WITH_EXCLUSION" => matches(t),
                _ => false,
            })
            .cloned()
            .collect())
    }

    /// Resolves a reference without reading the manifest's bytes (HEAD).
    pub async fn stat_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestRecord> {
        let cache = &self.inner.manifests;
        let key = cache.resolution_key(repo, reference);
        if let Some(record) = cache.resolution(&key) {
            return Ok(record);
        }
        let record = self
            .inner
            .meta
            .resolve(repo, reference)
            .await?
            .ok_or_else(|| RegistryError::ManifestUnknown(reference.to_string()))?;
        cache.remember_resolution(key, record.clone());
        Ok(record)
    }

    /// Resolves a reference and returns the manifest's bytes.
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestRead> {
        let record = self.stat_manifest(repo, reference).await?;
        self.record_pull(repo, &record.digest).await?;
        let bytes = self.manifest_bytes(&record).await?;
        Ok(ManifestRead { record, bytes })
    }

    /// The bytes of a resolved manifest, from the cache or the blob store.
    pub(super) async fn manifest_bytes(&self, record: &ManifestRecord) -> Result<Bytes> {
        if let Some(bytes) = self.inner.manifests.body(&record.digest) {
            return Ok(bytes);
        }
        let bytes = self
            .inner
            .blobs
            .read_all(&Key::Blob(&record.digest))
            .await?;
        // Checked once per process (the body is cached afterwards): corrupt
        // bytes are refused, not served.
        if Digest::compute(record.digest.algorithm(), &bytes) != record.digest {
            crate::metrics::metrics().corrupt_reads.inc();
            tracing::error!(digest = %record.digest, "stored manifest does not match its digest; run `wharf fsck --repair`");
            return Err(StorageError::Corrupt(record.digest.clone()).into());
        }
        self.inner
            .manifests
            .remember_body(record.digest.clone(), &bytes);
        Ok(bytes)
    }

    /// Notes a pull for lifecycle rules, at most once a minute per manifest.
    async fn record_pull(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let key = pull_key(repo, digest);
        let fresh = self
            .inner
            .pulls
            .get(&key)
            .is_some_and(|at| at.elapsed() < super::expiry::PULL_RECORD_INTERVAL);
        if !fresh {
            self.inner.pulls.insert(key, std::time::Instant::now());
            let now = super::now_ms();
            self.inner.meta.record_pull(repo, digest, now).await?;
        }
        Ok(())
    }

    /// Deleting by tag removes the tag; by digest, the manifest and its tags.
    pub async fn delete_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        let deleted = match reference {
            Reference::Tag(t) => self.inner.meta.delete_tag(repo, t).await?,
            Reference::Digest(d) => self.inner.meta.delete_manifest(repo, d).await?,
        };
        self.inner.manifests.invalidate(repo);
        if deleted {
            Ok(())
        } else {
            Err(RegistryError::ManifestUnknown(reference.to_string()))
        }
    }
}

/// The pull cache's key: 128 bits of SHA-256 over the repository and digest
/// (a collision would only skip one pull record for a minute).
fn pull_key(repo: &RepoName, digest: &Digest) -> [u8; 16] {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(repo.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(digest.algorithm().as_str().as_bytes());
    hasher.update(b":");
    hasher.update(digest.hex().as_bytes());
    let hash = hasher.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash[..16]);
    key
}
