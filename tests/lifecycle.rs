//! Scheduled lifecycle passes over a real data folder: what a policy selects
//! is expired, and repositories without a policy are left alone.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]

mod common;

use bytes::Bytes;
use common::{OCI_MANIFEST, image_manifest, sha256};
use wharf::config::{Config, Overrides};
use wharf::notifications::{Endpoint, NotificationsConfig, Notifier};
use wharf::oci::{Reference, RepoName, Tag};
use wharf::registry::{LifecycleSchedule, Registry, RepositorySettings};

async fn push(registry: &Registry, repo: &RepoName, tag: &str, seed: &str) {
    let config = format!("{{\"seed\":\"{seed}\"}}").into_bytes();
    let digest = sha256(&config).parse().unwrap();
    let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(config.clone()))]);
    registry.put_blob(repo, &digest, None, body).await.unwrap();
    let manifest = image_manifest(&config, &[]);
    let reference = Reference::Tag(tag.parse::<Tag>().unwrap());
    registry
        .put_manifest(
            repo,
            &reference,
            &[],
            Some(OCI_MANIFEST),
            Bytes::from(manifest),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_scheduled_pass_applies_every_policy() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.path().into()),
        ..Default::default()
    };
    let config = Config::load(None, &Default::default(), &overrides).unwrap();
    let registry = wharf::server::open_registry(&config).await.unwrap();
    let (kept, governed) = (
        "team/kept".parse::<RepoName>().unwrap(),
        "team/governed".parse::<RepoName>().unwrap(),
    );
    for repo in [&kept, &governed] {
        registry
            .create_repository(
                repo,
                RepositorySettings {
                    tag_mutability: "MUTABLE".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        for i in 1..=4 {
            push(&registry, repo, &format!("v{i}"), &format!("{repo}-{i}")).await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let policy = r#"{"rules":[{"rulePriority":1,"description":"keep one","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    registry
        .put_lifecycle_policy(&governed, policy)
        .await
        .unwrap();

    // Expiries are webhook events: a receiver collects what the schedule sends.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                let envelope: serde_json::Value = serde_json::from_str(&body).unwrap();
                sink.lock()
                    .unwrap()
                    .extend(envelope["events"].as_array().unwrap().iter().cloned());
                ""
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (notifier, deliveries) = Notifier::new(
        &NotificationsConfig {
            endpoints: vec![Endpoint {
                name: "hook".into(),
                url: hook,
                headers: Default::default(),
                actions: vec![],
            }],
            ..Default::default()
        },
        "test".into(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    for delivery in deliveries {
        tokio::spawn(delivery.run(stop.clone()));
    }

    let schedule = LifecycleSchedule::new(registry.clone(), std::time::Duration::from_secs(3600))
        .with_notifier(notifier);
    assert_eq!(schedule.run_once().await.unwrap(), 3);
    for _ in 0..100 {
        if received.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    {
        let events = received.lock().unwrap();
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e["action"] == "delete"
            && e["actor"]["name"] == "lifecycle"
            && e["target"]["repository"] == governed.as_str()));
    }
    stop.cancel();
    let left: Vec<Vec<String>> = registry
        .images(&governed)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.tags)
        .collect();
    assert_eq!(left, vec![vec!["v4".to_string()]], "the newest image stays");
    assert_eq!(
        registry.images(&kept).await.unwrap().len(),
        4,
        "no policy, nothing expired"
    );
    assert!(
        registry
            .lifecycle_policy(&governed)
            .await
            .unwrap()
            .last_evaluated_at_ms
            .is_some()
    );
    assert_eq!(
        schedule.run_once().await.unwrap(),
        0,
        "a second pass finds nothing more"
    );
}
