//! Manifests over real HTTP: media types, validation, concurrency, deletes and referrers.

mod common;

use common::{OCI_INDEX, OCI_MANIFEST, TestServer, error_code, image_manifest, sha256};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[tokio::test]
async fn docker_media_types_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let config = b"{\"os\":\"linux\"}";
    s.push_blob("app", config).await;
    s.push_blob("app", b"layer").await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": sha256(b"layer"), "size": 5}],
    }))
    .unwrap();
    assert_eq!(
        s.put_manifest("app", "v1", DOCKER_MANIFEST, &manifest)
            .await
            .status(),
        201
    );
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": sha256(&manifest), "size": manifest.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    assert_eq!(
        s.put_manifest("app", "multi", DOCKER_LIST, &list)
            .await
            .status(),
        201
    );

    for (tag, media_type, body) in [
        ("v1", DOCKER_MANIFEST, &manifest),
        ("multi", DOCKER_LIST, &list),
    ] {
        let r = s
            .http
            .get(s.url(&format!("/v2/app/manifests/{tag}")))
            .header("Accept", media_type)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], media_type);
        assert_eq!(r.headers()["docker-content-digest"], sha256(body).as_str());
        assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());
    }
    // A client that accepts only OCI types is not handed a Docker manifest.
    let r = s
        .http
        .get(s.url("/v2/app/manifests/v1"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn schema1_and_malformed_manifests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let schema1 = br#"{"schemaVersion":1,"name":"app","tag":"v1","fsLayers":[]}"#;
    let r = s
        .put_manifest(
            "app",
            "old",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1,
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "MANIFEST_INVALID");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("schema 1")
    );
    // Declared type and body disagree.
    let manifest = s.push_image("app", "ok", "x").await;
    let r = s.put_manifest("app", "mixed", OCI_INDEX, &manifest).await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    // Nothing half-made: the repository has only the good tag.
    let tags: serde_json::Value = s
        .http
        .get(s.url("/v2/app/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["ok"]));
}

#[tokio::test]
async fn oversized_manifest_is_refused_without_buffering_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| c.limits.max_manifest_bytes = 1024).await;
    let big = vec![b' '; 10 * 1024];
    let r = s.put_manifest("app", "big", OCI_MANIFEST, &big).await;
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
}

#[tokio::test]
async fn concurrent_pushes_of_one_tag_leave_it_on_a_complete_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let config = b"{}";
    s.push_blob("race", config).await;
    let mut manifests = Vec::new();
    for i in 0..16 {
        let layer = format!("layer {i}").into_bytes();
        s.push_blob("race", &layer).await;
        manifests.push(image_manifest(config, &[&layer]));
    }
    let tasks: Vec<_> = manifests
        .iter()
        .cloned()
        .map(|m| {
            let (http, url) = (s.http.clone(), s.url("/v2/race/manifests/latest"));
            tokio::spawn(async move {
                http.put(url)
                    .header("Content-Type", OCI_MANIFEST)
                    .body(m)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let r = s
        .http
        .get(s.url("/v2/race/manifests/latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert!(
        manifests.iter().any(|m| m.as_slice() == body.as_ref()),
        "latest must be one of the pushed manifests"
    );
    // Every layer the tagged manifest names is there.
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let layer = doc["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(
        s.http
            .head(s.url(&format!("/v2/race/blobs/{layer}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn blobs_in_use_cannot_be_deleted_until_their_manifest_is() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let manifest = s.push_image("app", "v1", "in-use").await;
    let doc: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer = doc["layers"][0]["digest"].as_str().unwrap().to_string();
    let r = s
        .http
        .delete(s.url(&format!("/v2/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        s.http
            .get(s.url("/v2/app/manifests/v1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let r = s
        .http
        .delete(s.url(&format!("/v2/app/manifests/{}", sha256(&manifest))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        s.http
            .get(s.url("/v2/app/manifests/v1"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = s
        .http
        .delete(s.url(&format!("/v2/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        s.http
            .get(s.url(&format!("/v2/app/blobs/{layer}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn index_needs_its_children_and_referrers_follow_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let child = s.push_image("app", "amd64", "child").await;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(&child), "size": child.len()}],
    }))
    .unwrap();
    let r = s.put_manifest("other", "idx", OCI_INDEX, &index).await;
    assert_eq!(
        error_code(r).await,
        "MANIFEST_BLOB_UNKNOWN",
        "children must be in the same repository"
    );
    assert_eq!(
        s.put_manifest("app", "idx", OCI_INDEX, &index)
            .await
            .status(),
        201
    );

    s.push_blob("app", b"{}").await;
    let signature = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_INDEX, "digest": sha256(&index), "size": index.len()},
        "annotations": {"org.example.signer": "ci"},
    }))
    .unwrap();
    let r = s
        .put_manifest("app", &sha256(&signature), OCI_MANIFEST, &signature)
        .await;
    assert_eq!(r.headers()["oci-subject"], sha256(&index).as_str());
    let r = s
        .http
        .get(s.url(&format!("/v2/app/referrers/{}", sha256(&index))))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["manifests"][0]["digest"], sha256(&signature));
    assert_eq!(
        body["manifests"][0]["artifactType"],
        "application/vnd.example.sig"
    );
    assert_eq!(
        body["manifests"][0]["annotations"]["org.example.signer"],
        "ci"
    );
    // Deleting the referrer removes it from the list.
    s.http
        .delete(s.url(&format!("/v2/app/manifests/{}", sha256(&signature))))
        .send()
        .await
        .unwrap();
    let r = s
        .http
        .get(s.url(&format!("/v2/app/referrers/{}", sha256(&index))))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["manifests"], serde_json::json!([]));
}

#[tokio::test]
async fn catalog_and_tags_paginate_with_link_headers() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    for repo in ["a/one", "a/two", "b"] {
        s.push_image(repo, "t1", repo).await;
    }
    let r = s.http.get(s.url("/v2/_catalog?n=2")).send().await.unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(link, "</v2/_catalog?n=2&last=a%2Ftwo>; rel=\"next\"");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["repositories"], serde_json::json!(["a/one", "a/two"]));
    let r = s
        .http
        .get(s.url("/v2/_catalog?n=2&last=a%2Ftwo"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("link").is_none());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["repositories"], serde_json::json!(["b"]));
    let r = s
        .http
        .get(s.url("/v2/b/tags/list?n=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// The official conformance suites ask for `.INVALID_MANIFEST_NAME`: a
/// reference that cannot be a tag names no manifest (404 MANIFEST_UNKNOWN on
/// reads and deletes), while pushing to it is 400 TAG_INVALID and stores nothing.
#[tokio::test]
async fn a_reference_that_cannot_be_a_tag_is_unknown_to_reads_and_invalid_to_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let manifest = s.push_image("app", "ok", "x").await;
    for reference in [".INVALID_MANIFEST_NAME", "-dash", &"t".repeat(129)] {
        let url = s.url(&format!("/v2/app/manifests/{reference}"));
        let r = s.http.head(&url).send().await.unwrap();
        assert_eq!(r.status(), 404, "HEAD {reference}");
        let r = s.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 404, "GET {reference}");
        assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
        let r = s.http.delete(&url).send().await.unwrap();
        assert_eq!(r.status(), 404, "DELETE {reference}");
        assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
        let r = s
            .put_manifest("app", reference, OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(r.status(), 400, "PUT {reference}");
        assert_eq!(error_code(r).await, "TAG_INVALID");
    }
    let tags: serde_json::Value = s
        .http
        .get(s.url("/v2/app/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["ok"]));
}
