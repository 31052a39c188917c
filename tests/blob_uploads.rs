//! Blob uploads over real HTTP: chunked sessions, resumption after a restart,
//! failure cases that must leave nothing visible, and concurrent pushes.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]

mod common;

use common::{TestServer, error_code, sha256};
use futures::StreamExt;
use rand::RngCore;

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

async fn start_session(s: &TestServer, repo: &str) -> String {
    let r = s
        .http
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(r.headers().contains_key("oci-chunk-min-length"));
    r.headers()["location"].to_str().unwrap().to_string()
}

async fn patch(s: &TestServer, location: &str, range: &str, data: &[u8]) -> reqwest::Response {
    s.http
        .patch(s.url(location))
        .header("Content-Range", range)
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

/// Completes the session at `location` as `data`'s digest and checks that
/// `team/app` then serves exactly `data`.
async fn complete_and_check(s: &TestServer, location: &str, data: &[u8]) {
    let digest = sha256(data);
    let r = s
        .http
        .put(s.url(&format!("{location}?digest={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let got = s
        .http
        .get(s.url(&format!("/v2/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert!(
        got.bytes().await.unwrap().as_ref() == data,
        "stored bytes differ"
    );
}

#[tokio::test]
async fn chunked_upload_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = random(3 * 1024 * 1024 + 17);
    let (a, b) = data.split_at(1024 * 1024);

    let s = TestServer::start(dir.path()).await;
    let location = start_session(&s, "team/app").await;
    let r = patch(&s, &location, &format!("0-{}", a.len() - 1), a).await;
    assert_eq!(r.status(), 202);
    s.stop().await;

    // The in-memory hash state is gone; the session must still complete correctly.
    let s = TestServer::start(dir.path()).await;
    let r = s.http.get(s.url(&location)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], format!("0-{}", a.len() - 1).as_str());
    let r = patch(&s, &location, &format!("{}-{}", a.len(), data.len() - 1), b).await;
    assert_eq!(r.status(), 202);
    complete_and_check(&s, &location, &data).await;
}

#[tokio::test]
async fn wrong_digest_leaves_nothing_and_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let data = random(4096);
    let location = start_session(&s, "app").await;
    assert_eq!(patch(&s, &location, "0-4095", &data).await.status(), 202);
    let wrong = sha256(b"not it");
    let r = s
        .http
        .put(s.url(&format!("{location}?digest={wrong}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    for d in [wrong, sha256(&data)] {
        let r = s
            .http
            .head(s.url(&format!("/v2/app/blobs/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{d} must not be visible");
    }
    assert_eq!(
        s.http.get(s.url(&location)).send().await.unwrap().status(),
        404
    );
    // No staged bytes are left behind.
    let staged = walk(&dir.path().join("blobs/uploads"));
    assert!(staged.is_empty(), "staged files left: {staged:?}");
}

#[tokio::test]
async fn content_length_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let location = start_session(&s, "app").await;
    // Content-Range claims 10 bytes but 5 arrive.
    let r = patch(&s, &location, "0-9", b"12345").await;
    assert_eq!(r.status(), 400);
    let r = s.http.get(s.url(&location)).send().await.unwrap();
    assert_eq!(
        r.headers()["range"],
        "0-0",
        "the failed chunk must not count"
    );
}

#[tokio::test]
async fn the_same_blob_pushed_concurrently_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let data = random(256 * 1024);
    let digest = sha256(&data);
    let mut pushes = Vec::new();
    for i in 0..8 {
        let (http, url, data) = (
            s.http.clone(),
            s.url(&format!("/v2/repo{}/blobs/uploads/?digest={digest}", i % 2)),
            data.clone(),
        );
        pushes.push(tokio::spawn(async move {
            http.post(url).body(data).send().await.unwrap().status()
        }));
    }
    for p in pushes {
        assert_eq!(p.await.unwrap(), 201);
    }
    for repo in ["repo0", "repo1"] {
        let r = s
            .http
            .get(s.url(&format!("/v2/{repo}/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    }
    let stored: Vec<_> = walk(&dir.path().join("blobs/blobs"));
    assert_eq!(stored.len(), 1, "{stored:?}");
}

#[tokio::test]
async fn blob_ranges_and_suffixes() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let data = random(10_000);
    let digest = s.push_blob("app", &data).await;
    let url = s.url(&format!("/v2/app/blobs/{digest}"));
    let r = s
        .http
        .get(&url)
        .header("Range", "bytes=-100")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 9900-9999/10000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[9900..]);
    let r = s
        .http
        .get(&url)
        .header("Range", "bytes=10000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10000");
}

#[tokio::test]
async fn a_blob_is_private_to_the_repositories_it_was_pushed_or_mounted_to() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let digest = s.push_blob("a", b"shared").await;
    let r = s
        .http
        .get(s.url(&format!("/v2/b/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .http
        .post(s.url(&format!("/v2/b/blobs/uploads/?mount={digest}&from=a")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["location"],
        format!("/v2/b/blobs/{digest}").as_str()
    );
    let r = s
        .http
        .get(s.url(&format!("/v2/b/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"shared");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[tokio::test]
async fn shutdown_lets_an_upload_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let data = random(64 * 1024);
    let digest = sha256(&data);
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(4 * 1024).map(|c| Ok(c.to_vec())).collect();
    // A slow body (16 pieces, 1.6 s): the server is told to stop while it is
    // still arriving, late enough that even a loaded machine has read the
    // request's headers (a connection with no request yet is simply closed).
    let body = futures::stream::iter(pieces).then(|p| async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        p
    });
    let request = s
        .http
        .post(s.url(&format!("/v2/app/blobs/uploads/?digest={digest}")))
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let upload = tokio::spawn(request);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let dir_path = dir.path().to_path_buf();
    s.stop().await;
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), 201, "the in-flight push completes");
    let s = TestServer::start(&dir_path).await;
    let got = s
        .http
        .get(s.url(&format!("/v2/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), data.as_slice());
}

/// A final PUT whose `Content-Range` does not start at the session's offset
/// is refused with 416 and the current `Range`, as a PATCH is, and the session
/// is left as it was (official conformance suites).
#[tokio::test]
async fn final_put_off_the_offset_is_416_and_leaves_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let data = random(4000);
    let digest = sha256(&data);
    let location = start_session(&s, "team/app").await;
    let r = patch(&s, &location, "0-999", &data[..1000]).await;
    assert_eq!(r.status(), 202);
    let put = |range: String, body: Vec<u8>| {
        s.http
            .put(s.url(&location))
            .query(&[("digest", digest.as_str())])
            .header("Content-Range", range)
            .body(body)
            .send()
    };
    for start in [500usize, 1500] {
        let r = put(format!("{start}-3999"), data[start..].to_vec())
            .await
            .unwrap();
        assert_eq!(r.status(), 416, "start {start}");
        assert_eq!(r.headers()["range"], "0-999");
        assert!(r.headers().contains_key("location"));
        let r = s.http.get(s.url(&location)).send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(r.headers()["range"], "0-999");
    }
    let r = s
        .http
        .head(s.url(&format!("/v2/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = put("1000-3999".into(), data[1000..].to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s
        .http
        .get(s.url(&format!("/v2/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), data);
}

/// A client hangs up in the middle of a PATCH and sends the chunk again with
/// other bytes: the stored blob is exactly what was resent (the cut-off
/// request's staged bytes count for nothing and are overwritten).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_cut_off_and_sent_again_stores_exactly_the_resent_bytes() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let len = 6 * 1024 * 1024;
    for _ in 0..2 {
        let (first, resent) = (random(len), random(len));
        let location = start_session(&s, "team/app").await;
        let mut cut = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let head = format!(
            "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Length: {len}\r\n\
             Content-Range: 0-{}\r\n\r\n",
            s.addr,
            len - 1
        );
        cut.write_all(head.as_bytes()).await.unwrap();
        cut.write_all(&first[..5 * 1024 * 1024]).await.unwrap();
        drop(cut);
        let r = patch(&s, &location, &format!("0-{}", len - 1), &resent).await;
        assert_eq!(r.status(), 202, "{:?}", r.text().await);
        complete_and_check(&s, &location, &resent).await;
    }
}
