//! Domain services of the registry: uploads, blobs, manifests, tags and
//! referrers. Calls `storage`; knows nothing of HTTP.

mod blobs;
mod discovery;
mod error;
mod manifests;
mod uploads;

use std::sync::Arc;

use bytes::Bytes;

use crate::oci::Digest;
use crate::storage::{BlobStore, MetadataStore};

pub use blobs::BlobRead;
pub use discovery::{Referrer, TagPage};
pub use error::{RegistryError, Result};
pub use manifests::{ManifestRead, PushedManifest};
pub use uploads::ChunkRange;
use uploads::UploadHashes;

/// Limits the registry enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_manifest_bytes: usize,
    /// Bytes of manifests kept in memory; manifests are immutable by digest.
    pub manifest_cache_bytes: u64,
}

#[derive(Clone)]
struct ManifestWeight;

impl quick_cache::Weighter<Digest, Bytes> for ManifestWeight {
    fn weight(&self, _: &Digest, bytes: &Bytes) -> u64 {
        bytes.len() as u64 + 64
    }
}

/// The registry service; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    blobs: BlobStore,
    meta: Arc<dyn MetadataStore>,
    uploads: UploadHashes,
    manifests: quick_cache::sync::Cache<Digest, Bytes, ManifestWeight>,
    limits: Limits,
}

impl Registry {
    pub fn new(blobs: BlobStore, meta: Arc<dyn MetadataStore>, limits: Limits) -> Self {
        let manifests = quick_cache::sync::Cache::with_weighter(4096, limits.manifest_cache_bytes.max(1), ManifestWeight);
        Self { inner: Arc::new(Inner { blobs, meta, uploads: UploadHashes::default(), manifests, limits }) }
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }
}
