//! Crash safety: a real `wharf serve` is killed with SIGKILL at random moments
//! while clients push (monolithic and chunked), delete, and the scheduled
//! garbage collection runs; after each restart every invariant is checked:
//! acknowledged pushes are there byte for byte, deleted ones are not, every tag
//! resolves, every blob a manifest names is served and hashes to its digest,
//! and `wharf fsck` finds nothing wrong. `CRASH_ITERATIONS` (default 10).

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers abort the test on failure"
)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{OCI_MANIFEST, free_port, image_manifest, sha256};
use rand::Rng;

const REPOS: [&str; 3] = ["crash/a", "crash/b", "crash/c"];

/// What the clients know for sure.
#[derive(Default)]
struct Known {
    /// Acknowledged (201) and not since deleted: tag -> (repo, manifest bytes).
    acked: HashMap<String, (String, Vec<u8>)>,
    /// Deletes acknowledged (202): these digests must be gone.
    deleted: Vec<(String, String)>,
}

impl Known {
    fn snapshot(&self) -> Known {
        Known {
            acked: self.acked.clone(),
            deleted: self.deleted.clone(),
        }
    }
}

fn start(dir: &Path, port: u16) -> Child {
    let config = dir.join("crash.toml");
    std::fs::write(
        &config,
        "[gc]\ninterval_seconds = 1\ngrace_seconds = 0\nuntagged_after_seconds = 1\n",
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_up(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("wharf did not come up");
}

/// Pushes one blob, monolithic or in two chunks; true when acknowledged.
async fn push_blob(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    data: &[u8],
    chunked: bool,
) -> reqwest::Result<bool> {
    let digest = sha256(data);
    if !chunked {
        let r = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
            .body(data.to_vec())
            .send()
            .await?;
        return Ok(r.status() == 201);
    }
    let r = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await?;
    let Some(location) = r.headers().get("location").and_then(|l| l.to_str().ok()) else {
        return Ok(false);
    };
    let mut location = format!("{base}{location}");
    let half = data.len() / 2;
    for (start, piece) in [(0, &data[..half]), (half, &data[half..])] {
        let r = http
            .patch(&location)
            .header("Content-Type", "application/octet-stream")
            .header(
                "Content-Range",
                format!("{start}-{}", start + piece.len() - 1),
            )
            .body(piece.to_vec())
            .send()
            .await?;
        if r.status() != 202 {
            return Ok(false);
        }
        location = format!(
            "{base}{}",
            r.headers()["location"].to_str().unwrap_or_default()
        );
    }
    let separator = if location.contains('?') { '&' } else { '?' };
    let r = http
        .put(format!("{location}{separator}digest={digest}"))
        .send()
        .await?;
    Ok(r.status() == 201)
}

/// Pushes and deletes until the server dies under it.
async fn client(base: String, known: Arc<Mutex<Known>>, worker: usize) {
    let http = reqwest::Client::new();
    let mut n = 0u64;
    loop {
        n += 1;
        let (repo, delete) = {
            let mut rng = rand::rng();
            (
                REPOS[rng.random_range(0..REPOS.len())],
                rng.random_bool(0.2),
            )
        };
        if delete {
            let victim = {
                let k = known.lock().unwrap();
                k.acked
                    .iter()
                    .find(|(_, (r, _))| r == repo)
                    .map(|(t, (r, m))| (t.clone(), r.clone(), m.clone()))
            };
            if let Some((tag, repo, manifest)) = victim {
                // Unknown outcome from here until acknowledged: no longer required.
                known.lock().unwrap().acked.remove(&tag);
                let digest = sha256(&manifest);
                let Ok(r) = http
                    .delete(format!("{base}/v2/{repo}/manifests/{digest}"))
                    .send()
                    .await
                else {
                    return;
                };
                if r.status() == 202 {
                    known.lock().unwrap().deleted.push((repo, digest));
                }
                continue;
            }
        }
        let tag = format!("w{worker}-{n}-{}", rand::rng().random::<u32>());
        let config = format!(r#"{{"os":"linux","tag":"{tag}"}}"#).into_bytes();
        let size = rand::rng().random_range(1..300_000);
        let mut layer = vec![0u8; size];
        rand::rng().fill(&mut layer[..]);
        let shared = b"a layer many images share".to_vec();
        let mut ok = true;
        for (i, blob) in [&config, &layer, &shared].into_iter().enumerate() {
            match push_blob(&http, &base, repo, blob, i == 1 && n.is_multiple_of(2)).await {
                Ok(acked) => ok &= acked,
                Err(_) => return,
            }
        }
        if !ok {
            continue;
        }
        let manifest = image_manifest(&config, &[&layer, &shared]);
        let Ok(r) = http
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
        else {
            return;
        };
        if r.status() == 201 {
            known
                .lock()
                .unwrap()
                .acked
                .insert(tag, (repo.to_string(), manifest));
        }
    }
}

/// Every invariant, through the API of a freshly restarted server.
async fn check(http: &reqwest::Client, base: &str, known: &Known) {
    let get = |path: String| {
        let http = http.clone();
        async move {
            http.get(format!("{base}{path}"))
                .header("Accept", OCI_MANIFEST)
                .send()
                .await
                .unwrap()
        }
    };
    for (tag, (repo, manifest)) in &known.acked {
        let r = get(format!("/v2/{repo}/manifests/{tag}")).await;
        assert_eq!(r.status(), 200, "acknowledged {repo}:{tag} is gone");
        assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
    }
    for (repo, digest) in &known.deleted {
        let r = get(format!("/v2/{repo}/manifests/{digest}")).await;
        assert_eq!(r.status(), 404, "deleted {repo}@{digest} came back");
    }
    for repo in REPOS {
        let r = get(format!("/v2/{repo}/tags/list")).await;
        if r.status() == 404 {
            continue;
        }
        let tags: serde_json::Value = r.json().await.unwrap();
        for tag in tags["tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().unwrap();
            let r = get(format!("/v2/{repo}/manifests/{tag}")).await;
            assert_eq!(r.status(), 200, "tag {repo}:{tag} points nowhere");
            let manifest: serde_json::Value = r.json().await.unwrap();
            let blobs = std::iter::once(&manifest["config"])
                .chain(manifest["layers"].as_array().into_iter().flatten());
            for blob in blobs {
                let digest = blob["digest"].as_str().unwrap();
                let r = get(format!("/v2/{repo}/blobs/{digest}")).await;
                assert_eq!(r.status(), 200, "{repo}:{tag} lost {digest}");
                let body = r.bytes().await.unwrap();
                assert_eq!(
                    sha256(&body),
                    digest,
                    "{repo}:{tag} {digest} is partial or wrong"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let iterations: usize = std::env::var("CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let known = Arc::new(Mutex::new(Known::default()));
    let http = reqwest::Client::new();
    let mut kills = 0;
    for _ in 0..iterations {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut server = start(dir.path(), port);
        wait_up(&http, &base).await;
        let snapshot = known.lock().unwrap().snapshot();
        check(&http, &base, &snapshot).await;
        let workers: Vec<_> = (0..4)
            .map(|w| tokio::spawn(client(base.clone(), known.clone(), w)))
            .collect();
        let alive = rand::rng().random_range(300..2500);
        tokio::time::sleep(Duration::from_millis(alive)).await;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        kills += 1;
        for w in workers {
            w.await.unwrap();
        }
    }
    // A last restart: the state after the final kill holds too.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start(dir.path(), port);
    wait_up(&http, &base).await;
    let snapshot = known.lock().unwrap().snapshot();
    check(&http, &base, &snapshot).await;
    let acked = snapshot.acked.len();
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(kills, iterations);
    assert!(acked > 0, "no push was ever acknowledged");

    let fsck = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("fsck")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&fsck.stdout);
    assert!(fsck.status.success(), "fsck after the crashes: {report}");
}
