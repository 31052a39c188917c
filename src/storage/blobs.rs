//! Content storage over `object_store`: every object path comes from [`Key`],
//! writes stream through multipart uploads, reads stream back with ranges.
//! Knows nothing of HTTP or of the metadata store.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use crate::oci::Digest;

/// Part size for multipart writes; S3 needs at least 5 MiB for all but the last part.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts written concurrently while the body keeps streaming in.
const PARTS_IN_FLIGHT: usize = 4;
/// Read size when streaming a local file: large reads keep blocking-pool hops rare.
const LOCAL_READ_SIZE: usize = 1024 * 1024;

/// Every object Wharf writes, and where it lives.
#[derive(Debug, Clone)]
pub enum Key<'a> {
    /// Verified content, shared by every repository: `blobs/sha256/ab/abcd...`.
    Blob(&'a Digest),
    /// One staged chunk of an upload session, named by its start offset so that
    /// listing the session's folder yields the chunks in order.
    UploadChunk { upload: Uuid, offset: u64 },
    /// The folder holding an upload session's chunks.
    Upload(Uuid),
    /// A monolithic upload being received, before its digest is verified.
    Staging(Uuid),
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
            Key::UploadChunk { upload, offset } => Path::from(format!("uploads/{upload}/{offset:020}")),
            Key::Upload(upload) => Path::from(format!("uploads/{upload}")),
            Key::Staging(upload) => Path::from(format!("staging/{upload}")),
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
}

fn map_err(e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        other => StorageError::Store(other),
    }
}

/// A byte stream read from storage.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// The blob store: content-addressed objects plus upload staging.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
}

impl BlobStore {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// Streams `body` into the object at `key`, showing each piece to `inspect`
    /// (the hasher) on the way. Nothing is visible at `key` unless the whole body
    /// arrived; on any error the partial write is aborted. Returns the byte count.
    pub async fn put_stream<S>(
        &self,
        key: &Key<'_>,
        mut body: S,
        mut inspect: impl FnMut(&[u8]),
    ) -> Result<u64, StorageError>
    where
        S: futures::Stream<Item = io::Result<Bytes>> + Unpin,
    {
        let upload = self.store.put_multipart(&key.path()).await.map_err(map_err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut written = 0u64;
        let outcome: Result<(), StorageError> = async {
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(StorageError::Body)?;
                inspect(&piece);
                written += piece.len() as u64;
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(map_err)?;
                writer.put(piece);
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => {
                writer.finish().await.map_err(map_err)?;
                Ok(written)
            }
            Err(e) => {
                // Best effort: the error that matters is the one we return.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Writes a small object in one request.
    pub async fn put_bytes(&self, key: &Key<'_>, bytes: Bytes) -> Result<(), StorageError> {
        self.store.put(&key.path(), PutPayload::from_bytes(bytes)).await.map_err(map_err)?;
        Ok(())
    }

    /// Reads a whole (small) object into memory; used for manifests only.
    pub async fn read_all(&self, key: &Key<'_>) -> Result<Bytes, StorageError> {
        let got = self.store.get(&key.path()).await.map_err(map_err)?;
        got.bytes().await.map_err(map_err)
    }

    /// Opens an object for streaming, optionally a byte range of it.
    pub async fn open(&self, key: &Key<'_>, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        open_path(self.store.clone(), key.path(), range).await
    }

    /// The stored size of an object, or `NotFound`.
    pub async fn size(&self, key: &Key<'_>) -> Result<u64, StorageError> {
        Ok(self.store.head(&key.path()).await.map_err(map_err)?.size)
    }

    pub async fn exists(&self, key: &Key<'_>) -> Result<bool, StorageError> {
        match self.size(key).await {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes the concatenation of `parts` (in order) to `to`, streaming.
    pub async fn concat(&self, parts: Vec<Path>, to: &Key<'_>) -> Result<(), StorageError> {
        let body = self.open_paths(parts).map_err(io::Error::other);
        self.put_stream(to, body, |_| {}).await.map(|_| ())
    }

    /// Paths of the objects below a folder key, in lexical order.
    pub async fn list(&self, prefix: &Key<'_>) -> Result<Vec<Path>, StorageError> {
        let mut paths: Vec<Path> =
            self.store.list(Some(&prefix.path())).map_ok(|m| m.location).try_collect().await.map_err(map_err)?;
        paths.sort();
        Ok(paths)
    }

    pub async fn delete(&self, key: &Key<'_>) -> Result<(), StorageError> {
        self.delete_path(&key.path()).await
    }

    /// Deletes an object found by [`BlobStore::list`]; absent is fine.
    pub async fn delete_path(&self, path: &Path) -> Result<(), StorageError> {
        match self.store.delete(path).await.map_err(map_err) {
            Ok(()) | Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves an object found by [`BlobStore::list`] to `to`.
    pub async fn rename_path(&self, from: &Path, to: &Key<'_>) -> Result<(), StorageError> {
        self.store.rename(from, &to.path()).await.map_err(map_err)
    }

    /// Deletes every object below a folder key (an upload session's chunks).
    pub async fn delete_all(&self, prefix: &Key<'_>) -> Result<(), StorageError> {
        for path in self.list(prefix).await? {
            self.delete_path(&path).await?;
        }
        Ok(())
    }

    /// Streams the objects at `paths` as one body.
    pub fn open_paths(&self, paths: Vec<Path>) -> ByteStream {
        let store = self.store.clone();
        futures::stream::iter(paths)
            .then(move |p| open_path(store.clone(), p, None))
            .try_flatten()
            .boxed()
    }
}

async fn open_path(store: Arc<dyn ObjectStore>, path: Path, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
    let options = GetOptions { range: range.map(GetRange::Bounded), ..Default::default() };
    let got = store.get_opts(&path, options).await.map_err(map_err)?;
    let range = got.range.clone();
    match got.payload {
        // object_store reads local files 8 KiB per blocking call; far too slow
        // for multi-GB/s pulls, so stream the file ourselves in large reads.
        GetResultPayload::File(file, _) => {
            let mut file = tokio::fs::File::from_std(file);
            file.seek(io::SeekFrom::Start(range.start)).await?;
            let reader = file.take(range.end - range.start);
            Ok(ReaderStream::with_capacity(reader, LOCAL_READ_SIZE).map_err(StorageError::Io).boxed())
        }
        GetResultPayload::Stream(s) => Ok(s.map_err(map_err).boxed()),
    }
}
