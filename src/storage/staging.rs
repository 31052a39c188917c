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
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use super::blobs::{BlobStore, ByteStream, Key, StorageError, read_size};
use crate::oci::{Digest, Hasher};

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

/// Hashes and writes an upload's pieces on the blocking pool while the
/// request's task receives the next ones. Hashing and writing are two lanes,
/// each with a queue that its job takes batches from as they come, so a lane
/// with work queued goes on while the request's task waits (for the client,
/// or for room in the other lane), and the two wait for each other only at
/// the end: the slower one (hashing, on most machines) may lag while the
/// other goes on, and the scheduler can spread the work over the cores.
struct Pipeline {
    hashing: Option<Lane<Hasher>>,
    writing: Lane<(std::fs::File, u64)>,
    /// Small pieces copied together, so that a client sending tiny chunks
    /// (1-byte chunked encoding, small HTTP/2 frames) cannot make a lane
    /// queue millions of pieces.
    small: BytesMut,
}

/// Pieces shorter than this are copied into one piece of at least this.
const SMALL_PIECE: usize = 64 * 1024;

impl Pipeline {
    fn new(file: std::fs::File, hasher: Option<Hasher>, hold: Hold) -> Self {
        Pipeline {
            hashing: hasher.map(|h| Lane::new(h, hash, hold.clone())),
            writing: Lane::new((file, 0), write, hold),
            small: BytesMut::new(),
        }
    }

    async fn push(&mut self, piece: Bytes) -> Result<(), StorageError> {
        if piece.len() >= SMALL_PIECE && self.small.is_empty() {
            return self.hand_over(piece).await;
        }
        self.small.extend_from_slice(&piece);
        if self.small.len() >= SMALL_PIECE {
            let gathered = self.small.split().freeze();
            self.hand_over(gathered).await?;
        }
        Ok(())
    }

    async fn hand_over(&mut self, piece: Bytes) -> Result<(), StorageError> {
        if let Some(lane) = self.hashing.as_mut() {
            lane.push(piece.clone()).await?;
        }
        self.writing.push(piece).await
    }

    /// Hashes and writes what is left (both lanes at once); the bytes
    /// written and the hasher.
    async fn finish(mut self) -> Result<(u64, Option<Hasher>), StorageError> {
        if !self.small.is_empty() {
            let gathered = self.small.split().freeze();
            self.hand_over(gathered).await?;
        }
        if let Some(lane) = self.hashing.as_mut() {
            lane.close().await?;
        }
        self.writing.close().await?;
        let hasher = match self.hashing {
            Some(lane) => Some(lane.join().await?),
            None => None,
        };
        let (_, written) = self.writing.join().await?;
        Ok((written, hasher))
    }
}

fn hash(hasher: &mut Hasher, pieces: &[Bytes]) -> io::Result<()> {
    for piece in pieces {
        hasher.update(piece);
    }
    Ok(())
}

fn write((file, written): &mut (std::fs::File, u64), pieces: &[Bytes]) -> io::Result<()> {
    for piece in pieces {
        file.write_all(piece)?;
        *written += piece.len() as u64;
    }
    Ok(())
}

type Work<T> = fn(&mut T, &[Bytes]) -> io::Result<()>;

/// Pieces are queued for a lane's job in batches of about this many bytes:
/// a job that caught up sleeps until the next batch, and fewer, larger
/// batches wake it less often.
const BATCH_BYTES: usize = 1024 * 1024;
/// The most bytes of pieces one lane holds queued or being worked on, besides
/// the batch it is gathering. Each piece pins its share of a connection's
/// read buffer, so this bounds an upload's memory.
const LANE_BYTES: usize = 8 * 1024 * 1024;
/// How long one job of a lane keeps its thread at most, even with batches
/// queued: long next to handing work over, short enough that busy uploads
/// take turns with all other work on the blocking pool.
const TURN: Duration = Duration::from_millis(50);
/// How long a job waits for the next batch before it gives its thread back:
/// longer than batches take to come from a client that is sending (one every
/// millisecond or so), short, so a slow or idle client holds a thread for
/// little of its time.
const LINGER: Duration = Duration::from_millis(5);

/// A batch of pieces queued for a lane's job, with its share of the lane's room.
type Queued = (Vec<Bytes>, OwnedSemaphorePermit);

/// How a lane's job ended.
enum Ended {
    /// Its [`TURN`] was over, or no batch came within [`LINGER`]; batches
    /// may be queued.
    Turn,
    /// The lane was closed and everything queued is done.
    Drained,
}

/// One kind of work over an upload's pieces, in order, by one job at a time
/// on the blocking pool. A job takes batches from the lane's queue as they
/// come, until its [`TURN`] is over or none comes within [`LINGER`]; the
/// next batch sent, or a request waiting for room, starts another.
/// [`LANE_BYTES`] bounds what the queue holds.
struct Lane<T> {
    /// Pieces gathered for the next batch.
    batch: Vec<Bytes>,
    batch_bytes: usize,
    /// `None` once closed: the job then drains the queue and ends.
    queue: Option<mpsc::Sender<Queued>>,
    room: Arc<Semaphore>,
    /// The lane's state and the queue's receiving end while no job has them.
    idle: Option<(T, mpsc::Receiver<Queued>)>,
    job: Option<JoinHandle<Finished<T>>>,
    /// Jobs started so far.
    jobs: usize,
    work: Work<T>,
    hold: Hold,
}

/// What a job hands back: the state, and the queue's receiving end unless
/// the work failed (dropping it ends the request's sends).
type Finished<T> = (T, Option<mpsc::Receiver<Queued>>, io::Result<Ended>);

impl<T: Send + 'static> Lane<T> {
    fn new(state: T, work: Work<T>, hold: Hold) -> Self {
        let (queue, queued) = mpsc::channel();
        Lane {
            batch: Vec::new(),
            batch_bytes: 0,
            queue: Some(queue),
            room: Arc::new(Semaphore::new(LANE_BYTES)),
            idle: Some((state, queued)),
            job: None,
            jobs: 0,
            work,
            hold,
        }
    }

    /// Adds a piece to the batch, and queues the batch once it is full. A
    /// push dropped while it waits leaves its piece in the batch.
    async fn push(&mut self, piece: Bytes) -> Result<(), StorageError> {
        self.batch_bytes += piece.len();
        self.batch.push(piece);
        if self.batch_bytes < BATCH_BYTES {
            return Ok(());
        }
        self.send().await
    }

    /// Queues the batch once the lane has room for it, and starts a job to
    /// take it unless one is running. A batch larger than the lane waits for
    /// it to empty.
    async fn send(&mut self) -> Result<(), StorageError> {
        let share = self.batch_bytes.min(LANE_BYTES) as u32;
        let room = Arc::clone(&self.room).acquire_many_owned(share);
        tokio::pin!(room);
        let permit = loop {
            // Room comes only from a job's work: one whose turn ends while
            // this waits is followed by another.
            if self.job.is_none() && !self.start() {
                return Err(lost());
            }
            let job = self.job.as_mut().ok_or_else(lost)?;
            tokio::select! {
                biased;
                permit = &mut room => break permit.map_err(|_| lost())?,
                finished = job => {
                    self.job = None;
                    self.take_back(finished)?;
                }
            }
        };
        if self.job.as_ref().is_some_and(|job| job.is_finished()) {
            self.settle().await?;
        }
        if self.job.is_none() && !self.start() {
            return Err(lost());
        }
        let queue = self.queue.as_ref().ok_or_else(lost)?;
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        if queue.send((batch, permit)).is_err() {
            // The job failed and dropped its end: its error says why.
            self.settle().await?;
            return Err(lost());
        }
        Ok(())
    }

    /// Waits for the running job, if any, and takes the state back.
    async fn settle(&mut self) -> Result<Option<Ended>, StorageError> {
        let Some(job) = self.job.take() else {
            return Ok(None);
        };
        self.take_back(job.await).map(Some)
    }

    /// Takes the state back from an ended job.
    fn take_back(
        &mut self,
        finished: Result<Finished<T>, tokio::task::JoinError>,
    ) -> Result<Ended, StorageError> {
        let (state, queued, ended) = finished.map_err(blocking_err)?;
        let ended = ended.map_err(StorageError::Io)?;
        self.idle = Some((state, queued.ok_or_else(lost)?));
        Ok(ended)
    }

    /// Starts a job on the queue; false if the lane has no state to start
    /// one with (a job failed).
    fn start(&mut self) -> bool {
        let Some((mut state, queued)) = self.idle.take() else {
            return false;
        };
        let (work, hold) = (self.work, self.hold.clone());
        self.jobs += 1;
        self.job = Some(tokio::task::spawn_blocking(move || {
            let _hold = hold;
            let over = Instant::now() + TURN;
            loop {
                let left = over.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return (state, Some(queued), Ok(Ended::Turn));
                }
                let (batch, share) = match queued.recv_timeout(left.min(LINGER)) {
                    Ok(queued) => queued,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        return (state, Some(queued), Ok(Ended::Turn));
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return (state, Some(queued), Ok(Ended::Drained));
                    }
                };
                if let Err(e) = work(&mut state, &batch) {
                    // The receiving end goes before the room it frees, so no
                    // batch is sent into a queue that no job will take.
                    drop(queued);
                    drop(share);
                    return (state, None, Err(e));
                }
            }
        }));
        true
    }

    /// No more pieces: queues what is gathered, and the job then finishes
    /// the queue and ends.
    async fn close(&mut self) -> Result<(), StorageError> {
        if !self.batch.is_empty() {
            self.send().await?;
        }
        self.queue = None;
        Ok(())
    }

    /// Waits until everything queued is done; the lane's state.
    async fn join(mut self) -> Result<T, StorageError> {
        self.close().await?;
        loop {
            let ended = self.settle().await?;
            // Queued batches hold their share of the room until done, so a
            // full room means nothing is left, even after a job whose turn
            // ended just before the last batch came.
            if matches!(ended, Some(Ended::Drained)) || self.room.available_permits() == LANE_BYTES
            {
                break;
            }
            if !self.start() {
                return Err(lost());
            }
        }
        self.idle.map(|(state, _)| state).ok_or_else(lost)
    }
}

fn lost() -> StorageError {
    StorageError::Io(io::Error::other("an upload job was lost"))
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

    /// A hashing pipeline into `path`.
    fn hashing_into(path: &Path) -> Pipeline {
        let file = std::fs::File::create(path).unwrap();
        let hasher = Some(Hasher::new(crate::oci::Algorithm::Sha256));
        Pipeline::new(file, hasher, Arc::new(()))
    }

    /// Finishes `pipeline` and checks it wrote and hashed exactly `expected`.
    async fn finished_as(pipeline: Pipeline, path: &Path, expected: &[u8]) {
        let (written, hasher) = pipeline.finish().await.unwrap();
        assert_eq!(written, expected.len() as u64);
        assert_eq!(
            hasher.unwrap().finish(),
            Digest::compute(crate::oci::Algorithm::Sha256, expected)
        );
        assert!(std::fs::read(path).unwrap() == expected);
    }

    /// Pieces of every size, many times a lane's room in all and with the
    /// lanes at different paces, are written and hashed whole and in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pipeline_writes_and_hashes_every_piece_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("staged");
        let mut pipeline = hashing_into(&path);
        let mut expected = Vec::new();
        let sizes = [
            1,
            300_000,
            7,
            LANE_BYTES / 4,
            65_536,
            LANE_BYTES + 3,
            0,
            123_457,
        ];
        for (i, size) in sizes.iter().cycle().take(40).enumerate() {
            let piece: Vec<u8> = (0..*size).map(|j| (i * 31 + j) as u8).collect();
            expected.extend_from_slice(&piece);
            pipeline.push(Bytes::from(piece)).await.unwrap();
        }
        finished_as(pipeline, &path, &expected).await;
    }

    /// Tiny pieces (1-byte chunks) are copied together into pieces of at
    /// least [`SMALL_PIECE`] before they reach a lane, so a lane's room holds
    /// a few hundred pieces at most whatever the client sends.
    #[tokio::test]
    async fn tiny_pieces_are_gathered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("staged");
        let mut pipeline = hashing_into(&path);
        let total = 3 * SMALL_PIECE + 17;
        for i in 0..total {
            pipeline.push(Bytes::from(vec![i as u8])).await.unwrap();
            assert_eq!(pipeline.small.len(), (i + 1) % SMALL_PIECE);
        }
        let expected: Vec<u8> = (0..total).map(|i| i as u8).collect();
        finished_as(pipeline, &path, &expected).await;
    }

    /// A lane whose work is stuck takes pieces up to its room and one batch
    /// gathering, and no more: the request then waits, and the client with it.
    #[tokio::test]
    async fn a_stuck_lane_holds_at_most_its_room() {
        static OPEN: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
        static OPENED: std::sync::Condvar = std::sync::Condvar::new();
        /// Opens the gate however the test ends, so that a failed assertion
        /// fails the test rather than hang it on the stuck job.
        struct Gate;
        impl Drop for Gate {
            fn drop(&mut self) {
                *OPEN.lock().unwrap_or_else(|p| p.into_inner()) = true;
                OPENED.notify_all();
            }
        }
        fn stuck(done: &mut usize, pieces: &[Bytes]) -> io::Result<()> {
            let mut open = OPEN.lock().unwrap();
            while !*open {
                open = OPENED.wait(open).unwrap();
            }
            *done += pieces.iter().map(Bytes::len).sum::<usize>();
            Ok(())
        }
        let gate = Gate;
        let mut lane = Lane::new(0usize, stuck, Arc::new(()));
        let piece = Bytes::from(vec![0u8; SMALL_PIECE]);
        let mut taken = 0;
        loop {
            let push = lane.push(piece.clone());
            tokio::pin!(push);
            let waited = tokio::time::timeout(Duration::from_millis(200), &mut push).await;
            if waited.is_err() {
                assert!(taken >= LANE_BYTES, "only {taken} bytes taken");
                // The work goes on, and the push that waited completes.
                drop(gate);
                push.await.unwrap();
                taken += piece.len();
                break;
            }
            taken += piece.len();
            assert!(taken < LANE_BYTES + BATCH_BYTES, "{taken} bytes taken");
        }
        assert_eq!(lane.join().await.unwrap(), taken);
    }

    /// A job gives its thread back when its turn is over (here: an idle
    /// client), and the next batch starts another; nothing is lost or
    /// reordered either way.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lane_ends_its_job_when_idle_and_starts_another() {
        fn record(seen: &mut Vec<u8>, pieces: &[Bytes]) -> io::Result<()> {
            for piece in pieces {
                seen.extend_from_slice(piece);
            }
            Ok(())
        }
        let mut lane = Lane::new(Vec::new(), record, Arc::new(()));
        let mut expected = Vec::new();
        for round in 0..3u8 {
            let piece = vec![round; BATCH_BYTES + usize::from(round)];
            expected.extend_from_slice(&piece);
            lane.push(Bytes::from(piece)).await.unwrap();
            assert_eq!(lane.jobs, usize::from(round) + 1, "the batch started a job");
            let job = lane.job.as_ref().expect("a full batch starts a job");
            let ended = async {
                while !job.is_finished() {
                    tokio::time::sleep(TURN).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(10), ended)
                .await
                .expect("an idle job ends");
        }
        lane.push(Bytes::from_static(b"end")).await.unwrap();
        expected.extend_from_slice(b"end");
        assert!(lane.join().await.unwrap() == expected);
    }

    /// Jobs end their turn even with batches queued (slow work, a request
    /// waiting for room), and the request's wait starts the next one: the
    /// lane never stalls.
    #[tokio::test]
    async fn a_waiting_request_outlasts_many_turns() {
        fn slow(done: &mut usize, pieces: &[Bytes]) -> io::Result<()> {
            std::thread::sleep(TURN / 2);
            *done += pieces.iter().map(Bytes::len).sum::<usize>();
            Ok(())
        }
        let mut lane = Lane::new(0usize, slow, Arc::new(()));
        let batches = LANE_BYTES / BATCH_BYTES + 6;
        let pushes = async {
            for _ in 0..batches {
                lane.push(Bytes::from(vec![0u8; BATCH_BYTES]))
                    .await
                    .unwrap();
            }
            let jobs = lane.jobs;
            (jobs, lane.join().await.unwrap())
        };
        let (jobs, done) = tokio::time::timeout(Duration::from_secs(30), pushes)
            .await
            .expect("the lane went on");
        assert_eq!(done, batches * BATCH_BYTES);
        // A turn has time for two batches of this work: one job that never
        // ended its turn would have taken them all.
        assert!(jobs >= 3, "{jobs} jobs");
    }

    /// A failed write ends the upload with the error, not a short blob.
    #[tokio::test]
    async fn a_failed_write_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("staged");
        std::fs::write(&path, b"").unwrap();
        // Opened read-only: every write fails.
        let file = std::fs::File::open(&path).unwrap();
        let mut pipeline = Pipeline::new(file, None, Arc::new(()));
        let mut pushed = Ok(());
        for _ in 0..8 {
            pushed = pipeline.push(Bytes::from(vec![1u8; LANE_BYTES / 4])).await;
            if pushed.is_err() {
                break;
            }
        }
        let failed = match pushed {
            Err(e) => e,
            Ok(()) => pipeline.finish().await.map(|_| ()).unwrap_err(),
        };
        // The write's own error, not a lost job.
        assert!(
            matches!(&failed, StorageError::Io(e) if e.raw_os_error() == Some(libc::EBADF)),
            "{failed}"
        );
    }

    /// A job outlives its dropped upload (a client that hung up) and keeps
    /// the hold, the session's turn, until it ends.
    #[tokio::test]
    async fn a_job_left_behind_keeps_the_hold_until_it_ends() {
        fn slow(_: &mut (), _: &[Bytes]) -> io::Result<()> {
            std::thread::sleep(std::time::Duration::from_millis(300));
            Ok(())
        }
        let hold: Hold = Arc::new(());
        let mut lane = Lane::new((), slow, hold.clone());
        lane.push(Bytes::from(vec![0u8; BATCH_BYTES]))
            .await
            .unwrap();
        assert!(lane.job.is_some(), "a full batch starts a job");
        drop(lane);
        assert!(Arc::strong_count(&hold) > 1, "the running job holds it");
        let released = async {
            while Arc::strong_count(&hold) > 1 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), released)
            .await
            .expect("released when the job ends");
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
