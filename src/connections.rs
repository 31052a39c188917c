//! Accepting connections and bounding what each may cost: a cap on open
//! connections (per process and per client address), a TLS handshake
//! deadline, a header-read deadline, an idle deadline, and graceful shutdown.
//! `axum::serve` has none of these bounds, so the router is served through
//! hyper directly. Plain HTTP/1 sockets are wrapped so blob bodies can be
//! sent with `sendfile` (`crate::sendfile`). Depends only on the router,
//! `tls`, `sendfile` and the trusted-proxy list.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tower::ServiceExt;

use crate::http::TrustedProxies;
use crate::sendfile;
use crate::tls::Peer;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most an HTTP/1 connection reads at once (hyper's default is ~400 KiB).
/// Body chunks are slices of that buffer and pin all of it while queued for
/// disk, so this bounds an upload's memory. 64 KiB saved another 8 MiB in the
/// soak but cost a fifth of push throughput (README, Memory).
const READ_BUFFER_MAX: usize = 256 * 1024;
/// HTTP/2 pings find peers that vanished without closing.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);

/// What one connection, and one client, may hold (`[connections]`).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections for the whole process; beyond it, accepting waits.
    pub max_connections: usize,
    /// Open connections from one client address (trusted proxies are exempt);
    /// beyond it, new connections from that address are closed at once.
    pub max_per_client: usize,
    /// Time to send a request's headers: the first request's from connect,
    /// later ones' from the end of the previous response (HTTP/1).
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and no byte moving either way
    /// for this long is closed (HTTP/1 and HTTP/2).
    pub idle_timeout: Duration,
    /// Addresses exempt from `max_per_client` (a proxy carries many clients).
    pub trusted_proxies: TrustedProxies,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            max_per_client: 256,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting
/// and waits for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<ServerConfig>>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = PerClient::default();
    let tls = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(READ_BUFFER_MAX)
        // Body chunks must be queued as they are, never copied: file bodies
        // are placeholders the socket recognises by address (`sendfile`).
        .writev(true)
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let client = addr.ip().to_canonical();
        let exempt = limits.trusted_proxies.contains(client);
        let Some(slot) = per_client.take(client, limits.max_per_client, exempt) else {
            tracing::debug!(%client, "too many connections from one client");
            continue;
        };
        // Responses go out as headers, then body chunks: without this, Nagle
        // and delayed ACKs add ~40 ms to every small streamed response.
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            builder: builder.clone(),
            tls: tls.clone(),
            idle_timeout: limits.idle_timeout,
            header_read_timeout: limits.header_read_timeout,
            addr,
        };
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _held = (permit, slot);
            connection.run(stream, watcher).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One accepted connection and what it needs to serve itself.
struct Connection {
    app: Router,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    idle_timeout: Duration,
    header_read_timeout: Duration,
    addr: SocketAddr,
}

impl Connection {
    async fn run(self, stream: TcpStream, watcher: hyper_util::server::graceful::Watcher) {
        let addr = self.addr;
        let mut sink = None;
        let io = match &self.tls {
            None => {
                let (stream, files) = sendfile::stream(stream);
                sink = Some(files);
                Either::Left(stream)
            }
            Some(acceptor) => {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => Either::Right(stream),
                    Ok(Err(e)) => {
                        tracing::debug!(client = %addr, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(client = %addr, "TLS handshake timed out");
                        return;
                    }
                }
            }
        };
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: io,
            activity: activity.clone(),
        });
        let app = self.app;
        let in_requests = activity.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(Peer(addr)));
            // HTTP/2 frames its own writes: only HTTP/1 can send files itself.
            if let Some(sink) = sink
                .as_ref()
                .filter(|_| request.version() < http::Version::HTTP_2)
            {
                request.extensions_mut().insert(sink.clone());
            }
            let busy = in_requests.begin();
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                drop(busy);
                response
            }
        });
        let served = watcher.watch(
            self.builder
                .serve_connection_with_upgrades(io, service)
                .into_owned(),
        );
        tokio::select! {
            result = served => {
                if let Err(e) = result {
                    tracing::debug!(client = %addr, error = %e, "connection ended with an error");
                }
            }
            () = activity.idle_for(self.idle_timeout) => {
                tracing::debug!(client = %addr, "idle connection closed");
            }
            // hyper's header timer starts only once it knows the protocol,
            // which waits for the first bytes: bound the first request here.
            () = activity.no_request_within(self.header_read_timeout) => {
                tracing::debug!(client = %addr, "no request headers in time");
            }
        }
    }
}

/// When a connection last moved a byte, and how many of its requests are
/// being handled: idle means neither for the whole timeout.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_progress: AtomicUsize,
    requests: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_progress: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Resolves if no request has begun `limit` after the connection opened.
    async fn no_request_within(&self, limit: Duration) {
        tokio::time::sleep(limit).await;
        if self.requests.load(Ordering::Relaxed) == 0 {
            return;
        }
        std::future::pending().await
    }

    /// Resolves once the connection has been idle for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let since = self
                .start
                .elapsed()
                .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)));
            let busy = self.in_progress.load(Ordering::Relaxed) > 0;
            if !busy && since >= limit {
                return;
            }
            let wait = if busy { limit } else { limit - since };
            tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
        }
    }
}

/// A request being handled; the connection is not idle meanwhile.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_progress.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records when bytes last moved.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections per client address.
#[derive(Default, Clone)]
struct PerClient(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl PerClient {
    /// A slot for one more connection from `ip`, or `None` at the limit.
    fn take(&self, ip: IpAddr, limit: usize, exempt: bool) -> Option<ClientSlot> {
        if exempt {
            return Some(ClientSlot(None));
        }
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= limit.max(1) {
            return None;
        }
        *count += 1;
        Some(ClientSlot(Some((self.clone(), ip))))
    }
}

/// One client's connection; gives its slot back when dropped.
struct ClientSlot(Option<(PerClient, IpAddr)>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some((clients, ip)) = self.0.take() {
            let mut open = clients.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = open.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_slots_are_counted_and_returned() {
        let clients = PerClient::default();
        let ip: IpAddr = [192, 0, 2, 1].into();
        let a = clients.take(ip, 2, false);
        let b = clients.take(ip, 2, false);
        assert!(a.is_some() && b.is_some());
        assert!(clients.take(ip, 2, false).is_none());
        assert!(clients.take(ip, 2, true).is_some(), "exempt");
        assert!(clients.take([192, 0, 2, 2].into(), 2, false).is_some());
        drop(a);
        assert!(clients.take(ip, 2, false).is_some());
    }
}
