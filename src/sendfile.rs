//! Zero-copy file bodies on plain-TCP HTTP/1 connections: blob bytes go from
//! the page cache to the socket with `sendfile(2)`, never through user space.
//!
//! hyper writes every response itself, so the file cannot be handed to it.
//! Instead a [`FileBody`] yields *placeholders*: slices of one static buffer
//! that are never read, each announcing a span of the file to the connection.
//! hyper counts them against `Content-Length` and queues them for a vectored
//! write like any chunk; [`SendfileStream`], the connection's socket, knows the
//! placeholder buffer by address, and where hyper would write its bytes it
//! `sendfile`s the announced span instead. Spans are announced and written in
//! the same order (HTTP/1 writes one response after another), so a FIFO pairs
//! them, and each placeholder starts at a tag offset its span carries, which
//! the socket checks. hyper must queue chunks rather than copy them into one
//! buffer: `writev(true)`, and never `pipeline_flush`, which flattens. TLS
//! and HTTP/2 connections never get a [`Sink`], so their bodies are read.
//! Once a body fills the socket, the rest goes through a pipe of the
//! connection's own (`splice(2)`, file to pipe to socket; see [`Pipe`]).
//! Depends on nothing of Wharf's.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The largest span one placeholder announces.
const SPAN_MAX: usize = 4 * 1024 * 1024;
/// How far apart read-ahead is waited for within a span.
const PROBE_STEP: usize = 256 * 1024;
/// Placeholders start at one of `TAGS` offsets, `TAG_STEP` apart, in turn, so
/// the socket can check that a placeholder belongs to the span it pairs it
/// with (a mismatch ends the connection rather than send the wrong bytes).
const TAGS: usize = 64;
const TAG_STEP: usize = 4096;
/// Lives in `.bss` and is never read, so it costs address space, not memory.
static PLACEHOLDER: [u8; SPAN_MAX + TAGS * TAG_STEP] = [0; SPAN_MAX + TAGS * TAG_STEP];

/// Where `bytes` starts inside the placeholder buffer, if it lies there.
fn placeholder_at(bytes: &[u8]) -> Option<usize> {
    let at = (bytes.as_ptr() as usize).checked_sub(PLACEHOLDER.as_ptr() as usize)?;
    (!bytes.is_empty() && at < PLACEHOLDER.len()).then_some(at)
}

/// A part of a file to send where a placeholder of the same length stands.
struct Span {
    file: Arc<File>,
    offset: u64,
    /// Bytes left to send.
    len: usize,
    /// Where in the placeholder buffer the next unsent byte's placeholder is.
    at: usize,
    /// The body's last span.
    last: bool,
}

/// Spans announced by bodies and not yet written, in order, for one connection.
#[derive(Default)]
struct Spans(Mutex<(VecDeque<Span>, usize)>);

impl Spans {
    /// Queues a span; returns where its placeholder starts.
    fn push(&self, mut span: Span) -> usize {
        let mut spans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let tag = (spans.1 % TAGS) * TAG_STEP;
        spans.1 = spans.1.wrapping_add(1);
        span.at = tag;
        spans.0.push_back(span);
        tag
    }

    fn pop(&self) -> Option<Span> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .pop_front()
    }
}

/// A request extension: this request's connection can send files itself.
#[derive(Clone)]
pub struct Sink(Arc<Spans>);

/// Wraps a plain TCP connection so its responses may carry [`FileBody`]s;
/// the [`Sink`] goes into each HTTP/1 request's extensions.
pub fn stream(tcp: TcpStream) -> (SendfileStream, Sink) {
    let spans = Arc::new(Spans::default());
    let stream = SendfileStream {
        tcp,
        spans: spans.clone(),
        current: None,
        bulk: false,
        pipe: None,
    };
    (stream, Sink(spans))
}

/// `len` bytes of `file` from `offset`, sent by the connection of `sink`.
pub struct FileBody {
    file: Arc<File>,
    next: u64,
    end: u64,
    sink: Sink,
    /// The next span being read into the page cache on the blocking pool:
    /// `sendfile` runs on the runtime, where a cache miss (a cold blob on a
    /// disk) would stall a worker thread for the whole read.
    ahead: Option<tokio::task::JoinHandle<()>>,
    /// Whether the kernel can say which pages are cached (`cachestat`), so
    /// that the job (a thread wake-up and context switches per span) starts
    /// only when there are reads to wait for: a hot pull needs no job at all.
    cachestat: bool,
}

/// `cachestat(2)` (Linux 6.5), numbered alike on every architecture; the
/// libc crate does not name it on most.
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether every page of the `len > 0` bytes at `offset` is in the page
/// cache (on tmpfs: in memory, not swapped out); an error when the kernel
/// or the file system cannot say.
fn cached(file: &File, offset: u64, len: usize) -> io::Result<bool> {
    let range = CachestatRange {
        off: offset,
        len: len as u64,
    };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both live locals
    // with the kernel's layout; the descriptor is open; flags must be 0.
    let done = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &raw const range,
            &raw mut stat,
            0 as libc::c_uint,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sysconf only reads a system constant.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| io::Error::other("no page size"))?;
    let pages = (offset + len as u64 - 1) / page - offset / page + 1;
    Ok(stat.nr_cache >= pages)
}

impl FileBody {
    pub fn new(file: File, offset: u64, len: u64, sink: Sink) -> Self {
        let mut body = FileBody {
            file: Arc::new(file),
            next: offset,
            end: offset.saturating_add(len),
            sink,
            ahead: None,
            cachestat: true,
        };
        body.read_ahead();
        body
    }

    /// The length of the next span.
    fn next_len(&self) -> usize {
        usize::try_from(self.end - self.next).map_or(SPAN_MAX, |left| left.min(SPAN_MAX))
    }

    /// Whether the span at `offset` is known to be in the page cache.
    fn resident(&mut self, offset: u64, len: usize) -> bool {
        if !self.cachestat {
            return false;
        }
        // An older kernel (ENOSYS) or a file system that cannot say: read
        // ahead every span of this body, as if nothing were cached.
        cached(&self.file, offset, len).unwrap_or_else(|_| {
            self.cachestat = false;
            false
        })
    }

    /// Starts reading the next span into the page cache, if any is left
    /// and not all of it is there already.
    fn read_ahead(&mut self) {
        let len = self.next_len();
        if len == 0 || self.resident(self.next, len) {
            return;
        }
        let (file, offset) = (self.file.clone(), self.next);
        self.ahead = Some(tokio::task::spawn_blocking(move || {
            let Ok(start) = libc::off64_t::try_from(offset) else {
                return;
            };
            // SAFETY: a plain syscall on a descriptor `file` keeps open; no
            // memory is passed. It fails harmlessly where a file system
            // has no read-ahead.
            unsafe {
                libc::readahead(file.as_raw_fd(), start, len);
            }
            // readahead only starts the reads: wait for them by reading a
            // byte every 256 KiB and the last one (returns at once when cached).
            let mut byte = [0u8; 1];
            let last = offset + len as u64 - 1;
            for at in (offset..last).step_by(PROBE_STEP).chain([last]) {
                if std::os::unix::fs::FileExt::read_at(&*file, &mut byte, at).is_err() {
                    return;
                }
            }
        }));
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let len = self.next_len();
        if len == 0 {
            return Poll::Ready(None);
        }
        if let Some(ahead) = self.ahead.as_mut() {
            // Only a hint: a failed read-ahead still lets sendfile read.
            let _ = ready!(Pin::new(ahead).poll(cx));
            self.ahead = None;
        }
        let span = Span {
            file: self.file.clone(),
            offset: self.next,
            len,
            at: 0,
            last: self.next + len as u64 == self.end,
        };
        let tag = self.sink.0.push(span);
        self.next += len as u64;
        self.read_ahead();
        let placeholder = Bytes::from_static(&PLACEHOLDER[tag..tag + len]);
        Poll::Ready(Some(Ok(Frame::data(placeholder))))
    }

    fn is_end_stream(&self) -> bool {
        self.next == self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.next)
    }
}

/// A TCP connection that sends announced file spans in place of placeholders.
pub struct SendfileStream {
    tcp: TcpStream,
    spans: Arc<Spans>,
    /// The span being sent and how much of it is left.
    current: Option<Span>,
    /// Nagle's algorithm is on: a file body under way has filled the socket.
    bulk: bool,
    /// While `bulk`, the pipe the rest of the body goes through (none if
    /// one could not be had: then `sendfile` goes on).
    pipe: Option<Pipe>,
}

/// A pipe of [`PIPE_SIZE`] that file pages are spliced into and from there
/// into the socket. `sendfile` does the same through a pipe of 16 pages it
/// keeps per thread; measured on loopback from tmpfs, splicing 256 KiB at a
/// time sent a 1 GiB file 1.14–1.33× as fast to a blocking or polling client
/// (of that, 64 KiB: 0.62–0.73×, 512 KiB: 0.96–0.98×, 1 MiB: 0.80–0.83×),
/// and 0.94–0.96× to a tokio client, whose wake-ups then set the pace. The
/// pages are referenced, not copied.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes of the current span spliced in and not yet out.
    held: usize,
}

const PIPE_SIZE: usize = 256 * 1024;

/// At most this many pipes at once (two descriptors and up to 64 pinned
/// pages each); bodies beyond them go on with `sendfile`. Bounds what slow
/// readers can hold, and leaves the user's pipe pages
/// (`fs.pipe-user-pages-soft`, 16384 by default) to other processes.
const PIPES_MAX: usize = 64;
static PIPES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Pipe {
    /// A non-blocking pipe of [`PIPE_SIZE`]; none when [`PIPES_MAX`] are
    /// open, the process is out of descriptors, or the user out of pipe
    /// pages.
    fn open() -> Option<Pipe> {
        use std::sync::atomic::Ordering::Relaxed;
        PIPES
            .fetch_update(Relaxed, Relaxed, |n| (n < PIPES_MAX).then_some(n + 1))
            .ok()?;
        let pipe = Pipe::create();
        if pipe.is_none() {
            PIPES.fetch_sub(1, Relaxed);
        }
        pipe
    }

    fn create() -> Option<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return None;
        }
        // SAFETY: both descriptors were just opened and are owned here alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let size = libc::c_int::try_from(PIPE_SIZE).ok()?;
        // SAFETY: fcntl on a descriptor owned here; no memory is passed.
        let set = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
        (set >= size).then_some(Pipe {
            read,
            write,
            held: 0,
        })
    }

    /// Splices the next piece of `span` from its file into the empty pipe;
    /// false when the file has ended. Runs outside the socket's `try_io`:
    /// an EAGAIN here (the pipe is non-blocking) must not pass for a full
    /// socket, whose readiness would then be cleared for nothing.
    fn fill(&mut self, span: &mut Span) -> io::Result<bool> {
        let mut offset = libc::loff_t::try_from(span.offset).map_err(io::Error::other)?;
        // SAFETY: both descriptors are open for the call; `offset` is an
        // exclusively borrowed loff_t the kernel advances.
        let moved = unsafe {
            libc::splice(
                span.file.as_raw_fd(),
                &mut offset,
                self.write.as_raw_fd(),
                std::ptr::null_mut(),
                span.len.min(PIPE_SIZE),
                0,
            )
        };
        match usize::try_from(moved) {
            Ok(0) => Ok(false),
            Ok(n) => {
                span.offset += n as u64;
                self.held = n;
                Ok(true)
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                Err(io::Error::other(format!("splice from a blob file: {e}")))
            }
        }
    }

    /// Sends what the pipe holds of `span` to the socket; the bytes sent.
    fn send(&mut self, tcp: &TcpStream, span: &Span) -> io::Result<usize> {
        // More of this span follows: let TCP fill its segments. Not across
        // spans: the next one may wait for its read-ahead.
        let more = if span.len > self.held {
            libc::SPLICE_F_MORE
        } else {
            0
        };
        // SAFETY: both descriptors are open for the call; no offsets (a
        // pipe and a socket have none).
        let sent = unsafe {
            libc::splice(
                self.read.as_raw_fd(),
                std::ptr::null_mut(),
                tcp.as_raw_fd(),
                std::ptr::null_mut(),
                self.held,
                libc::SPLICE_F_NONBLOCK | more,
            )
        };
        let sent = usize::try_from(sent).map_err(|_| io::Error::last_os_error())?;
        self.held -= sent;
        Ok(sent)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        PIPES.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl SendfileStream {
    /// Sends some of the current span (taking the next one if none is under
    /// way) for the placeholder bytes `at..at + len` hyper still counts as
    /// unwritten: always the rest of the placeholder it queued.
    fn poll_send_span(
        &mut self,
        cx: &mut Context<'_>,
        at: usize,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        if self.current.is_none() {
            self.current = self.spans.pop();
        }
        let Some(span) = self.current.as_mut() else {
            return Poll::Ready(Err(io::Error::other("a file placeholder without its span")));
        };
        if span.at != at || span.len != len {
            return Poll::Ready(Err(io::Error::other("a file placeholder out of step")));
        }
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            if let Some(pipe) = self.pipe.as_mut().filter(|p| p.held == 0)
                && !pipe.fill(span)?
            {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            let sent = self
                .tcp
                .try_io(Interest::WRITABLE, || match &mut self.pipe {
                    Some(pipe) => pipe.send(&self.tcp, span),
                    None => send(&self.tcp, span),
                });
            match sent {
                Ok(0) => {
                    // The file is shorter than it was when opened: end the
                    // connection short of its Content-Length.
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(n) => {
                    span.len -= n;
                    span.at += n;
                    let (filled, done) = (span.len > 0, span.len == 0 && span.last);
                    if span.len == 0 {
                        self.current = None;
                    }
                    // A body that fills the socket is sent with Nagle's
                    // algorithm, as a plain file server would: measured on
                    // loopback, a 1 GiB pull is ~10% slower with TCP_NODELAY.
                    // It is back on after the last byte (setting it pushes
                    // out the tail), so small responses are not held.
                    if filled && !self.bulk {
                        self.bulk = true;
                        let _ = self.tcp.set_nodelay(false);
                        self.pipe = Pipe::open();
                    } else if done && self.bulk {
                        self.bulk = false;
                        let _ = self.tcp.set_nodelay(true);
                        // Empty: it never holds more than the span's rest.
                        self.pipe = None;
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// One `sendfile(2)` call from the span's file to the socket; advances the
/// span's file offset (as [`Pipe::fill`] does on the other path).
fn send(tcp: &TcpStream, span: &mut Span) -> io::Result<usize> {
    let mut offset = libc::off_t::try_from(span.offset).map_err(io::Error::other)?;
    // SAFETY: both descriptors are open for the whole call (the socket and
    // the file are borrowed), and `offset` is a valid, exclusively borrowed
    // off_t that the kernel advances; no memory of ours is read or written.
    let sent = unsafe {
        libc::sendfile(
            tcp.as_raw_fd(),
            span.file.as_raw_fd(),
            &mut offset,
            span.len,
        )
    };
    let sent = usize::try_from(sent).map_err(|_| io::Error::last_os_error())?;
    span.offset += sent as u64;
    Ok(sent)
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(at) = placeholder_at(buf) {
            return self.poll_send_span(cx, at, buf.len());
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Ordinary bytes up to the first placeholder go out as one write;
        // a leading placeholder is sent from its file.
        match bufs.iter().position(|b| placeholder_at(b).is_some()) {
            Some(0) => match bufs
                .first()
                .and_then(|b| Some((placeholder_at(b)?, b.len())))
            {
                Some((at, len)) => self.poll_send_span(cx, at, len),
                None => Poll::Ready(Err(io::Error::other("a file placeholder vanished"))),
            },
            Some(first) => Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[..first]),
            None => Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_known_by_address() {
        assert_eq!(placeholder_at(&PLACEHOLDER[..10]), Some(0));
        assert_eq!(placeholder_at(&PLACEHOLDER[4096..]), Some(4096));
        assert_eq!(
            placeholder_at(&PLACEHOLDER[PLACEHOLDER.len() - 1..]),
            Some(PLACEHOLDER.len() - 1)
        );
        assert_eq!(placeholder_at(&PLACEHOLDER[..0]), None);
        assert_eq!(placeholder_at(&[0u8; 16]), None);
    }

    #[test]
    fn spans_take_tags_in_turn() {
        let spans = Spans::default();
        let file = Arc::new(tempfile::tempfile().unwrap());
        let span = || Span {
            file: file.clone(),
            offset: 0,
            len: 1,
            at: 0,
            last: false,
        };
        let tags: Vec<usize> = (0..TAGS + 1).map(|_| spans.push(span())).collect();
        assert_eq!(tags[1], TAG_STEP);
        assert_eq!(tags[TAGS], 0, "tags wrap around");
        assert_eq!(spans.pop().map(|s| s.at), Some(0));
        assert_eq!(spans.pop().map(|s| s.at), Some(TAG_STEP));
    }

    #[test]
    fn cachestat_finds_pages_missing_from_a_span() {
        use std::io::Write as _;
        const MIB: usize = 1024 * 1024;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![7u8; 4 * MIB]).unwrap();
        file.sync_all().unwrap();
        match cached(&file, 0, 4 * MIB) {
            Ok(all) => assert!(all, "a file just written is cached"),
            Err(e) => return eprintln!("skipped: no cachestat on this kernel ({e})"),
        }
        // SAFETY: fstatfs fills the zeroed struct it is given.
        let tmpfs = unsafe {
            let mut fs = std::mem::zeroed::<libc::statfs>();
            libc::fstatfs(file.as_raw_fd(), &mut fs) == 0 && fs.f_type == libc::TMPFS_MAGIC
        };
        if tmpfs {
            return eprintln!("skipped: tmpfs keeps its pages (TMPDIR on a disk tests this)");
        }
        // The second half's clean pages dropped (whole 2 MiB, the largest
        // folio: advice about part of a folio leaves it cached).
        // SAFETY: advice about an open descriptor; no memory is passed.
        let dropped = unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                2 * MIB as libc::off_t,
                2 * MIB as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        assert_eq!(dropped, 0);
        assert!(!cached(&file, 0, 4 * MIB).unwrap(), "the hole was not seen");
        assert!(!cached(&file, 3 * MIB as u64 + 5, 100).unwrap());
        assert!(cached(&file, 0, 2 * MIB).unwrap());
    }

    #[tokio::test]
    async fn a_file_cut_short_mid_pipe_ends_the_body_in_an_error() {
        use std::io::Write as _;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![5u8; 9 * 1024 * 1024]).unwrap();
        let cutter = file.try_clone().unwrap();
        let (mut client, server) = squeezed_pair().await;
        let (mut stream, sink) = stream(server);
        let mut body = FileBody::new(file, 0, 9 * 1024 * 1024, sink);

        let first = next(&mut body).await.unwrap();
        let sent = stream.write(&first).await.unwrap();
        assert!(stream.pipe.is_some(), "the socket filled");
        cutter.set_len(sent as u64 + 1000).unwrap();
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            let _ = client.read_to_end(&mut received).await;
            received.len()
        });
        let mut outcome = stream.write_all(&first[sent..]).await;
        while outcome.is_ok() {
            match next(&mut body).await {
                Some(placeholder) => outcome = stream.write_all(&placeholder).await,
                None => break,
            }
        }
        let e = outcome.expect_err("a short file was sent as whole");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        drop(stream);
        assert!(reader.await.unwrap() <= sent + 1000);
    }

    /// A loopback connection (client, server) with small socket buffers,
    /// so a few MiB unread fill it.
    async fn squeezed_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (client, accepted) = tokio::join!(
            TcpStream::connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        let (client, server) = (client.unwrap(), accepted.unwrap().0);
        shrink(&client, libc::SO_RCVBUF);
        shrink(&server, libc::SO_SNDBUF);
        (client, server)
    }

    /// Sets a socket buffer size option (the test's way to fill a socket).
    fn shrink(fd: &impl AsRawFd, option: libc::c_int) {
        let size: libc::c_int = 64 * 1024;
        // SAFETY: setsockopt reads one c_int from a live local.
        let set = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0);
    }

    async fn next(body: &mut FileBody) -> Option<Bytes> {
        std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut *body), cx))
            .await
            .map(|f| f.unwrap().into_data().unwrap())
    }

    /// Bytes that never repeat at any short period (a misplaced offset
    /// shows), from a 64-bit LCG.
    fn pattern(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect()
    }

    /// A 9 MiB body that fills the socket, then a small one on the same
    /// connection; with `pipe` false the connection may not have a pipe
    /// (none to be had) and goes on with `sendfile`.
    async fn bulk_then_small(pipe: bool) {
        use std::io::Write as _;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let big = pattern(9 * 1024 * 1024 + 77, 1);
        let small = pattern(5000, 2);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&big).unwrap();
        file.write_all(&small).unwrap();
        let (mut client, server) = squeezed_pair().await;
        server.set_nodelay(true).unwrap();
        let (mut stream, sink) = stream(server);
        let shared = file.try_clone().unwrap();
        let mut body = FileBody::new(file, 0, big.len() as u64, sink.clone());

        // Nobody reads yet: the first span fills the socket and is cut short.
        let first = next(&mut body).await.unwrap();
        let sent = stream.write(&first).await.unwrap();
        assert!(sent < first.len(), "the socket took a whole span");
        assert!(
            !stream.tcp.nodelay().unwrap(),
            "a bulk body is sent with Nagle"
        );
        assert!(stream.pipe.is_some(), "and through a pipe");
        if !pipe {
            stream.pipe = None;
        }
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.unwrap();
            received
        });
        stream.write_all(&first[sent..]).await.unwrap();
        while let Some(placeholder) = next(&mut body).await {
            stream.write_all(&placeholder).await.unwrap();
        }
        assert!(
            stream.tcp.nodelay().unwrap(),
            "the next response must not wait for ACKs"
        );
        assert!(stream.pipe.is_none(), "the pipe goes with the body");
        let mut second = FileBody::new(shared, big.len() as u64, small.len() as u64, sink);
        while let Some(placeholder) = next(&mut second).await {
            stream.write_all(&placeholder).await.unwrap();
        }
        stream.shutdown().await.unwrap();
        let received = reader.await.unwrap();
        assert_eq!(received.len(), big.len() + small.len());
        assert!(
            received[..big.len()] == big,
            "the file was not sent as it is"
        );
        assert!(received[big.len()..] == small, "the next body was not");
    }

    #[tokio::test]
    async fn a_body_that_fills_the_socket_is_sent_whole_through_a_pipe_then_nodelay_is_back() {
        bulk_then_small(true).await;
    }

    #[tokio::test]
    async fn without_a_pipe_sendfile_goes_on() {
        bulk_then_small(false).await;
    }
}
