//! Resident memory stays bounded under pushes: a layer's bytes are never kept
//! after its request ends. A generous bound over a short run, so that a
//! regression fails loudly; the benchmark's soak mode shows the real figure.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{OCI_MANIFEST, free_port, image_manifest, sha256};
use rand::RngCore;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

/// Each worker, on one kept-alive connection: a config, a fresh 256 KiB
/// layer (two-step monolithic upload), then a manifest naming them. Before the
/// fix, the cached manifest body pinned the connection buffer that had held
/// the layer: ~200 KiB kept per iteration.
async fn push_loop(base: String, worker: usize, iterations: usize) {
    let http = reqwest::Client::new();
    let repo = format!("mem/w{worker}");
    let config = format!(r#"{{"worker":{worker}}}"#).into_bytes();
    for i in 0..iterations {
        let mut layer = vec![0u8; 256 * 1024];
        rand::rng().fill_bytes(&mut layer);
        for blob in [&config, &layer] {
            let r = http
                .post(format!("{base}/v2/{repo}/blobs/uploads/"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            let location = r.headers()["location"].to_str().unwrap().to_string();
            let r = http
                .put(format!("{base}{location}"))
                .query(&[("digest", sha256(blob))])
                .body(blob.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        let manifest = image_manifest(&config, &[&layer]);
        let r = http
            .put(format!("{base}/v2/{repo}/manifests/t{}", i % 5))
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

#[tokio::test]
async fn pushing_layers_and_manifests_does_not_grow_memory() {
    // reqwest is built without a TLS provider of its own; plain HTTP still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _server = Server(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "wharf did not come up");

    // 8 workers x 250 iterations: 500 MiB of layers through the server.
    let workers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(push_loop(base.clone(), w, 250)))
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let rss = rss_mib(pid);
    eprintln!("RSS after 2,000 pushes of 256 KiB layers: {rss:.0} MiB");
    assert!(rss < 100.0, "RSS {rss:.0} MiB after 2,000 pushes");
}
