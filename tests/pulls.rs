//! Blob pulls: plain HTTP/1 sends blob files with `sendfile`, whole or in
//! ranges, interleaved with other responses on one connection; a blob is
//! hashed on its first full read and sent unhashed while its file stays the
//! one that matched; a file written in place is hashed again and breaks the
//! transfer; a file deleted mid-read is still sent whole; the scrub finds
//! rot and `wharf fsck` reports it; TLS and HTTP/2 read the file instead;
//! `If-None-Match` and `If-Range` work on blobs and manifests.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]

mod common;

use std::time::Duration;

use common::{TestServer, blob_file, sha256};
use futures::StreamExt;

/// The tests read process-wide counters: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bigger than one sendfile span (4 MiB), not a multiple of it.
fn big_blob(seed: u8) -> Vec<u8> {
    (0..9 * 1024 * 1024 + 77)
        .map(|i: usize| (i.wrapping_mul(31) as u8) ^ seed)
        .collect()
}

async fn counter(s: &TestServer, name: &str) -> u64 {
    let text = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("wharf_{name}_total ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// A server without the scrub, which would otherwise hash new blobs in the
/// background and change what the counters show.
async fn unscrubbed(dir: &std::path::Path) -> TestServer {
    TestServer::start_with(dir, |c| c.storage.scrub_rate = 0).await
}

/// Reads a blob fully; `Err` when the transfer broke.
async fn get(s: &TestServer, repo: &str, digest: &str) -> Result<Vec<u8>, reqwest::Error> {
    let r = s
        .http
        .get(s.url(&format!("/v2/{repo}/blobs/{digest}")))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    Ok(r.bytes().await?.to_vec())
}

#[tokio::test]
async fn hashed_once_then_sent_from_the_file() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let s = unscrubbed(dir.path()).await;
    let data = big_blob(1);
    let digest = s.push_blob("app", &data).await;
    // A file changed within the last 100 ms cannot be trusted to show a
    // later write; let the upload's rename settle.
    tokio::time::sleep(Duration::from_millis(150)).await;

    let (hashed, sent) = (
        counter(&s, "blob_hashed_reads").await,
        counter(&s, "blob_sendfile_reads").await,
    );
    assert_eq!(get(&s, "app", &digest).await.unwrap(), data);
    assert_eq!(counter(&s, "blob_hashed_reads").await, hashed + 1);
    assert_eq!(counter(&s, "blob_sendfile_reads").await, sent);
    for _ in 0..2 {
        assert_eq!(get(&s, "app", &digest).await.unwrap(), data);
    }
    assert_eq!(
        counter(&s, "blob_hashed_reads").await,
        hashed + 1,
        "matched once"
    );
    assert_eq!(counter(&s, "blob_sendfile_reads").await, sent + 2);

    // Ranges across span boundaries, suffix ranges, and other responses on
    // the same keep-alive connection in between.
    for (range, expect) in [
        ("bytes=0-0", &data[0..1]),
        ("bytes=4194300-4194400", &data[4194300..4194401]),
        ("bytes=100-", &data[100..]),
        ("bytes=-5000000", &data[data.len() - 5000000..]),
    ] {
        let r = s
            .http
            .get(s.url(&format!("/v2/app/blobs/{digest}")))
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(&r.bytes().await.unwrap()[..], expect, "{range}");
        let head = s
            .http
            .head(s.url(&format!("/v2/app/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.headers()["content-length"],
            data.len().to_string().as_str()
        );
        let missing = s
            .http
            .get(s.url(&format!("/v2/app/blobs/{}", sha256(b"absent"))))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
    }

    // Written in place (same size): the identity changes, so the read is
    // hashed again and breaks short of its length instead of sending rot.
    let path = blob_file(dir.path(), &digest);
    let mut stored = std::fs::read(&path).unwrap();
    stored[5_000_000] ^= 0xff;
    std::fs::write(&path, &stored).unwrap();
    let hashed = counter(&s, "blob_hashed_reads").await;
    assert!(get(&s, "app", &digest).await.is_err(), "rot was sent");
    assert_eq!(counter(&s, "blob_hashed_reads").await, hashed + 1);
    // Known to be corrupt now: a range (which cannot be checked) is refused.
    let r = s
        .http
        .get(s.url(&format!("/v2/app/blobs/{digest}")))
        .header("Range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
}

#[tokio::test]
async fn a_file_deleted_mid_read_is_sent_whole() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let s = unscrubbed(dir.path()).await;
    // Big enough to outlast the socket buffers.
    let data: Vec<u8> = (0..64)
        .flat_map(|i| big_blob(i as u8 + 7)[..1024 * 1024].to_vec())
        .collect();
    let digest = s.push_blob("app", &data).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    get(&s, "app", &digest).await.unwrap();
    let sent = counter(&s, "blob_sendfile_reads").await;

    let r = s
        .http
        .get(s.url(&format!("/v2/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let mut received = body.next().await.unwrap().unwrap().to_vec();
    std::fs::remove_file(blob_file(dir.path(), &digest)).unwrap();
    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(received.len(), data.len());
    assert!(received == data);
    assert_eq!(
        counter(&s, "blob_sendfile_reads").await,
        sent + 1,
        "sent from the file"
    );
}

#[tokio::test]
async fn the_scrub_finds_rot_and_fsck_reports_it() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        c.storage.scrub_interval_seconds = 1;
    })
    .await;
    let good = s.push_blob("app", b"sound bytes").await;
    let rotten = s.push_blob("app", b"bytes that rot").await;
    let path = blob_file(dir.path(), &rotten);
    let mut stored = std::fs::read(&path).unwrap();
    stored[0] ^= 0xff;
    std::fs::write(&path, &stored).unwrap();

    let before = counter(&s, "scrub_corrupt_blobs").await;
    let mut found = false;
    for _ in 0..100 {
        if counter(&s, "scrub_corrupt_blobs").await > before {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "the scrub did not find the rotten blob");
    let mut matched = false;
    for _ in 0..100 {
        if counter(&s, "scrub_blobs").await >= 1 {
            matched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matched, "the scrub did not match the sound blob");
    let rotten_read = get(&s, "app", &rotten).await;
    assert!(rotten_read.is_err(), "rot was sent");
    let r = s
        .http
        .get(s.url(&format!("/v2/app/blobs/{rotten}")))
        .header("Range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500, "a range of a blob the scrub found corrupt");
    assert_eq!(get(&s, "app", &good).await.unwrap(), b"sound bytes");
    s.stop().await;

    let out = common::wharf_cli(dir.path())
        .arg("fsck")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("scrub found corrupt\t{rotten}")),
        "{text}"
    );
    assert!(text.contains("scrub: last complete pass 20"), "{text}");
    assert!(
        !out.status.success(),
        "fsck finds the corrupt blob itself too"
    );
}

/// An HTTP/2 (cleartext, prior knowledge) pull with curl, which reads the file.
#[tokio::test]
async fn http2_reads_the_file() {
    let _serial = SERIAL.lock().await;
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but curl is missing"
        );
        eprintln!("skipped: curl is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = unscrubbed(dir.path()).await;
    let data = big_blob(3);
    let digest = s.push_blob("app", &data).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    get(&s, "app", &digest).await.unwrap();
    let sent = counter(&s, "blob_sendfile_reads").await;
    let out = dir.path().join("pulled");
    let url = s.url(&format!("/v2/app/blobs/{digest}"));
    let target = out.clone();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["--silent", "--fail", "--http2-prior-knowledge", "-o"])
            .arg(&target)
            .args(["-w", "%{http_version}", &url])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.status.success());
    assert_eq!(String::from_utf8_lossy(&status.stdout), "2");
    assert!(std::fs::read(&out).unwrap() == data);
    assert_eq!(
        counter(&s, "blob_sendfile_reads").await,
        sent,
        "h2 never sends files"
    );
}

#[tokio::test]
async fn tls_reads_the_file() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let s = TestServer::start_with(dir.path(), move |c| {
        c.tls.cert = cert;
        c.tls.key = key;
    })
    .await;
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", s.addr.port());
    let data = big_blob(4);
    let digest = sha256(&data);
    let r = client
        .post(format!("{base}/v2/app/blobs/uploads/?digest={digest}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    tokio::time::sleep(Duration::from_millis(150)).await;
    for _ in 0..2 {
        let r = client
            .get(format!("{base}/v2/app/blobs/{digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.unwrap() == data);
    }
    let r = client
        .get(format!("{base}/v2/app/blobs/{digest}"))
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &data[10..20]);
}

#[tokio::test]
async fn conditional_requests() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let manifest = s.push_image("app", "v1", "conditional").await;
    let layer = b"layer for conditional";
    let digest = sha256(layer);
    let blob = s.url(&format!("/v2/app/blobs/{digest}"));
    let etag = format!("\"{digest}\"");

    // If-None-Match with the blob's entity tag (among others, weak or not): 304.
    for value in [etag.clone(), format!("\"x\", W/{etag}"), "*".into()] {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let r = s
                .http
                .request(method.clone(), &blob)
                .header("If-None-Match", &value)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 304, "{method} {value}");
            assert_eq!(r.headers()["etag"], etag.as_str());
            assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
            assert!(r.bytes().await.unwrap().is_empty());
        }
    }
    let r = s
        .http
        .get(&blob)
        .header("If-None-Match", "\"sha256:other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], layer);
    // Not in that repository: still 404, whatever the client holds.
    let r = s
        .http
        .get(s.url(&format!("/v2/other/blobs/{digest}")))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // If-Range: the range only while the entity tag still matches.
    let ranged = |if_range: &str| {
        s.http
            .get(&blob)
            .header("Range", "bytes=0-4")
            .header("If-Range", if_range)
            .send()
    };
    let r = ranged(&etag).await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &layer[..5]);
    let r = ranged("\"sha256:other\"").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], layer);
    let r = ranged("Wed, 21 Oct 2015 07:28:00 GMT").await.unwrap();
    assert_eq!(r.status(), 200);

    // Manifests by tag: 304 while the tag points at the digest the client holds.
    let held = format!("\"{}\"", sha256(&manifest));
    let get_tag = || {
        s.http
            .get(s.url("/v2/app/manifests/v1"))
            .header("Accept", common::OCI_MANIFEST)
            .header("If-None-Match", &held)
            .send()
    };
    assert_eq!(get_tag().await.unwrap().status(), 304);
    s.push_image("app", "v1", "moved").await;
    let r = get_tag().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(r.headers()["etag"], held.as_str());
}

#[tokio::test]
async fn a_scrub_pass_resumes_after_its_cursor_and_stops_when_told() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let s = unscrubbed(dir.path()).await;
    let mut digests = Vec::new();
    for content in [&b"one"[..], b"two", b"three"] {
        digests.push(s.push_blob("app", content).await);
    }
    digests.sort();
    let scrub = s
        .registry
        .scrub_schedule(Duration::from_secs(3600), 1 << 30)
        .unwrap();

    // Stopped before it starts: nothing hashed, the cursor where it was.
    let stopped = tokio_util::sync::CancellationToken::new();
    stopped.cancel();
    let resumed = wharf::registry::ScrubState {
        cursor: Some(digests[0].clone()),
        ..Default::default()
    };
    let state = scrub.pass(resumed.clone(), &stopped).await.unwrap();
    assert_eq!(state.blobs, 0);
    assert_eq!(state.cursor.as_deref(), Some(digests[0].as_str()));

    // Resumed: only the blobs after the cursor, then the pass is complete.
    let running = tokio_util::sync::CancellationToken::new();
    let state = scrub.pass(resumed, &running).await.unwrap();
    assert_eq!(state.blobs, 2);
    assert_eq!(state.cursor, None);
    assert!(state.last_pass_completed_ms.is_some());
    assert!(state.corrupt.is_empty() && state.unreadable.is_empty());
    // What fsck reads is what the pass saved.
    let saved = s.registry.scrub_state().unwrap();
    assert_eq!(saved.blobs, 2);
    assert_eq!(saved.last_pass_completed_ms, state.last_pass_completed_ms);
}
