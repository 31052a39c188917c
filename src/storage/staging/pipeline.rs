//! The local-disk append: an upload's pieces hashed and written on the
//! blocking pool while the request's task receives the next ones.

use std::io::{self, Write};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::{Hold, blocking_err};
use crate::oci::Hasher;
use crate::storage::blobs::StorageError;

/// Hashes and writes an upload's pieces on the blocking pool while the
/// request's task receives the next ones. Hashing and writing are two lanes,
/// each with a queue that its job takes batches from as they come, so a lane
/// with work queued goes on while the request's task waits (for the client,
/// or for room in the other lane), and the two wait for each other only at
/// the end: the slower one (hashing, on most machines) may lag while the
/// other goes on, and the scheduler can spread the work over the cores.
pub(super) struct Pipeline {
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
    pub(super) fn new(file: std::fs::File, hasher: Option<Hasher>, hold: Hold) -> Self {
        Pipeline {
            hashing: hasher.map(|h| Lane::new(h, hash, hold.clone())),
            writing: Lane::new((file, 0), write, hold),
            small: BytesMut::new(),
        }
    }

    pub(super) async fn push(&mut self, piece: Bytes) -> Result<(), StorageError> {
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
    pub(super) async fn finish(mut self) -> Result<(u64, Option<Hasher>), StorageError> {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::oci::Digest;

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
}
