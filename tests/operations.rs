//! What operators rely on: health and readiness, request ids, Prometheus
//! metrics, and JSON log lines that carry the request id.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::TestServer;

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    for path in ["/healthz", "/readyz"] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let a = s.http.get(s.url("/v2/")).send().await.unwrap();
    let b = s.http.get(s.url("/v2/")).send().await.unwrap();
    let id = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id(&a), id(&b));
    assert_eq!(id(&a).len(), 32);
    let mine = s
        .http
        .get(s.url("/v2/"))
        .header("X-Request-Id", "trace-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(id(&mine), "trace-4711");
    let odd = s
        .http
        .get(s.url("/v2/"))
        .header("X-Request-Id", "no spaces allowed")
        .send()
        .await
        .unwrap();
    assert_ne!(id(&odd), "no spaces allowed");
    // Every /v2/ response names the API version, refusals and errors too.
    for path in ["/v2/", "/v2/app/tags/list", "/v2/app/manifests/missing"] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(
            r.headers()["docker-distribution-api-version"],
            "registry/2.0",
            "{path}"
        );
    }
}

/// The value of a sample line `name{labels} value`, or `name value`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_bytes_and_stored_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let data = vec![7u8; 100_000];
    let digest = s.push_blob("app", &data).await;
    for _ in 0..3 {
        let r = s
            .http
            .get(s.url(&format!("/v2/app/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), data.len());
    }
    s.http
        .get(s.url("/v2/app/blobs/sha256:00"))
        .send()
        .await
        .unwrap();
    // Methods are labelled from a fixed set: clients cannot mint series.
    for method in ["BREW", "WHEN"] {
        let r = s
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                s.url(&format!("/v2/app/blobs/{digest}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
    }
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    assert_eq!(
        sample(
            &text,
            r#"wharf_http_requests_total{route="blob",method="GET",status="200"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"wharf_http_requests_total{route="invalid",method="GET",status="400"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"wharf_http_requests_total{route="blob",method="other",status="405"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert!(!text.contains("BREW") && !text.contains("WHEN"));
    assert!(sample(&text, "wharf_http_received_bytes_total").unwrap() >= data.len() as f64);
    assert!(sample(&text, "wharf_http_sent_bytes_total").unwrap() >= 3.0 * data.len() as f64);
    assert_eq!(sample(&text, "wharf_blobs_stored"), Some(1.0));
    assert_eq!(
        sample(&text, "wharf_blob_stored_bytes"),
        Some(data.len() as f64)
    );
    assert_eq!(
        sample(&text, "wharf_blob_upload_duration_seconds_count"),
        Some(1.0)
    );
    assert!(text.contains("wharf_http_request_duration_seconds_bucket"));
    assert!(text.contains("# TYPE wharf_gc_runs counter"));
    assert!(text.trim_end().ends_with("# EOF"));
}

#[test]
fn json_logs_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["serve", "--log-format", "json", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v2/");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // reqwest is built without a TLS provider of its own; plain HTTP still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let answered = runtime.block_on(async {
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(r) = http
                .get(&url)
                .header("X-Request-Id", "json-42")
                .send()
                .await
            {
                return r.status().as_u16();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        0
    });
    assert_eq!(answered, 200);
    // SIGTERM: the server stops gracefully and its stderr ends.
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let lines: Vec<serde_json::Value> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("every log line is JSON"))
        .collect();
    child.wait().unwrap();
    let request = lines
        .iter()
        .find(|l| l["span"]["id"] == "json-42")
        .expect("a line of the request");
    assert_eq!(request["fields"]["path"], "/v2/");
    assert_eq!(request["fields"]["status"], 200);
}

/// A failing dependency makes `/readyz` answer 503 without saying where the
/// data lives (the cause is logged, never sent).
#[tokio::test]
async fn readiness_failures_do_not_leak_paths() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    // The probe object's folder is a file now: the blob store fails (ENOTDIR).
    let blobs = dir.path().join("blobs").join("blobs");
    let _ = std::fs::remove_dir_all(&blobs);
    std::fs::write(&blobs, b"not a folder").unwrap();
    let r = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body = r.text().await.unwrap();
    let root = dir.path().to_string_lossy().to_string();
    assert!(!body.contains(&root) && !body.contains("blobs"), "{body}");
}
