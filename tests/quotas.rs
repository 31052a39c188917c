//! Storage quotas: pushes over a repository's or a namespace's limit are
//! refused with DENIED and leave nothing behind; content already counted is free.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]

mod common;

use common::{TestServer, error_code, sha256};
use wharf::registry::{Quota, QuotaScope};

async fn monolithic(s: &TestServer, repo: &str, data: &[u8]) -> reqwest::Response {
    s.http
        .post(s.url(&format!(
            "/v2/{repo}/blobs/uploads/?digest={}",
            sha256(data)
        )))
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

async fn exists(s: &TestServer, repo: &str, data: &[u8]) -> bool {
    let url = s.url(&format!("/v2/{repo}/blobs/{}", sha256(data)));
    s.http.head(url).send().await.unwrap().status() == 200
}

fn staged_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("blobs/uploads"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn pushes_over_quota_are_denied_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        c.limits.quotas = vec![
            Quota {
                repositories: "small/*".into(),
                max_bytes: 1000,
                per: QuotaScope::Repository,
            },
            Quota {
                repositories: "team/*".into(),
                max_bytes: 1000,
                per: QuotaScope::Namespace,
            },
        ];
    })
    .await;
    let first = vec![1u8; 600];
    let second = vec![2u8; 600];

    // Per repository.
    assert_eq!(monolithic(&s, "small/a", &first).await.status(), 201);
    let r = monolithic(&s, "small/a", &second).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "DENIED");
    assert!(!exists(&s, "small/a", &second).await);
    assert_eq!(staged_files(dir.path()), 0);
    // Chunked: refused at the final PUT, session and bytes gone.
    let r = s
        .http
        .post(s.url("/v2/small/a/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = s.url(r.headers()["location"].to_str().unwrap());
    let r = s
        .http
        .put(format!("{location}?digest={}", sha256(&second)))
        .body(second.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(s.http.get(&location).send().await.unwrap().status(), 404);
    assert_eq!(staged_files(dir.path()), 0);
    // Content already held costs nothing; another repository has its own limit.
    assert_eq!(monolithic(&s, "small/a", &first).await.status(), 201);
    assert_eq!(monolithic(&s, "small/b", &second).await.status(), 201);
    // A mount counts too.
    let r = s
        .http
        .post(s.url(&format!(
            "/v2/small/a/blobs/uploads/?mount={}&from=small/b",
            sha256(&second)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(!exists(&s, "small/a", &second).await);

    // Per namespace: team/a and team/b share 1000 bytes, shared content counted once.
    assert_eq!(monolithic(&s, "team/a", &first).await.status(), 201);
    assert_eq!(monolithic(&s, "team/b", &second).await.status(), 403);
    assert_eq!(monolithic(&s, "team/b", &first).await.status(), 201);
    // Repositories no quota matches are unlimited.
    assert_eq!(
        monolithic(&s, "free/x", &vec![3u8; 5000]).await.status(),
        201
    );
}
