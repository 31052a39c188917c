//! Connection bounds over raw TCP: a client that never finishes its headers,
//! an idle kept-alive connection, and the per-client and per-process caps.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST: &[u8] = b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Reads until the server closes the connection (EOF or reset); returns how
/// long that took, or `None` if it stayed open for `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends one request and reads its response head; true if one arrived in `limit`.
async fn answered(stream: &mut TcpStream, limit: Duration) -> bool {
    if stream.write_all(REQUEST).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let deadline = Instant::now() + limit;
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    got.starts_with(b"HTTP/1.1 200")
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        c.connections.header_read_timeout_seconds = 1;
    })
    .await;
    // Nothing at all, and half a request line: both closed after ~1 s.
    let opened = Instant::now();
    let mut silent = connect(s.addr).await;
    let mut partial = connect(s.addr).await;
    partial
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    for stream in [&mut silent, &mut partial] {
        let closed = closed_within(stream, Duration::from_secs(10)).await;
        assert!(closed.is_some(), "a slow client's connection stayed open");
        let took = opened.elapsed();
        assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    }
    // A kept-alive HTTP/1 connection gets the same time for its next request.
    let mut kept = connect(s.addr).await;
    assert!(answered(&mut kept, Duration::from_secs(5)).await);
    assert!(
        closed_within(&mut kept, Duration::from_secs(10))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_a_busy_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        c.connections.header_read_timeout_seconds = 60;
        c.connections.idle_timeout_seconds = 2;
    })
    .await;
    let mut idle = connect(s.addr).await;
    assert!(answered(&mut idle, Duration::from_secs(5)).await);
    let took = closed_within(&mut idle, Duration::from_secs(15))
        .await
        .expect("an idle connection stayed open");
    assert!(took >= Duration::from_millis(1500), "closed after {took:?}");

    // Requests every second keep a connection open past the idle timeout.
    let mut busy = connect(s.addr).await;
    for _ in 0..4 {
        assert!(answered(&mut busy, Duration::from_secs(5)).await);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn one_client_cannot_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        c.connections.max_per_client = 3;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect(s.addr).await;
        assert!(answered(&mut c, Duration::from_secs(5)).await);
        held.push(c);
    }
    // The fourth from the same address is closed at once, unanswered.
    let mut fourth = connect(s.addr).await;
    assert!(!answered(&mut fourth, Duration::from_secs(5)).await);
    // Closing one frees its slot.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect(s.addr).await;
    assert!(answered(&mut again, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn beyond_the_process_cap_connections_wait_their_turn() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        c.connections.max = 2;
    })
    .await;
    let mut first = connect(s.addr).await;
    let mut second = connect(s.addr).await;
    assert!(answered(&mut first, Duration::from_secs(5)).await);
    assert!(answered(&mut second, Duration::from_secs(5)).await);
    // The kernel completes the handshake, but Wharf does not serve it yet.
    let mut third = connect(s.addr).await;
    third.write_all(REQUEST).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");
    drop(first);
    // Now it is: the request sent while waiting is answered.
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("still waiting after a slot was freed")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let _ = second.shutdown().await;
}
