//! Upload staging: where the bytes of an upload live until they are verified.
//!
//! On the local disk (the filesystem backend) each session appends to one file
//! (`uploads/<id>` under the blob root), and a verified upload is renamed into
//! its content address in the same folder tree, so a blob is written once and
//! becomes visible atomically.
//!
//! With a remote blob store (S3) the session lives in the bucket, so any
//! replica can continue it: each append is an object of its own
//! (`uploads/<id>/<offset>`). A verified upload is put at its content address
//! by `prepare`, outside any transaction: a server-side copy when the session
//! is one chunk (up to S3's 5 GiB copy limit), else the chunks are streamed
//! through Wharf into a multipart upload. `commit` then only checks that it is
//! there. The session's committed length lives in the metadata store; bytes
//! past it (from a failed request) are ignored and overwritten by the next append.

use std::io::{self, Seek, SeekFrom, Write};
use std::path::PathBuf;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use super::blobs::{BlobStore, ByteStream, Key, StorageError};
use crate::oci::Digest;

/// Pieces of body queued for the writer thread; bounds memory per upload.
const WRITE_QUEUE: usize = 32;
const READ_SIZE: usize = 1024 * 1024;
/// The largest object S3 copies in one request.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;

/// Staging for upload sessions, rooted at the blob store's folder (or a
/// local folder when the blobs live in a remote store).
#[derive(Clone)]
pub struct Staging {
    root: PathBuf,
    remote: Option<BlobStore>,
}

fn blocking_err(e: tokio::task::JoinError) -> StorageError {
    StorageError::Io(io::Error::other(e))
}

impl Staging {
    pub fn new(root: PathBuf) -> Self {
        Self { root, remote: None }
    }

    /// Staging on this disk for blobs that live in `store`.
    pub fn for_remote(root: PathBuf, store: BlobStore) -> Self {
        Self {
            root,
            remote: Some(store),
        }
    }

    /// Before the blob is recorded: copies `len` verified bytes of a session
    /// to the blob's address in a remote store (unless already there). Runs
    /// outside the metadata transaction, which a long copy must not hold up.
    pub async fn prepare(
        &self,
        upload: Uuid,
        len: u64,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let Some(store) = &self.remote else {
            return Ok(());
        };
        let key = Key::Blob(digest);
        if store.exists(&key).await? {
            return Ok(());
        }
        let chain = chain(store, upload, len).await?;
        if let [(0, size)] = chain[..]
            && size == len
            && len <= MAX_COPY
        {
            return store.copy(&Key::UploadChunk(upload, 0), &key).await;
        }
        store
            .put_stream(&key, read_chain(store, upload, chain))
            .await
    }

    fn file(&self, upload: Uuid) -> PathBuf {
        self.root.join(Key::Upload(upload).path().as_ref())
    }

    /// Writes `body` at `offset` of the session's file, showing every piece to
    /// `inspect` (the hasher) first. Hashing runs here while a blocking thread
    /// writes, so network, hashing and disk overlap. Returns the bytes written.
    pub async fn append<S>(
        &self,
        upload: Uuid,
        offset: u64,
        mut body: S,
        mut inspect: impl FnMut(&[u8]),
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        if let Some(store) = &self.remote {
            let mut written = 0u64;
            let pieces = body.map(|piece| {
                let piece = piece.map_err(StorageError::Body)?;
                inspect(&piece);
                written += piece.len() as u64;
                Ok(piece)
            });
            store
                .put_stream(&Key::UploadChunk(upload, offset), pieces)
                .await?;
            return Ok(written);
        }
        let path = self.file(upload);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || -> io::Result<u64> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)?;
            // Drop whatever a failed earlier request left past the committed length.
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut written = 0u64;
            while let Some(piece) = rx.blocking_recv() {
                file.write_all(&piece)?;
                written += piece.len() as u64;
            }
            Ok(written)
        });
        let mut outcome = Ok(());
        while let Some(piece) = body.next().await {
            match piece {
                Ok(piece) => {
                    inspect(&piece);
                    if tx.send(piece).await.is_err() {
                        break; // the writer failed; its error is reported below
                    }
                }
                Err(e) => {
                    outcome = Err(StorageError::Body(e));
                    break;
                }
            }
        }
        drop(tx);
        let written = writer.await.map_err(blocking_err)??;
        outcome.map(|()| written)
    }

    /// Streams the first `len` staged bytes of a session.
    pub async fn read(&self, upload: Uuid, len: u64) -> Result<ByteStream, StorageError> {
        if let Some(store) = &self.remote {
            let chain = chain(store, upload, len).await?;
            return Ok(read_chain(store, upload, chain));
        }
        if len == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        let file = tokio::fs::File::open(self.file(upload)).await?;
        Ok(ReaderStream::with_capacity(file.take(len), READ_SIZE)
            .map_err(StorageError::Io)
            .boxed())
    }

    /// Moves `len` verified bytes of a session to the blob's content address.
    /// When the blob already exists the staged copy is simply dropped.
    pub async fn commit(
        &self,
        upload: Uuid,
        len: u64,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let from = self.file(upload);
        if let Some(store) = &self.remote {
            // `prepare` put the bytes there; garbage collection may have removed
            // them since (they were not recorded yet), which fails the upload.
            // The staged chunks go with the session (`discard`).
            return match store.exists(&Key::Blob(digest)).await? {
                true => Ok(()),
                false => Err(StorageError::NotFound),
            };
        }
        let to = self.root.join(Key::Blob(digest).path().as_ref());
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            if to.exists() {
                return remove_if_present(&from);
            }
            if len == 0 {
                // A session that never received a byte has no file.
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&from)?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .open(&from)?
                .set_len(len)?;
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::rename(&from, &to)
        })
        .await
        .map_err(blocking_err)?
        .map_err(StorageError::Io)
    }

    /// Sessions whose staged file was last written before `before_ms` (Unix ms).
    pub async fn files_older_than(&self, before_ms: i64) -> Result<Vec<Uuid>, StorageError> {
        if let Some(store) = &self.remote {
            let sessions = store.upload_sessions().await?;
            return Ok(sessions
                .into_iter()
                .filter(|(_, at)| *at < before_ms)
                .map(|(id, _)| id)
                .collect());
        }
        let dir = self.root.join("uploads");
        tokio::task::spawn_blocking(move || -> io::Result<Vec<Uuid>> {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut old = Vec::new();
            for entry in entries {
                // Files come and go while we look (sessions commit or end).
                let metadata = match entry.and_then(|e| Ok((e.file_name(), e.metadata()?))) {
                    Ok(found) => found,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let (name, metadata) = metadata;
                let modified_ms = metadata
                    .modified()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                let id = name.to_str().and_then(|n| n.parse().ok());
                if let Some(id) = id.filter(|_| modified_ms < before_ms) {
                    old.push(id);
                }
            }
            Ok(old)
        })
        .await
        .map_err(blocking_err)?
        .map_err(StorageError::Io)
    }

    /// Removes a session's staged bytes.
    pub async fn discard(&self, upload: Uuid) -> Result<(), StorageError> {
        if let Some(store) = &self.remote {
            for (offset, _) in store.upload_chunks(upload).await? {
                store.delete(&Key::UploadChunk(upload, offset)).await?;
            }
            return Ok(());
        }
        let path = self.file(upload);
        tokio::task::spawn_blocking(move || remove_if_present(&path))
            .await
            .map_err(blocking_err)?
            .map_err(StorageError::Io)
    }
}

fn remove_if_present(path: &std::path::Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The staged chunks holding a session's first `len` bytes: (offset, bytes to
/// take), each starting where the previous one ended. Chunks past `len` (left
/// by a failed request) are ignored; a gap means the session lost bytes.
async fn chain(store: &BlobStore, upload: Uuid, len: u64) -> Result<Vec<(u64, u64)>, StorageError> {
    let mut chain = Vec::new();
    let mut at = 0;
    for (offset, size) in store.upload_chunks(upload).await? {
        if at >= len {
            break;
        }
        if offset != at || size == 0 {
            continue;
        }
        let take = size.min(len - at);
        chain.push((offset, take));
        at += take;
    }
    if at < len {
        return Err(StorageError::Io(io::Error::other(format!(
            "upload {upload}: staged chunks end at byte {at} of {len}"
        ))));
    }
    Ok(chain)
}

/// Streams a chain of staged chunks, one after the other.
fn read_chain(store: &BlobStore, upload: Uuid, chain: Vec<(u64, u64)>) -> ByteStream {
    let store = store.clone();
    futures::stream::iter(chain)
        .then(move |(offset, take)| {
            let store = store.clone();
            async move {
                store
                    .open(&Key::UploadChunk(upload, offset), Some(0..take))
                    .await
            }
        })
        .try_flatten()
        .boxed()
}
