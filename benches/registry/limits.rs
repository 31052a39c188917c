//! The machine's own limits, measured the way Wharf is measured (same
//! loopback, same client reads, same file system), so every Wharf figure can
//! be printed as a fraction of what the hardware allows (each the best of
//! several runs, as the VM's figures vary from run to run):
//! - a loopback copy of a file by a tiny server that `sendfile`s it, and by
//!   one that `read`s and `write`s it in 1 MiB pieces: the ceiling of a pull;
//! - eight such `sendfile` copies at once: the ceiling of concurrent pulls;
//! - SHA-256 on one core (the `sha2` crate Wharf uses): the ceiling of a push,
//!   which must hash every byte;
//! - writing a file in 1 MiB pieces, and receiving a loopback stream into a
//!   file: what the disk and the socket allow a push without hashing (new
//!   files, kept or removed as the benchmark's pushes are);
//! - the CPU a push cannot avoid: the CPU time (client and receiver, both in
//!   this process) of receiving a loopback stream into a file, plus hashing
//!   on one core. With every core busy and no overhead at all, the machine
//!   allows at most `cores / (receive CPU + hash CPU)` per second; where the
//!   client, the copies and the hashing share few cores, this and not
//!   single-core SHA-256 is the ceiling of a push;
//! - what a tiny program reaches doing a push's work and nothing else: a
//!   loopback stream received into a file in 1 MiB pieces and hashed, with
//!   one thread receiving and writing and a second hashing, or a thread
//!   receiving and two working on each piece at once, one writing and one
//!   hashing (the better of the two). No scheduler packs the client and these
//!   busy threads on few cores perfectly, so this measured figure may stay
//!   below the bound above.
//!
//! The VM's figures drift by a third within minutes, so the three limits the
//! goals name (one `sendfile` copy, eight at once, the push without HTTP)
//! are measured again in rounds that alternate with Wharf's own runs
//! ([`pull_sendfile`], [`pull_sendfile_8`], [`push_without_http`], and
//! [`pull_sendfile_blocking`] for the blocking client): a ratio then compares
//! runs of the same minutes. The rest are measured once.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{MIB, mb_per_s};

pub struct Limits {
    /// One stream, `sendfile` server.
    pub sendfile: f64,
    /// One stream, `read` + `write` server with 1 MiB buffers.
    pub copy: f64,
    /// Eight streams at once, `sendfile` server, aggregate.
    pub sendfile_8: f64,
    pub sha256: f64,
    pub file_write: f64,
    /// A loopback stream received into a file (1 MiB reads and writes).
    pub receive_to_file: f64,
    /// The same, hashed as it is written, by the better of two thread
    /// layouts: a push without HTTP.
    pub receive_hashed: f64,
    /// MB/s with every core spent on receiving into a file and hashing.
    pub cpu_bound_push: f64,
    /// CPU seconds per MB of receiving into a file (client and receiver).
    pub receive_cpu: f64,
    /// Of that, the receiver's: what a server spends at least besides hashing.
    pub receiver_cpu: f64,
    pub cores: usize,
    /// The thread layout that gave `receive_hashed`.
    pub push_layout: Layout,
}

impl Limits {
    /// What loopback, disk and hashing together allow a push on this
    /// machine: no more than writing the file or receiving into it, no more
    /// than hashing on one core, no more than the cores can do of both, and
    /// no more than a tiny program doing just that reaches.
    pub fn combined_push(&self) -> f64 {
        self.receive_to_file
            .min(self.receive_hashed)
            .min(self.file_write)
            .min(self.sha256)
            .min(self.cpu_bound_push)
    }

    /// The push goal of a series of pushes: 0.7× single-core SHA-256, or
    /// 0.9× what the push without HTTP reached in the same rounds when that
    /// is lower (the figures measured once, minutes before, are left out:
    /// a slow minute there would only lower the goal).
    pub fn push_goal(&self, push_without_http: f64) -> (f64, &'static str) {
        if 0.7 * self.sha256 <= 0.9 * push_without_http {
            (0.7 * self.sha256, "0.7× single-core SHA-256")
        } else {
            (
                0.9 * push_without_http,
                "0.9× the push without HTTP in the same rounds",
            )
        }
    }
}

#[derive(Clone, Copy)]
enum Serve {
    Sendfile,
    Copy,
}

/// Measures every limit with `data` (the blob size of the run) and
/// `concurrent` (the blob of the concurrent pulls), files kept in `dir`.
pub async fn measure(dir: &Path, data: &[u8], concurrent: &[u8]) -> Limits {
    let big = dir.join("limits-blob");
    let mut file_write = write_file(&big, data);
    for _ in 0..2 {
        file_write = file_write.max(write_file(&dir.join(REPEAT), data));
        repeat_done(dir);
    }
    let small = dir.join("limits-concurrent");
    write_file(&small, concurrent);

    let mut sha256 = 0f64;
    for _ in 0..3 {
        let start = Instant::now();
        std::hint::black_box(Sha256::digest(data));
        sha256 = sha256.max(mb_per_s(data.len(), start.elapsed()));
    }

    let mut sendfile = 0f64;
    let mut copy = 0f64;
    for _ in 0..5 {
        sendfile = sendfile.max(pull_sendfile(&big).await);
        copy = copy.max(pull_once(&big, Serve::Copy).await);
    }
    let mut sendfile_8 = 0f64;
    for _ in 0..3 {
        sendfile_8 = sendfile_8.max(pull_sendfile_8(&small).await);
    }
    let mut receive_to_file = 0f64;
    let mut receive_cpu = f64::INFINITY;
    let mut receiver_cpu = f64::INFINITY;
    for name in ["limits-received", REPEAT, REPEAT] {
        let (rate, cpu, receiver) = receive(&dir.join(name), data, Layout::Plain).await;
        receive_to_file = receive_to_file.max(rate);
        receive_cpu = receive_cpu.min(cpu);
        receiver_cpu = receiver_cpu.min(receiver);
        repeat_done(dir);
    }
    let mut receive_hashed = 0f64;
    let mut push_layout = Layout::HashLane;
    for how in [Layout::HashLane, Layout::TwoLanes] {
        // More runs than the others: this figure picks the layout the push
        // rounds use, and the VM's page cache makes single runs vary by a
        // factor of three.
        for name in [PUSHED, REPEAT, REPEAT, REPEAT, REPEAT] {
            let (rate, _, _) = receive(&dir.join(name), data, how).await;
            if rate > receive_hashed {
                (receive_hashed, push_layout) = (rate, how);
            }
            repeat_done(dir);
        }
        let _ = std::fs::remove_file(dir.join(PUSHED));
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let cpu_bound_push = cores as f64 / (receive_cpu + 1.0 / sha256);
    for file in ["limits-blob", "limits-concurrent", "limits-received"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    Limits {
        sendfile,
        copy,
        sendfile_8,
        sha256,
        file_write,
        receive_to_file,
        receive_hashed,
        cpu_bound_push,
        receive_cpu,
        receiver_cpu,
        cores,
        push_layout,
    }
}

/// One loopback copy of `path` by the tiny `sendfile` server; MB/s.
pub async fn pull_sendfile(path: &Path) -> f64 {
    pull_once(path, Serve::Sendfile).await
}

/// One loopback copy of `path` by the tiny `sendfile` server, read by a
/// blocking client on its own thread; MB/s.
pub async fn pull_sendfile_blocking(path: &Path) -> f64 {
    let port = serve(path, Serve::Sendfile, 1);
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mut buf = vec![0u8; MIB];
        let start = Instant::now();
        let total = drain(&mut stream, &mut buf);
        mb_per_s(total, start.elapsed())
    })
    .await
    .expect("blocking pull")
}

/// Reads `stream` to its end through `buf` with blocking reads; the bytes read.
fn drain(stream: &mut TcpStream, buf: &mut [u8]) -> usize {
    let mut total = 0;
    loop {
        let n = stream.read(buf).expect("read");
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// Eight loopback copies of `path` at once by the tiny `sendfile` server;
/// aggregate MB/s.
pub async fn pull_sendfile_8(path: &Path) -> f64 {
    let port = serve(path, Serve::Sendfile, 8);
    let start = Instant::now();
    let pulls: Vec<_> = (0..8).map(|_| tokio::spawn(read_all(port))).collect();
    let mut total = 0;
    for pull in pulls {
        total += pull.await.expect("pull");
    }
    mb_per_s(total, start.elapsed())
}

/// One run of the tiny push program laid out as `how` (the push without
/// HTTP) into a file in `dir`, removed once measured as a repeated push's
/// staged copy is; MB/s.
pub async fn push_without_http(dir: &Path, data: &[u8], how: Layout) -> f64 {
    let (rate, _, _) = receive(&dir.join(REPEAT), data, how).await;
    repeat_done(dir);
    rate
}

/// Removes a repeat's file, as Wharf drops the staged copy of a blob pushed
/// again. The files are written the way a benchmark's pushes are: the first
/// is kept (the stored blob), the repeats go into a new file that is then
/// removed. On a VM this matters: filling page cache in memory the guest has
/// not used lately (memory handed back to the host) costs several times the
/// CPU of refilling pages just freed, so a limit measured by overwriting
/// one file would be one no push can reach.
fn repeat_done(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(REPEAT));
}

/// The file a repeated write or receive goes into.
const REPEAT: &str = "limits-repeat";
/// The file the first of a series of pushes without HTTP goes into (kept
/// until the series ends, as a first push keeps its blob).
const PUSHED: &str = "limits-pushed";

/// Writes `data` to `path` in 1 MiB writes (no fsync, as Wharf); MB/s.
fn write_file(path: &Path, data: &[u8]) -> f64 {
    let start = Instant::now();
    let mut file = std::fs::File::create(path).expect("create");
    for piece in data.chunks(MIB) {
        file.write_all(piece).expect("write");
    }
    mb_per_s(data.len(), start.elapsed())
}

/// One loopback copy of `path` served as `how`; MB/s.
async fn pull_once(path: &Path, how: Serve) -> f64 {
    let port = serve(path, how, 1);
    let start = Instant::now();
    let received = read_all(port).await;
    mb_per_s(received, start.elapsed())
}

/// Serves `path` to the next `connections` connections, each on a thread.
fn serve(path: &Path, how: Serve, connections: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        for _ in 0..connections {
            let (socket, _) = listener.accept().expect("accept");
            let path = path.clone();
            std::thread::spawn(move || send(&path, socket, how));
        }
    });
    port
}

fn send(path: &PathBuf, mut socket: TcpStream, how: Serve) {
    let mut file = std::fs::File::open(path).expect("open");
    match how {
        Serve::Sendfile => {
            // As Wharf sends: a non-blocking socket, at most 4 MiB a call,
            // waiting for room with poll(2).
            socket.set_nonblocking(true).expect("nonblocking");
            let mut left = file.metadata().expect("stat").len() as usize;
            while left > 0 {
                // SAFETY: both descriptors are open; a null offset uses the file's position.
                let sent = unsafe {
                    libc::sendfile(
                        socket.as_raw_fd(),
                        file.as_raw_fd(),
                        std::ptr::null_mut(),
                        left.min(4 * MIB),
                    )
                };
                if sent < 0 {
                    let e = std::io::Error::last_os_error();
                    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "sendfile: {e}");
                    let mut room = libc::pollfd {
                        fd: socket.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&mut room, 1, -1) };
                    continue;
                }
                assert!(sent > 0, "sendfile sent nothing");
                left -= sent as usize;
            }
        }
        Serve::Copy => {
            let mut buf = vec![0u8; MIB];
            loop {
                let n = file.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                socket.write_all(&buf[..n]).expect("write");
            }
        }
    }
}

/// Reads a connection to its end as the benchmark's client reads bodies.
async fn read_all(port: u16) -> usize {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut buf = vec![0u8; MIB];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// CPU time used, in seconds: by this process (`RUSAGE_SELF`, all threads)
/// or by the calling thread (`RUSAGE_THREAD`).
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the struct it is given; both `who` are valid.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(who, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// How the threads receiving a loopback stream into a file share the work.
#[derive(Clone, Copy, Debug)]
pub enum Layout {
    /// One thread reads and writes, with one 1 MiB buffer.
    Plain,
    /// That thread also hands each piece to a second one that hashes it.
    HashLane,
    /// The receiving thread only reads, and hands each piece to a thread
    /// that writes it and to one that hashes it, which work at once.
    TwoLanes,
}

/// Sends a fresh copy of `data` over loopback to threads that receive it
/// into `path` laid out as `how`; MB/s from connect until the last byte is
/// written (and hashed), the CPU seconds per MB this process spent (the
/// client, the receiving thread and any lanes), and those of the receiving
/// thread alone.
async fn receive(path: &Path, data: &[u8], how: Layout) -> (f64, f64, f64) {
    // Resending one 1 GiB buffer again and again gets slower on this VM (see
    // the pushes in `registry.rs`), so each run sends a new copy.
    let data = data.to_vec();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // The file and the buffers are made before the clock starts.
    let file = std::fs::File::create(path).expect("create");
    let (mut file, lanes) = match how {
        Layout::Plain => (Some(file), Lanes::start(1, vec![])),
        Layout::HashLane => (Some(file), Lanes::start(BUFFERS, vec![hashing()])),
        Layout::TwoLanes => (None, Lanes::start(BUFFERS, vec![writing(file), hashing()])),
    };
    let receiver = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        let cpu = cpu_seconds(libc::RUSAGE_THREAD);
        loop {
            let mut buf = lanes.free.recv().expect("a free buffer");
            let n = socket.read(&mut buf).expect("read");
            if n == 0 {
                let cpu = cpu_seconds(libc::RUSAGE_THREAD) - cpu;
                lanes.finish();
                return (Instant::now(), cpu);
            }
            if let Some(file) = file.as_mut() {
                file.write_all(&buf[..n]).expect("write");
            }
            lanes.pass(buf, n);
        }
    });
    let cpu = cpu_seconds(libc::RUSAGE_SELF);
    let start = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(&data).await.expect("send");
    stream.shutdown().await.expect("shutdown");
    let (end, receiver_cpu) =
        tokio::task::spawn_blocking(move || receiver.join().expect("receiver"))
            .await
            .expect("join");
    let cpu = cpu_seconds(libc::RUSAGE_SELF) - cpu;
    let mb = data.len() as f64 / 1e6;
    (
        mb_per_s(data.len(), end - start),
        cpu / mb,
        receiver_cpu / mb,
    )
}

type Piece = (Arc<Vec<u8>>, usize);
type Work = Box<dyn FnMut(&[u8]) + Send>;

/// Buffers in flight: how far a lane may lag behind the receiving thread.
const BUFFERS: usize = 16;

fn hashing() -> Work {
    let mut hasher = Sha256::new();
    Box::new(move |piece| {
        hasher.update(piece);
        std::hint::black_box(&hasher);
    })
}

fn writing(mut file: std::fs::File) -> Work {
    Box::new(move |piece| file.write_all(piece).expect("write"))
}

/// Threads beside the receiving one, each doing its work on every piece; the
/// last done with a piece gives its buffer back. A fixed set of 1 MiB
/// buffers bounds how far a lane may lag behind.
struct Lanes {
    lanes: Vec<(SyncSender<Piece>, std::thread::JoinHandle<()>)>,
    free: mpsc::Receiver<Vec<u8>>,
    give_back: mpsc::Sender<Vec<u8>>,
}

impl Lanes {
    fn start(buffers: usize, works: Vec<Work>) -> Lanes {
        let (give_back, free) = mpsc::channel();
        for _ in 0..buffers {
            // Touched now, not while the clock runs.
            give_back.send(vec![1u8; MIB]).expect("free list");
        }
        let lanes = works
            .into_iter()
            .map(|mut work| {
                let (to_lane, pieces) = mpsc::sync_channel::<Piece>(buffers);
                let give_back = give_back.clone();
                let thread = std::thread::spawn(move || {
                    for (buf, n) in pieces {
                        work(&buf[..n]);
                        if let Some(buf) = Arc::into_inner(buf) {
                            give_back.send(buf).expect("free list");
                        }
                    }
                });
                (to_lane, thread)
            })
            .collect();
        Lanes {
            lanes,
            free,
            give_back,
        }
    }

    fn pass(&self, buf: Vec<u8>, n: usize) {
        let buf = Arc::new(buf);
        for (lane, _) in &self.lanes {
            lane.send((buf.clone(), n)).expect("a lane");
        }
        if let Some(buf) = Arc::into_inner(buf) {
            self.give_back.send(buf).expect("free list");
        }
    }

    /// Waits until every lane is done with every piece.
    fn finish(self) {
        for (lane, thread) in self.lanes {
            drop(lane);
            thread.join().expect("a lane");
        }
    }
}
