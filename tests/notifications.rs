//! Webhooks: push, pull and delete events reach every endpoint that wants
//! them, in Distribution's envelope, after retries when an endpoint fails,
//! and an endpoint that never answers holds nobody up.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{OCI_MANIFEST, TestServer, sha256};
use serde_json::Value;
use wharf::notifications::Endpoint;

#[derive(Clone, Default)]
struct Receiver {
    events: Arc<Mutex<Vec<Value>>>,
    /// Requests to refuse with a 500 before accepting.
    failures_left: Arc<AtomicUsize>,
    attempts: Arc<AtomicUsize>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    r.attempts.fetch_add(1, Ordering::SeqCst);
    if r.failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    assert_eq!(
        headers["content-type"],
        "application/vnd.docker.distribution.events.v1+json"
    );
    assert_eq!(headers["authorization"], "Bearer hook-secret");
    let envelope: Value = serde_json::from_str(&body).unwrap();
    r.events
        .lock()
        .unwrap()
        .extend(envelope["events"].as_array().unwrap().iter().cloned());
    StatusCode::OK
}

async fn listen(receiver: Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

fn endpoint(name: &str, url: String, actions: &[&str]) -> Endpoint {
    Endpoint {
        name: name.into(),
        url,
        headers: BTreeMap::from([("Authorization".into(), "Bearer hook-secret".into())]),
        actions: actions.iter().map(|a| a.to_string()).collect(),
    }
}

async fn wait_for(receiver: &Receiver, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let events = receiver.events.lock().unwrap().clone();
        if events.len() >= count {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.events.lock().unwrap().clone()
}

#[tokio::test]
async fn events_are_delivered_filtered_and_retried() {
    let all = Receiver {
        failures_left: Arc::new(AtomicUsize::new(2)),
        ..Default::default()
    };
    let deletes = Receiver::default();
    let all_url = listen(all.clone()).await;
    let deletes_url = listen(deletes.clone()).await;
    // An endpoint that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/hook", silent.local_addr().unwrap());
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        c.notifications.endpoints = vec![
            endpoint("silent", silent_url, &[]),
            endpoint("all", all_url, &[]),
            endpoint("deletes", deletes_url, &["delete"]),
        ];
    })
    .await;
    let manifest = s.push_image("app", "v1", "hooked").await;
    let digest = sha256(&manifest);
    let r = s
        .http
        .get(s.url("/v2/app/manifests/v1"))
        .header("Accept", OCI_MANIFEST)
        .header("X-Request-Id", "pull-1")
        .header("User-Agent", "hook-test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // HEAD is not a pull.
    s.http
        .head(s.url("/v2/app/manifests/v1"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    let r = s
        .http
        .delete(s.url(&format!("/v2/app/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Two blob pushes, the manifest push, the pull, the delete.
    let events = wait_for(&all, 5).await;
    assert!(
        all.attempts.load(Ordering::SeqCst) >= 3,
        "no retry happened"
    );
    let summary: Vec<(String, Option<String>)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["target"]["tag"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("push".to_string(), None),
            ("push".to_string(), None),
            ("push".to_string(), Some("v1".to_string())),
            ("pull".to_string(), Some("v1".to_string())),
            ("delete".to_string(), None),
        ]
    );
    let pushed = &events[2];
    assert_eq!(pushed["target"]["repository"], "app");
    assert_eq!(pushed["target"]["digest"], digest.as_str());
    assert_eq!(pushed["target"]["size"], manifest.len());
    assert_eq!(pushed["target"]["mediaType"], OCI_MANIFEST);
    assert_eq!(pushed["request"]["method"], "PUT");
    let pulled = &events[3];
    assert_eq!(pulled["request"]["id"], "pull-1");
    assert_eq!(pulled["request"]["useragent"], "hook-test");
    assert_eq!(pulled["request"]["addr"], "127.0.0.1");
    assert_eq!(events[4]["target"]["digest"], digest.as_str());

    let only = wait_for(&deletes, 1).await;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["action"], "delete");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(deletes.events.lock().unwrap().len(), 1);

    // Changes through the ECR API are events too (open mode: no signature needed).
    let ecr = |operation: &str, body: Value| {
        s.http
            .post(s.url("/"))
            .header(
                "X-Amz-Target",
                format!("AmazonEC2ContainerRegistry_V20150921.{operation}"),
            )
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
    };
    let r = ecr(
        "PutImage",
        serde_json::json!({
            "repositoryName": "app", "imageTag": "v2",
            "imageManifest": String::from_utf8(manifest.clone()).unwrap(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let r = ecr(
        "BatchDeleteImage",
        serde_json::json!({
            "repositoryName": "app", "imageIds": [{"imageTag": "v2"}],
        }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let events = wait_for(&all, 7).await;
    assert_eq!(events[5]["action"], "push");
    assert_eq!(events[5]["target"]["tag"], "v2");
    assert_eq!(events[5]["target"]["digest"], digest.as_str());
    assert_eq!(events[5]["request"]["method"], "POST");
    assert_eq!(events[6]["action"], "delete");
    assert_eq!(events[6]["target"]["tag"], "v2");
    assert_eq!(wait_for(&deletes, 2).await.len(), 2);
}
