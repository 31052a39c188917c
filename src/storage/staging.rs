//! Upload staging: where the bytes of an upload live until they are verified.
//!
//! On the local disk (the filesystem backend) each session appends to one file
//! (`uploads/<id>` under the blob root), and a verified upload is renamed into
//! its content address in the same folder tree, so a blob is written once and
//! becomes visible atomically.
//!
//! With a remote blob store (S3) the session lives in the bucket, so any
//! replica can continue it: each append is an object of its own
//! (`uploads/<id>/<offset>-<nonce>`), and the metadata store records which
//! objects make up the session (see [`Chunk`]). A verified upload is put at its
//! content address by `prepare`, outside any transaction: a server-side copy
//! when the session is one chunk (up to S3's 5 GiB copy limit), else the
//! chunks are streamed through Wharf into a multipart upload. `commit` then
//! only checks that it is there.

use std::any::Any;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use super::blobs::{BlobStore, ByteStream, Key, StorageError, read_size};
use crate::oci::{Digest, Hasher};

mod pipeline;
use pipeline::Pipeline;

const READ_SIZE: usize = 1024 * 1024;
/// The largest object S3 copies in one request.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;

/// One append to a session staged in a remote store: where it starts in the
/// session, and a name of its own, so that two requests racing for the same
/// offset (on two replicas) never write the same object; the metadata store
/// records the winner's chunk with the session's new size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u64,
    pub nonce: Uuid,
}

impl std::fmt::Display for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Zero-padded, so a listing of the session is in offset order.
        write!(f, "{:020}-{}", self.offset, self.nonce.simple())
    }
}

impl std::str::FromStr for Chunk {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (offset, nonce) = s.split_once('-').ok_or(())?;
        Ok(Chunk {
            offset: offset.parse().map_err(|_| ())?,
            nonce: Uuid::try_parse(nonce).map_err(|_| ())?,
        })
    }
}

/// What one append staged.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub written: u64,
    /// The object holding the bytes, when staged in a remote store.
    pub chunk: Option<Chunk>,
}

/// Staging for upload sessions.
#[derive(Clone)]
pub enum Staging {
    /// One file per session under the blob store's folder on this disk.
    Local(PathBuf),
    /// Chunk objects in the (remote) blob store itself.
    Remote(BlobStore),
}

/// What a session's blocking jobs (opening, hashing, writing, committing,
/// removing its file) keep alive until each ends, even once the request that
/// started them is gone: the session's turn, so that the next request's
/// `set_len` and writes never interleave with a dropped request's.
pub type Hold = Arc<dyn Any + Send + Sync>;

fn blocking_err(e: tokio::task::JoinError) -> StorageError {
    StorageError::Io(io::Error::other(e))
}

impl Staging {
    /// Before the blob is recorded: copies `len` verified bytes of a session
    /// to the blob's address in a remote store (unless already there). Runs
    /// outside the metadata transaction, which a long copy must not hold up.
    /// `chunks` are the session's recorded chunks.
    pub async fn prepare(
        &self,
        upload: Uuid,
        chunks: &[Chunk],
        len: u64,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let Staging::Remote(store) = self else {
            return Ok(());
        };
        let key = Key::Blob(digest);
        if store.exists(&key).await? {
            return Ok(());
        }
        let chain = chain(upload, chunks, len)?;
        if let [(chunk, size)] = chain[..]
            && size == len
            && len <= MAX_COPY
        {
            return store.copy(&Key::UploadChunk(upload, chunk), &key).await;
        }
        store
            .put_stream(&key, read_chain(store, upload, chain))
            .await
    }

    /// Writes `body` at `offset` of the session, hashing every piece with
    /// `hasher` on the way; returns the hasher with the pieces added. On the
    /// local disk, hashing and writing run as jobs on the blocking pool while
    /// the request's task receives the next pieces, so receiving, hashing and
    /// writing overlap (hashing alone costs about a core at 1.7 GB/s); see
    /// [`Pipeline`]. Every such job holds `hold` until it ends.
    pub async fn append<S>(
        &self,
        upload: Uuid,
        offset: u64,
        mut body: S,
        hasher: Option<Hasher>,
        hold: Hold,
    ) -> Result<(Appended, Option<Hasher>), StorageError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        let root = match self {
            Staging::Local(root) => root,
            Staging::Remote(store) => {
                return append_chunk(store, upload, offset, body, hasher).await;
            }
        };
        let path = session_file(root, upload);
        let opening = hold.clone();
        let file = tokio::task::spawn_blocking(move || -> io::Result<std::fs::File> {
            let _hold = opening;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)?;
            // Bytes the session recorded are gone (a committed or discarded
            // file): never fill the gap with zeros the hash state did not see.
            if file.metadata()?.len() < offset {
                return Err(io::Error::other("an upload's staged bytes are missing"));
            }
            // Drop whatever a failed earlier request left past the committed length.
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(file)
        })
        .await
        .map_err(blocking_err)??;
        let mut pipeline = Pipeline::new(file, hasher, hold);
        let mut outcome = Ok(());
        while let Some(piece) = body.next().await {
            match piece {
                Ok(piece) => pipeline.push(piece).await?,
                Err(e) => {
                    outcome = Err(StorageError::Body(e));
                    break;
                }
            }
        }
        let (written, hasher) = pipeline.finish().await?;
        outcome.map(|()| {
            let appended = Appended {
                written,
                chunk: None,
            };
            (appended, hasher)
        })
    }

    /// Streams the first `len` staged bytes of a session made of `chunks`.
    pub async fn read(
        &self,
        upload: Uuid,
        chunks: &[Chunk],
        len: u64,
    ) -> Result<ByteStream, StorageError> {
        let root = match self {
            Staging::Local(root) => root,
            Staging::Remote(store) => {
                return Ok(read_chain(store, upload, chain(upload, chunks, len)?));
            }
        };
        if len == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        let file = tokio::fs::File::open(session_file(root, upload)).await?;
        Ok(
            ReaderStream::with_capacity(file.take(len), read_size(len, READ_SIZE))
                .map_err(StorageError::Io)
                .boxed(),
        )
    }

    /// Moves `len` verified bytes of a session to the blob's content address.
    /// When the blob already exists the staged copy is simply dropped. The
    /// move holds `hold` (the session's turn) until it ends.
    pub async fn commit(
        &self,
        upload: Uuid,
        len: u64,
        digest: &Digest,
        hold: Hold,
    ) -> Result<(), StorageError> {
        let root = match self {
            Staging::Local(root) => root,
            // `prepare` put the bytes there; garbage collection may have removed
            // them since (they were not recorded yet), which fails the upload.
            // The staged chunks go with the session (`discard`).
            Staging::Remote(store) => {
                return match store.exists(&Key::Blob(digest)).await? {
                    true => Ok(()),
                    false => Err(StorageError::NotFound),
                };
            }
        };
        let from = session_file(root, upload);
        let to = root.join(Key::Blob(digest).path().as_ref());
        let duplicate = tokio::task::spawn_blocking(move || -> io::Result<Option<PathBuf>> {
            let _hold = hold;
            if to.exists() {
                return Ok(Some(from));
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
            std::fs::rename(&from, &to)?;
            Ok(None)
        })
        .await
        .map_err(blocking_err)?
        .map_err(StorageError::Io)?;
        if let Some(staged) = duplicate {
            // The client need not wait while a staged copy of a blob the
            // store holds (up to gigabytes) is freed; a copy left by a crash
            // goes with the stale sessions.
            tokio::task::spawn_blocking(move || {
                if let Err(e) = remove_if_present(&staged) {
                    tracing::warn!(error = %e, "could not remove a staged copy of a stored blob");
                }
            });
        }
        Ok(())
    }

    /// Sessions whose staged file was last written before `before_ms` (Unix ms).
    pub async fn files_older_than(&self, before_ms: i64) -> Result<Vec<Uuid>, StorageError> {
        let root = match self {
            Staging::Local(root) => root,
            Staging::Remote(store) => {
                let sessions = store.upload_sessions().await?;
                return Ok(sessions
                    .into_iter()
                    .filter(|(_, at)| *at < before_ms)
                    .map(|(id, _)| id)
                    .collect());
            }
        };
        let dir = root.join("uploads");
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

    /// Removes what is left of a session whose bytes [`Staging::commit`]
    /// placed: nothing on local disk (the file was renamed, or a duplicate's
    /// is being removed), the staged chunks in a remote store.
    pub async fn committed(&self, upload: Uuid) -> Result<(), StorageError> {
        match self {
            Staging::Local(_) => Ok(()),
            Staging::Remote(store) => store.delete_under(&Key::Upload(upload)).await,
        }
    }

    /// Removes a session's staged bytes, holding `hold` until they are gone.
    pub async fn discard(&self, upload: Uuid, hold: Hold) -> Result<(), StorageError> {
        let root = match self {
            Staging::Local(root) => root,
            Staging::Remote(store) => return store.delete_under(&Key::Upload(upload)).await,
        };
        let path = session_file(root, upload);
        tokio::task::spawn_blocking(move || {
            let _hold = hold;
            remove_if_present(&path)
        })
        .await
        .map_err(blocking_err)?
        .map_err(StorageError::Io)
    }
}

fn session_file(root: &Path, upload: Uuid) -> PathBuf {
    root.join(Key::Upload(upload).path().as_ref())
}

/// A remote append: the body streams into a chunk object of its own.
async fn append_chunk<S>(
    store: &BlobStore,
    upload: Uuid,
    offset: u64,
    body: S,
    mut hasher: Option<Hasher>,
) -> Result<(Appended, Option<Hasher>), StorageError>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    let chunk = Chunk {
        offset,
        nonce: Uuid::new_v4(),
    };
    let mut written = 0u64;
    let pieces = body.map(|piece| {
        let piece = piece.map_err(StorageError::Body)?;
        if let Some(h) = hasher.as_mut() {
            h.update(&piece);
        }
        written += piece.len() as u64;
        Ok(piece)
    });
    store
        .put_stream(&Key::UploadChunk(upload, chunk), pieces)
        .await?;
    let appended = Appended {
        written,
        chunk: Some(chunk),
    };
    Ok((appended, hasher))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The chunks holding a session's first `len` bytes: each with the bytes it
/// adds, which is where the next one starts (the last one: up to `len`).
fn chain(upload: Uuid, chunks: &[Chunk], len: u64) -> Result<Vec<(Chunk, u64)>, StorageError> {
    let broken = || {
        StorageError::Io(io::Error::other(format!(
            "upload {upload}: its recorded chunks do not cover bytes 0..{len}"
        )))
    };
    let mut chain = Vec::with_capacity(chunks.len());
    let mut at = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let end = chunks.get(i + 1).map_or(len, |next| next.offset);
        if chunk.offset != at || end <= at || end > len {
            return Err(broken());
        }
        chain.push((*chunk, end - at));
        at = end;
    }
    if at != len {
        return Err(broken());
    }
    Ok(chain)
}

/// Streams a chain of staged chunks, one after the other.
fn read_chain(store: &BlobStore, upload: Uuid, chain: Vec<(Chunk, u64)>) -> ByteStream {
    let store = store.clone();
    futures::stream::iter(chain)
        .then(move |(chunk, take)| {
            let store = store.clone();
            async move {
                store
                    .open(&Key::UploadChunk(upload, chunk), Some(0..take))
                    .await
            }
        })
        .try_flatten()
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64) -> Chunk {
        Chunk {
            offset,
            nonce: Uuid::new_v4(),
        }
    }

    #[test]
    fn chunk_names_round_trip_in_offset_order() {
        let (a, b) = (chunk(9), chunk(10));
        assert_eq!(a.to_string().parse::<Chunk>(), Ok(a));
        assert!(a.to_string() < b.to_string());
        assert!("12".parse::<Chunk>().is_err());
        assert!("x-y".parse::<Chunk>().is_err());
    }

    #[test]
    fn chains_cover_the_session_exactly() {
        let id = Uuid::new_v4();
        let chunks = [chunk(0), chunk(5), chunk(7)];
        let takes: Vec<u64> = chain(id, &chunks, 10)
            .unwrap()
            .iter()
            .map(|(_, take)| *take)
            .collect();
        assert_eq!(takes, [5, 2, 3]);
        assert!(chain(id, &[], 0).unwrap().is_empty());
        assert!(chain(id, &[], 3).is_err(), "bytes without chunks");
        assert!(chain(id, &chunks, 7).is_err(), "a chunk past the end");
        assert!(chain(id, &[chunk(1)], 3).is_err(), "a gap at the start");
        assert!(
            chain(id, &[chunk(0), chunk(0)], 3).is_err(),
            "an empty chunk"
        );
    }
}
