//! Content storage over `object_store`: every object path comes from [`Key`];
//! reads stream with ranges. Uploads arrive through [`super::Staging`].
//! Knows nothing of HTTP or of the metadata store.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, PutPayload, WriteMultipart,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use super::Chunk;
use crate::oci::Digest;

/// Read size when streaming a local file: large reads keep blocking-pool hops rare.
const LOCAL_READ_SIZE: usize = 1024 * 1024;

/// The read buffer for streaming `len` bytes of a file: `max` for large files,
/// the file's size for small ones. Every chunk handed to hyper pins its whole
/// buffer until sent, so a 2 MiB buffer for a 256 KiB layer costs 2 MiB. One
/// byte more than the file lets the stream see the end without a new buffer.
pub(super) fn read_size(len: u64, max: usize) -> usize {
    usize::try_from(len).map_or(max, |len| len.saturating_add(1).clamp(8 * 1024, max))
}

/// Multipart uploads to a remote store: part size (S3 wants at least 5 MiB
/// for all but the last) and parts sent at once, which bounds memory per upload.
const PART_SIZE: usize = 16 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 4;

/// Every object Wharf writes, and where it lives.
#[derive(Debug, Clone)]
pub enum Key<'a> {
    /// Verified content, shared by every repository: `blobs/sha256/ab/abcd...`.
    Blob(&'a Digest),
    /// The bytes of an upload session before they are verified: one file on
    /// local disk, the folder of its chunks in a remote store.
    Upload(Uuid),
    /// One appended chunk of an upload session staged in a remote store.
    UploadChunk(Uuid, Chunk),
    /// Bytes that failed verification, kept aside for inspection.
    Quarantine(&'a Digest),
}

impl Key<'_> {
    pub fn path(&self) -> Path {
        match self {
            Key::Blob(d) => Path::from(format!(
                "blobs/{}/{}/{}",
                d.algorithm().as_str(),
                &d.hex()[..2],
                d.hex()
            )),
            Key::Upload(upload) => Path::from(format!("uploads/{upload}")),
            Key::UploadChunk(upload, chunk) => Path::from(format!("uploads/{upload}/{chunk}")),
            Key::Quarantine(d) => {
                Path::from(format!("quarantine/{}/{}", d.algorithm().as_str(), d.hex()))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("reading the request body failed: {0}")]
    Body(io::Error),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("local file: {0}")]
    Io(#[from] io::Error),
    /// Stored bytes that do not hash to their digest.
    #[error("stored content of {0} does not match its digest")]
    Corrupt(Digest),
}

impl StorageError {
    /// The store does not answer now (network, timeouts, its own 5xx): worth
    /// a retry later, unlike our faults.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StorageError::Store(_))
    }
}

fn map_err(e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        other => StorageError::Store(other),
    }
}

/// A blob as found in storage.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    pub modified_ms: i64,
}

/// A byte stream read from storage.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// An opened object: a local file (which HTTP/1 can send without reading
/// it), or the bytes of a remote store.
pub enum BlobBody {
    File(LocalFile),
    Stream(ByteStream),
}

impl BlobBody {
    pub fn into_stream(self) -> ByteStream {
        match self {
            BlobBody::File(file) => file.into_stream(),
            BlobBody::Stream(stream) => stream,
        }
    }
}

/// A range of a file on the local disk, open for reading.
pub struct LocalFile {
    pub file: std::fs::File,
    pub range: Range<u64>,
    /// The file as it was when opened.
    pub identity: FileIdentity,
}

impl LocalFile {
    /// Reads the range in large reads: object_store reads local files 8 KiB
    /// per blocking call, far too slow for multi-GB/s pulls.
    pub fn into_stream(self) -> ByteStream {
        let LocalFile { file, range, .. } = self;
        let len = range.end - range.start;
        let read = async move {
            let mut file = tokio::fs::File::from_std(file);
            file.seek(io::SeekFrom::Start(range.start)).await?;
            Ok::<_, io::Error>(ReaderStream::with_capacity(
                file.take(len),
                read_size(len, LOCAL_READ_SIZE),
            ))
        };
        futures::stream::once(read)
            .try_flatten()
            .map_err(StorageError::Io)
            .boxed()
    }
}

/// What tells one version of a file's contents from another: writing to a
/// file changes its ctime (and mtime), replacing it changes its inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
    /// Whether the last change was at least `SETTLE` before this was read.
    /// File times tick coarsely (a few ms), so a write in the same tick as an
    /// observed change leaves them as they were: only a settled identity
    /// tells every later write apart (git's "racy clean" problem).
    settled: bool,
}

/// Longer than any kernel's file-time tick; file systems that keep whole
/// seconds only (ext4 with small inodes, ext3, vfat) get two.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);
const SETTLE_COARSE: std::time::Duration = std::time::Duration::from_secs(2);

impl FileIdentity {
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, ns: i64| i128::from(s) * 1_000_000_000 + i128::from(ns);
        let changed_ns = ns(metadata.ctime(), metadata.ctime_nsec());
        let coarse = metadata.ctime_nsec() == 0 && metadata.mtime_nsec() == 0;
        let settle = if coarse { SETTLE_COARSE } else { SETTLE };
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        FileIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified_ns: ns(metadata.mtime(), metadata.mtime_nsec()),
            changed_ns,
            settled: now_ns - changed_ns >= settle.as_nanos() as i128,
        }
    }

    /// Whether any later change to the file will show in its identity.
    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// Whether both describe the same contents, settled or not.
    pub fn same_version(&self, other: &FileIdentity) -> bool {
        FileIdentity {
            settled: other.settled,
            ..*self
        } == *other
    }
}

/// Tells the kernel a range will be read front to back, so it reads ahead
/// further; only a hint, so a failure is ignored.
fn advise_sequential(file: &std::fs::File, range: &Range<u64>) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off_t::try_from(range.start),
        libc::off_t::try_from(range.end - range.start),
    ) else {
        return;
    };
    // SAFETY: a plain syscall on a descriptor `file` keeps open; no memory is passed.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_SEQUENTIAL);
    }
}

/// The blob store: content-addressed objects plus upload staging.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Presigns URLs for direct reads (S3), with the key prefix the store adds.
    signer: Option<(Arc<dyn Signer>, String)>,
}

impl BlobStore {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            signer: None,
        }
    }

    /// A store whose objects can be read through presigned URLs; `prefix`
    /// is the key prefix `store` puts before every key.
    pub fn with_signer(mut self, signer: Arc<dyn Signer>, prefix: &str) -> Self {
        self.signer = Some((signer, prefix.trim_matches('/').to_string()));
        self
    }

    /// A URL that reads the object directly for `expires_in`, when the store can sign one.
    pub async fn presigned_get(
        &self,
        key: &Key<'_>,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, StorageError> {
        let Some((signer, prefix)) = &self.signer else {
            return Ok(None);
        };
        let path = key.path();
        let full = if prefix.is_empty() {
            path
        } else {
            Path::from(format!("{prefix}/{path}"))
        };
        let url = signer
            .signed_url(http::Method::GET, &full, expires_in)
            .await
            .map_err(map_err)?;
        Ok(Some(url.to_string()))
    }

    /// Writes a small object in one request.
    pub async fn put_bytes(&self, key: &Key<'_>, bytes: Bytes) -> Result<(), StorageError> {
        self.store
            .put(&key.path(), PutPayload::from_bytes(bytes))
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Writes a large object from a stream, in parts (S3 multipart uploads);
    /// nothing is visible at `key` unless every part arrived.
    pub async fn put_stream<S>(&self, key: &Key<'_>, body: S) -> Result<(), StorageError>
    where
        S: futures::Stream<Item = Result<Bytes, StorageError>> + Unpin,
    {
        let mut body = body.peekable();
        if std::pin::Pin::new(&mut body).peek().await.is_none() {
            // S3 cannot complete a multipart upload without parts.
            return self.put_bytes(key, Bytes::new()).await;
        }
        let upload = self
            .store
            .put_multipart(&key.path())
            .await
            .map_err(map_err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let written = async {
            while let Some(chunk) = body.next().await {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(map_err)?;
                writer.write(&chunk?);
            }
            Ok::<(), StorageError>(())
        }
        .await;
        match written {
            Ok(()) => {
                writer.finish().await.map_err(map_err)?;
                Ok(())
            }
            Err(e) => {
                // Best effort: the store also expires abandoned uploads.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Reads a whole (small) object into memory; used for manifests only.
    pub async fn read_all(&self, key: &Key<'_>) -> Result<Bytes, StorageError> {
        let got = self.store.get(&key.path()).await.map_err(map_err)?;
        got.bytes().await.map_err(map_err)
    }

    /// Opens an object for streaming, optionally a byte range of it.
    pub async fn open(
        &self,
        key: &Key<'_>,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        Ok(self.open_body(key, range).await?.into_stream())
    }

    /// Opens an object, optionally a byte range of it: the open file itself
    /// when the store is the local disk, else a byte stream.
    pub async fn open_body(
        &self,
        key: &Key<'_>,
        range: Option<Range<u64>>,
    ) -> Result<BlobBody, StorageError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&key.path(), options)
            .await
            .map_err(map_err)?;
        let range = got.range.clone();
        match got.payload {
            GetResultPayload::File(file, _) => {
                let identity = FileIdentity::of(&file.metadata()?);
                advise_sequential(&file, &range);
                Ok(BlobBody::File(LocalFile {
                    file,
                    range,
                    identity,
                }))
            }
            GetResultPayload::Stream(s) => Ok(BlobBody::Stream(s.map_err(map_err).boxed())),
        }
    }

    /// The stored size of an object, or `NotFound`.
    pub async fn size(&self, key: &Key<'_>) -> Result<u64, StorageError> {
        Ok(self.store.head(&key.path()).await.map_err(map_err)?.size)
    }

    /// Fails when the store does not answer (a missing probe object is an answer).
    pub async fn check(&self) -> Result<(), StorageError> {
        match self
            .store
            .head(&Path::from("blobs/.ready"))
            .await
            .map_err(map_err)
        {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves an object to another key.
    pub async fn rename(&self, from: &Key<'_>, to: &Key<'_>) -> Result<(), StorageError> {
        self.store
            .rename(&from.path(), &to.path())
            .await
            .map_err(map_err)
    }

    /// Copies an object inside the store (no bytes pass through Wharf).
    pub async fn copy(&self, from: &Key<'_>, to: &Key<'_>) -> Result<(), StorageError> {
        self.store
            .copy(&from.path(), &to.path())
            .await
            .map_err(map_err)
    }

    /// Removes every object under `prefix` (a session's chunks, recorded or not).
    pub async fn delete_under(&self, prefix: &Key<'_>) -> Result<(), StorageError> {
        let prefix = prefix.path();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            match meta.map_err(map_err) {
                Ok(meta) => match self.store.delete(&meta.location).await.map_err(map_err) {
                    Ok(()) | Err(StorageError::NotFound) => {}
                    Err(e) => return Err(e),
                },
                Err(StorageError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Upload sessions with chunks in the store, each with its latest write (Unix ms).
    pub async fn upload_sessions(&self) -> Result<Vec<(Uuid, i64)>, StorageError> {
        let mut latest: std::collections::HashMap<Uuid, i64> = Default::default();
        let mut listing = self.store.list(Some(&Path::from("uploads")));
        while let Some(meta) = listing.next().await {
            let meta = match meta.map_err(map_err) {
                Ok(meta) => meta,
                Err(StorageError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            let id = meta
                .location
                .parts()
                .nth(1)
                .and_then(|p| p.as_ref().parse().ok());
            if let Some(id) = id {
                let at = meta.last_modified.timestamp_millis();
                let entry = latest.entry(id).or_insert(at);
                *entry = (*entry).max(at);
            }
        }
        Ok(latest.into_iter().collect())
    }

    /// Removes an object; one that is already gone is not an error.
    pub async fn delete(&self, key: &Key<'_>) -> Result<(), StorageError> {
        match self.store.delete(&key.path()).await.map_err(map_err) {
            Ok(()) | Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every stored blob (objects whose path is not a blob address are skipped).
    pub fn list_blobs(&self) -> BoxStream<'static, Result<StoredBlob, StorageError>> {
        self.store
            .list(Some(&Path::from("blobs")))
            .map_err(map_err)
            // A blob removed while the listing walks is simply not listed.
            .filter(|item| futures::future::ready(!matches!(item, Err(StorageError::NotFound))))
            .try_filter_map(|meta| async move {
                let path = meta.location.to_string();
                let mut segments = path.split('/');
                let digest = match (
                    segments.next(),
                    segments.next(),
                    segments.next(),
                    segments.next(),
                    segments.next(),
                ) {
                    (Some("blobs"), Some(algorithm), Some(_), Some(hex), None) => {
                        format!("{algorithm}:{hex}").parse::<Digest>().ok()
                    }
                    _ => None,
                };
                Ok(digest.map(|digest| StoredBlob {
                    digest,
                    size: meta.size,
                    modified_ms: meta.last_modified.timestamp_millis(),
                }))
            })
            .boxed()
    }

    pub async fn exists(&self, key: &Key<'_>) -> Result<bool, StorageError> {
        match self.size(key).await {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
