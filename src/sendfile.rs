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
//! them. hyper must queue chunks rather than copy them (`writev(true)`); TLS
//! and HTTP/2 connections never get a [`Sink`], so their bodies are read.
//! Depends on nothing of Wharf's.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The largest span one placeholder announces. Its buffer lives in `.bss` and
/// is never touched, so it costs address space, not memory.
const SPAN_MAX: usize = 4 * 1024 * 1024;
static PLACEHOLDER: [u8; SPAN_MAX] = [0; SPAN_MAX];

/// Whether `bytes` lies inside the placeholder buffer.
fn is_placeholder(bytes: &[u8]) -> bool {
    let start = PLACEHOLDER.as_ptr() as usize;
    let at = bytes.as_ptr() as usize;
    !bytes.is_empty() && at >= start && at < start + SPAN_MAX
}

/// A part of a file to send where a placeholder of the same length stands.
struct Span {
    file: Arc<File>,
    offset: u64,
    len: usize,
}

/// Spans announced by bodies and not yet written, in order, for one connection.
#[derive(Default)]
struct Spans(Mutex<VecDeque<Span>>);

impl Spans {
    fn push(&self, span: Span) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(span);
    }

    fn pop(&self) -> Option<Span> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
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
    };
    (stream, Sink(spans))
}

/// `len` bytes of `file` from `offset`, sent by the connection of `sink`.
pub struct FileBody {
    file: Arc<File>,
    next: u64,
    end: u64,
    sink: Sink,
}

impl FileBody {
    pub fn new(file: File, offset: u64, len: u64, sink: Sink) -> Self {
        FileBody {
            file: Arc::new(file),
            next: offset,
            end: offset.saturating_add(len),
            sink,
        }
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let left = self.end - self.next;
        if left == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(left).map_or(SPAN_MAX, |left| left.min(SPAN_MAX));
        let span = Span {
            file: self.file.clone(),
            offset: self.next,
            len,
        };
        self.sink.0.push(span);
        self.next += len as u64;
        let placeholder = Bytes::from_static(&PLACEHOLDER[..len]);
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
}

impl SendfileStream {
    /// Sends up to `len` bytes of the current span (taking the next one if
    /// none is under way); `len` is what hyper still counts as unwritten.
    fn poll_send_span(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        if self.current.is_none() {
            self.current = self.spans.pop();
        }
        let Some(span) = self.current.as_mut() else {
            return Poll::Ready(Err(io::Error::other("a file placeholder without its span")));
        };
        if span.len != len {
            // hyper always offers the rest of the placeholder it queued.
            return Poll::Ready(Err(io::Error::other("a file placeholder out of step")));
        }
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self
                .tcp
                .try_io(Interest::WRITABLE, || send(&self.tcp, span));
            match sent {
                Ok(0) => {
                    // The file is shorter than it was when opened: end the
                    // connection short of its Content-Length.
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(n) => {
                    span.offset += n as u64;
                    span.len -= n;
                    if span.len == 0 {
                        self.current = None;
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// One `sendfile(2)` call from the span's file to the socket.
fn send(tcp: &TcpStream, span: &Span) -> io::Result<usize> {
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
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
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
        if is_placeholder(buf) {
            return self.poll_send_span(cx, buf.len());
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
        match bufs.iter().position(|b| is_placeholder(b)) {
            Some(0) => self.poll_send_span(cx, bufs[0].len()),
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
        assert!(is_placeholder(&PLACEHOLDER[..10]));
        assert!(is_placeholder(&PLACEHOLDER[SPAN_MAX - 1..]));
        assert!(!is_placeholder(&PLACEHOLDER[..0]));
        assert!(!is_placeholder(&[0u8; 16]));
    }
}
