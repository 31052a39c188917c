//! Corrupt storage is never served silently, `wharf fsck` finds what is
//! wrong, `--repair` quarantines it, and pushing the content again heals it.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]

mod common;

use std::path::Path;

use common::{OCI_MANIFEST, TestServer, blob_file, sha256};

fn fsck(dir: &Path, repair: bool) -> (bool, String) {
    let mut command = common::wharf_cli(dir);
    command.arg("fsck").arg("--data-dir").arg(dir);
    if repair {
        command.arg("--repair");
    }
    let out = command.output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

#[tokio::test]
async fn corruption_is_detected_quarantined_and_healed() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let manifest = s.push_image("app", "v1", "fragile").await;
    let manifest_digest = sha256(&manifest);
    let layer = b"layer for fragile".to_vec();
    let layer_digest = sha256(&layer);
    // Flip one byte of the stored layer, keeping its size.
    let path = blob_file(dir.path(), &layer_digest);
    let mut stored = std::fs::read(&path).unwrap();
    stored[3] ^= 0xff;
    std::fs::write(&path, &stored).unwrap();

    // A full read breaks instead of delivering the wrong bytes.
    let url = s.url(&format!("/v2/app/blobs/{layer_digest}"));
    let read = async { s.http.get(&url).send().await?.bytes().await }.await;
    match read {
        Err(_) => {}
        Ok(body) => assert_ne!(body.len(), layer.len(), "corrupt bytes served whole"),
    }
    s.stop().await;

    // An orphan: bytes without a record.
    let orphan = sha256(b"nobody recorded me");
    let orphan_path = blob_file(dir.path(), &orphan);
    std::fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
    std::fs::write(&orphan_path, b"nobody recorded me").unwrap();

    let (ok, out) = fsck(dir.path(), false);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("corrupt\t{layer_digest}")), "{out}");
    assert!(
        out.contains(&format!("broken manifest\tapp@{manifest_digest}")),
        "{out}"
    );
    assert!(out.contains(&format!("orphan\t{orphan}")), "{out}");
    assert!(out.contains("0 missing, 1 corrupt"), "{out}");
    assert!(path.exists(), "a check without --repair changed something");

    let (ok, out) = fsck(dir.path(), true);
    assert!(
        !ok,
        "the manifest stays broken until the layer is pushed again: {out}"
    );
    assert!(
        out.contains(&format!("quarantined\t{layer_digest}")),
        "{out}"
    );
    assert!(!path.exists());
    let hex = layer_digest.strip_prefix("sha256:").unwrap();
    assert!(
        dir.path()
            .join("blobs/quarantine/sha256")
            .join(hex)
            .exists()
    );

    // Quarantined content is absent: HEAD says so, so clients push it again.
    let s = TestServer::start(dir.path()).await;
    let url = s.url(&format!("/v2/app/blobs/{layer_digest}"));
    let head = s.http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 404);
    s.push_blob("app", &layer).await;
    let body = s
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), layer.as_slice());
    let r = s
        .http
        .get(s.url("/v2/app/manifests/v1"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
    let (ok, out) = fsck(dir.path(), false);
    assert!(ok, "{out}");
    assert!(
        out.contains("0 missing, 0 corrupt, 0 broken manifest(s)"),
        "{out}"
    );
}
