//! Online garbage collection over a running server: what it removes, what it
//! keeps, and that pushes racing against it never end up with missing content.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers abort the test on failure"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{OCI_MANIFEST, TestServer, blob_file, image_manifest, sha256};
use wharf::registry::{GcPolicy, GcReport};

fn policy(grace: Duration) -> GcPolicy {
    GcPolicy {
        grace,
        untagged_after: None,
        orphan_referrers: true,
        upload_idle: Duration::from_secs(3600),
    }
}

async fn collect(s: &TestServer, policy: &GcPolicy, dry_run: bool) -> GcReport {
    s.registry
        .collect_garbage(policy, dry_run, &|_| {})
        .await
        .unwrap()
}

async fn status(s: &TestServer, path: &str) -> u16 {
    s.http
        .get(s.url(path))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn gc_removes_what_nothing_uses_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let kept = s.push_image("app", "kept", "kept").await;
    let dropped = s.push_image("app", "dropped", "dropped").await;
    let dropped_digest = sha256(&dropped);
    let lone = s.push_blob("app", b"a blob no manifest uses").await;
    let r = s
        .http
        .delete(s.url(&format!("/v2/app/manifests/{dropped_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Within the grace period uploaded blobs stay; the deleted manifest's own
    // bytes need no grace (a new push of it writes them again).
    let report = collect(&s, &policy(Duration::from_secs(3600)), false).await;
    let removed: Vec<String> = report.blobs.iter().map(|(d, _)| d.to_string()).collect();
    assert_eq!(removed, std::slice::from_ref(&dropped_digest));
    assert_eq!(status(&s, &format!("/v2/app/blobs/{lone}")).await, 200);

    // A dry run reports without removing.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let dry = collect(&s, &policy(Duration::ZERO), true).await;
    let mut want = vec![
        lone.clone(),
        sha256(b"layer for dropped"),
        sha256(br#"{"architecture":"amd64","os":"linux","seed":"dropped"}"#),
    ];
    want.sort();
    let mut got: Vec<String> = dry.blobs.iter().map(|(d, _)| d.to_string()).collect();
    got.sort();
    assert_eq!(got, want);
    assert!(blob_file(dir.path(), &lone).exists());
    assert_eq!(status(&s, &format!("/v2/app/blobs/{lone}")).await, 200);

    let report = collect(&s, &policy(Duration::ZERO), false).await;
    let mut removed: Vec<String> = report.blobs.iter().map(|(d, _)| d.to_string()).collect();
    removed.sort();
    assert_eq!(removed, want);
    assert!(report.bytes() > 0);
    for digest in &want {
        assert!(
            !blob_file(dir.path(), digest).exists(),
            "{digest} left on disk"
        );
    }
    assert_eq!(status(&s, &format!("/v2/app/blobs/{lone}")).await, 404);
    // The kept image is whole.
    assert_eq!(status(&s, "/v2/app/manifests/kept").await, 200);
    for blob in [
        sha256(b"layer for kept"),
        sha256(br#"{"architecture":"amd64","os":"linux","seed":"kept"}"#),
    ] {
        assert_eq!(status(&s, &format!("/v2/app/blobs/{blob}")).await, 200);
        assert!(blob_file(dir.path(), &blob).exists());
    }
    let body = s
        .http
        .get(s.url("/v2/app/manifests/kept"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), kept.as_slice());
    // Nothing more to do.
    assert!(
        collect(&s, &policy(Duration::ZERO), false)
            .await
            .blobs
            .is_empty()
    );
}

#[tokio::test]
async fn gc_deletes_untagged_manifests_orphan_referrers_and_idle_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let subject = s.push_image("app", "v1", "subject").await;
    let subject_digest = sha256(&subject);
    // An untagged image, and a referrer of the tagged one.
    let config = s.push_blob("app", b"{}").await;
    let layer = s.push_blob("app", b"untagged layer").await;
    let untagged = image_manifest(b"{}", &[b"untagged layer"]);
    let untagged_digest = sha256(&untagged);
    let r = s
        .put_manifest("app", &untagged_digest, OCI_MANIFEST, &untagged)
        .await;
    assert_eq!(r.status(), 201);
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": 14}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject.len()},
    }))
    .unwrap();
    let referrer_digest = sha256(&referrer);
    let r = s
        .put_manifest("app", &referrer_digest, OCI_MANIFEST, &referrer)
        .await;
    assert_eq!(r.status(), 201);
    let upload = s
        .http
        .post(s.url("/v2/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = upload.headers()["location"].to_str().unwrap().to_string();

    // Defaults keep untagged manifests, and the referrer's subject exists.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = collect(&s, &policy(Duration::ZERO), false).await;
    assert!(report.manifests.is_empty(), "{report:?}");
    assert_eq!(
        status(&s, &format!("/v2/app/manifests/{untagged_digest}")).await,
        200
    );

    // Untagged manifests go when asked; the subject is deleted, so its referrer goes too.
    let r = s
        .http
        .delete(s.url(&format!("/v2/app/manifests/{subject_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut aggressive = policy(Duration::ZERO);
    aggressive.untagged_after = Some(Duration::ZERO);
    aggressive.upload_idle = Duration::ZERO;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = collect(&s, &aggressive, false).await;
    let mut manifests: Vec<String> = report
        .manifests
        .iter()
        .map(|(_, d)| d.to_string())
        .collect();
    manifests.sort();
    let mut want = vec![untagged_digest.clone(), referrer_digest.clone()];
    want.sort();
    assert_eq!(manifests, want);
    assert_eq!(report.uploads, 1);
    assert_eq!(
        status(&s, &format!("/v2/app/manifests/{untagged_digest}")).await,
        404
    );
    assert_eq!(
        status(&s, &format!("/v2/app/manifests/{referrer_digest}")).await,
        404
    );
    assert_eq!(status(&s, &location).await, 404);
    // Their content went in the same run.
    for blob in [&config, &layer, &untagged_digest, &referrer_digest] {
        assert!(!blob_file(dir.path(), blob).exists(), "{blob} left on disk");
    }
}

/// Pushes one image made of a shared layer, its own layer and config; retries
/// when a collection took an unreferenced blob first. Returns the manifest
/// and its blobs once a push was acknowledged.
async fn push_until_acknowledged(s: &TestServer, repo: &str, tag: &str) -> (Vec<u8>, Vec<String>) {
    let shared = b"a layer every image shares".to_vec();
    let own = format!("layer of {repo}:{tag}").into_bytes();
    let config = format!(r#"{{"os":"linux","architecture":"amd64","tag":"{tag}"}}"#).into_bytes();
    for _ in 0..20 {
        for blob in [&shared, &own, &config] {
            s.push_blob(repo, blob).await;
        }
        // Garbage for the collector: a blob no manifest will use.
        s.push_blob(
            repo,
            format!("garbage {repo}:{tag} {}", rand_suffix()).as_bytes(),
        )
        .await;
        let manifest = image_manifest(&config, &[&shared, &own]);
        let r = s.put_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        match r.status().as_u16() {
            201 => {
                return (
                    manifest,
                    vec![sha256(&shared), sha256(&own), sha256(&config)],
                );
            }
            // The collector unlinked a blob between upload and manifest: push again.
            400 => assert_eq!(common::error_code(r).await, "MANIFEST_BLOB_UNKNOWN"),
            other => panic!("manifest push answered {other}"),
        }
    }
    panic!("{repo}:{tag} was never acknowledged");
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_racing_collections_never_lose_acknowledged_content() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(TestServer::start(dir.path()).await);
    let done = Arc::new(AtomicBool::new(false));
    let collector = {
        let (s, done) = (s.clone(), done.clone());
        tokio::spawn(async move {
            let mut removed = 0;
            let mut runs = 0;
            while !done.load(Ordering::Relaxed) {
                removed += collect(&s, &policy(Duration::ZERO), false)
                    .await
                    .blobs
                    .len();
                runs += 1;
            }
            (runs, removed)
        })
    };
    let mut pushers = Vec::new();
    for p in 0..4 {
        let s = s.clone();
        pushers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..12 {
                let repo = format!("race/r{}", (p + i) % 3);
                let tag = format!("p{p}-i{i}");
                let (manifest, blobs) = push_until_acknowledged(&s, &repo, &tag).await;
                acknowledged.push((repo, tag, manifest, blobs));
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for p in pushers {
        acknowledged.extend(p.await.unwrap());
    }
    done.store(true, Ordering::Relaxed);
    let (runs, removed) = collector.await.unwrap();
    assert!(runs > 1, "the collector ran {runs} time(s)");
    assert!(removed > 0, "the collector removed nothing");
    // One more collection after the race, then every acknowledged push is whole.
    collect(&s, &policy(Duration::ZERO), false).await;
    assert_eq!(acknowledged.len(), 48);
    for (repo, tag, manifest, blobs) in &acknowledged {
        let r = s
            .http
            .get(s.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{repo}:{tag}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
        for blob in blobs {
            let r = s
                .http
                .get(s.url(&format!("/v2/{repo}/blobs/{blob}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{repo}:{tag} {blob}");
            assert_eq!(&sha256(&r.bytes().await.unwrap()), blob);
        }
    }
}

#[tokio::test]
async fn usage_counts_shared_blobs_once_and_wharf_du_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let shared = vec![1u8; 10_000];
    let only_a = vec![2u8; 3_000];
    let config = br#"{"os":"linux"}"#.to_vec();
    for (repo, own) in [("a", &only_a), ("b", &vec![3u8; 500])] {
        s.push_blob(repo, &shared).await;
        s.push_blob(repo, own).await;
        s.push_blob(repo, &config).await;
        let manifest = image_manifest(&config, &[&shared, own]);
        let r = s.put_manifest(repo, "v1", OCI_MANIFEST, &manifest).await;
        assert_eq!(r.status(), 201);
    }
    let manifest_a = image_manifest(&config, &[&shared, &only_a]);
    let usage = s.registry.usage().await.unwrap();
    let a = &usage[0];
    assert_eq!(a.repo.as_str(), "a");
    let logical = (shared.len() + only_a.len() + config.len() + manifest_a.len()) as u64;
    assert_eq!(a.logical_bytes, logical);
    // The shared layer and the identical config belong to both.
    assert_eq!(a.unique_bytes, (only_a.len() + manifest_a.len()) as u64);
    let (count, bytes) = s.registry.blob_totals().await.unwrap();
    assert_eq!(count, 6);
    let lone = s.push_blob("a", b"garbage for wharf gc").await;
    let manifest_b = image_manifest(&config, &[&shared, &vec![3u8; 500]]);
    assert_eq!(
        bytes,
        (shared.len() + only_a.len() + 500 + config.len() + manifest_a.len() + manifest_b.len())
            as u64
    );
    s.stop().await;

    let out = common::wharf_cli(dir.path())
        .arg("du")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("a ") && l.contains("KiB")),
        "{text}"
    );
    assert!(text.contains("registry: 7 blob(s)"), "{text}");

    // `wharf gc` on the data folder: the dry run reports, the run removes.
    let config = dir.path().join("gc.toml");
    std::fs::write(&config, "[gc]\ngrace_seconds = 0\n").unwrap();
    let gc = |dry_run: bool| {
        let mut command = common::wharf_cli(dir.path());
        command
            .arg("gc")
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--config")
            .arg(&config);
        if dry_run {
            command.arg("--dry-run");
        }
        let out = command.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let dry = gc(true);
    assert!(dry.contains(&format!("blob\t{lone}\t20")), "{dry}");
    assert!(
        dry.contains("would remove 0 manifest(s), 1 blob link(s), 1 blob(s) (20 bytes)"),
        "{dry}"
    );
    assert!(blob_file(dir.path(), &lone).exists());
    let run = gc(false);
    assert!(
        run.contains("removed 0 manifest(s), 1 blob link(s), 1 blob(s) (20 bytes)"),
        "{run}"
    );
    assert!(!blob_file(dir.path(), &lone).exists());
}
