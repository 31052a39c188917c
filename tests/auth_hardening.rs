//! Hardened authentication over real HTTP: login throttling that strangers
//! cannot turn against a user, bounded password hashing, client addresses
//! behind proxies, refresh tokens bound to the credential they came from,
//! user removal, private state files and access-key secrets sealed at rest.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers abort the test on failure"
)]

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_ecr::Client;
use aws_sdk_ecr::config::retry::RetryConfig;
use aws_sdk_ecr::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecr::error::ProvideErrorMetadata;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{TestServer, audited, sha256};
use serde_json::Value;
use wharf::auth::{ConfigUser, Rule, hash_password};
use wharf::config::Config;
use wharf::storage::{AccessKeyRecord, CredentialStore, SqlMetadata};

const ALICE: (&str, &str) = ("alice", "alice-secret");

/// alice (from the configuration) may do anything; every signed-in user may pull `pub/*`.
fn secured(c: &mut Config) {
    c.auth.users = vec![ConfigUser {
        name: ALICE.0.into(),
        password_hash: hash_password(ALICE.1).unwrap(),
        groups: vec![],
    }];
    c.auth.rules = vec![
        Rule {
            who: vec!["alice".into()],
            repositories: vec!["*".into()],
            actions: vec!["*".into()],
            catalog: true,
        },
        Rule {
            who: vec!["*".into()],
            repositories: vec!["pub/*".into()],
            actions: vec!["pull".into()],
            catalog: false,
        },
    ];
}

/// An HTTP client whose connections come from `ip` (any 127.x.y.z is local on Linux).
fn from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

/// `docker login`'s token request; returns the status and how long it took.
async fn login(
    s: &TestServer,
    client: &reqwest::Client,
    user: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> (u16, Duration) {
    let started = Instant::now();
    let mut request = client
        .get(s.url("/token?service=wharf&client_id=test"))
        .basic_auth(user, Some(password));
    if let Some(hops) = forwarded_for {
        request = request.header("X-Forwarded-For", hops);
    }
    let status = request.send().await.unwrap().status().as_u16();
    (status, started.elapsed())
}

/// The fastest of three logins: what throttling adds, without scheduling noise.
async fn fastest_login(
    s: &TestServer,
    client: &reqwest::Client,
    (user, password): (&str, &str),
    forwarded_for: Option<&str>,
) -> Duration {
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let (status, took) = login(s, client, user, password, forwarded_for).await;
        assert_eq!(status, 200);
        fastest = fastest.min(took);
    }
    fastest
}

/// A refresh token from a `docker login`-style token request.
async fn refresh_token(s: &TestServer, user: &str, password: &str) -> String {
    let r = s
        .http
        .get(s.url("/token?service=wharf&offline_token=true&client_id=test"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["refresh_token"].as_str().unwrap().to_string()
}

/// POST /token with `grant_type=refresh_token`: the status and error code.
async fn refresh(s: &TestServer, token: &str) -> (u16, String) {
    let form = [
        ("grant_type", "refresh_token"),
        ("service", "wharf"),
        ("client_id", "test"),
        ("refresh_token", token),
        ("scope", "repository:pub/base:pull"),
    ];
    let r = s
        .http
        .post(s.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    let code = body["errors"][0]["code"].as_str().unwrap_or("").to_string();
    (status, code)
}

fn claims(jwt: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ecr(s: &TestServer, id: &str, secret: &str) -> Client {
    let config = aws_sdk_ecr::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(s.url(""))
        .credentials_provider(Credentials::new(id, secret, None, None, "wharf-test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

async fn access_key(s: &TestServer, store: &SqlMetadata, user: &str) -> (String, String) {
    wharf::admin::create_access_key(
        store,
        s.auth.login.secrets(),
        user,
        &[ALICE.0.into()],
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn parallel_wrong_guesses_run_a_bounded_number_of_password_checks() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        secured(c);
        c.auth.password_hash_concurrency = 2;
    })
    .await;
    // 100 guesses at once, each from its own address (so no per-address limit
    // applies), half on /v2/ with HTTP Basic and half at the token endpoint.
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..100u8 {
        let client = from([127, 0, 1, i + 1]);
        let url = if i % 2 == 0 {
            s.url("/v2/")
        } else {
            s.url("/token?service=wharf")
        };
        guesses.spawn(async move {
            let r = client
                .get(url)
                .basic_auth("alice", Some(format!("guess-{i}")))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r.headers().get("retry-after").cloned();
            let body: Value = r.json().await.unwrap();
            (status, retry_after, body["errors"][0]["code"].clone())
        });
    }
    for (status, retry_after, code) in guesses.join_all().await {
        match status {
            401 => assert_eq!(code, "UNAUTHORIZED"),
            429 => {
                assert_eq!(code, "TOOMANYREQUESTS");
                let seconds: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
                assert!(seconds >= 1);
            }
            other => panic!("status {other}"),
        }
    }
    let peak = s.auth.login.hashing_peak();
    assert!(
        (1..=2).contains(&peak),
        "{peak} password checks ran at once"
    );
}

/// A user name or token id with a NUL names nothing any store holds. It was
/// looked up anyway, and PostgreSQL (whose text cannot hold a NUL) failed the
/// request with a 500 where the login should simply fail.
#[tokio::test]
async fn credentials_with_a_nul_fail_the_login_on_every_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let attempts = [
        ("\0", "x"),
        ("al\0ice", ALICE.1),
        ("alice", "wharf_\0id_secret"),
    ];
    for (i, (user, password)) in attempts.into_iter().enumerate() {
        // Each from its own address, so throttling adds no waits.
        let client = from([127, 0, 2, i as u8 + 1]);
        let (status, _) = login(&s, &client, user, password, None).await;
        assert_eq!(status, 401, "token endpoint, {user:?}");
        let r = client
            .get(s.url("/v2/"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "/v2/, {user:?}");
    }
    // The failed login is in the audit log, its NUL replaced.
    let store = SqlMetadata::open(&s.database).await.unwrap();
    audited(&store, "failed login of al\\0ice", |e| {
        e.action == "login.failed" && e.actor == "al\u{FFFD}ice"
    })
    .await;
    let (status, _) = login(&s, &from([127, 0, 2, 9]), ALICE.0, ALICE.1, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_failing_address_waits_longer_and_gets_one_attempt_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let guesser = from([127, 0, 2, 1]);
    let mut last = Duration::ZERO;
    for _ in 0..4 {
        let (status, took) = login(&s, &guesser, "alice", "wrong", None).await;
        assert_eq!(status, 401);
        last = took;
    }
    assert!(
        last >= Duration::from_millis(300),
        "third penalty: {last:?}"
    );
    // While one attempt from the address waits out its penalty (1.6 s now),
    // another is refused at once instead of piling up.
    let waiting = {
        let (url, guesser) = (s.url("/token?service=wharf"), guesser.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = guesser
                .get(url)
                .basic_auth(ALICE.0, Some(ALICE.1))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = guesser
        .get(s.url("/v2/"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(common::error_code(r).await, "TOOMANYREQUESTS");
    let (status, took) = waiting.await.unwrap();
    assert_eq!(
        status, 200,
        "a correct password still works, after the wait"
    );
    assert!(took >= Duration::from_millis(800), "{took:?}");
}

#[tokio::test]
async fn a_strangers_failures_do_not_delay_a_users_login_from_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let (victim, stranger) = (from([127, 0, 3, 1]), from([127, 0, 3, 2]));
    assert_eq!(login(&s, &victim, ALICE.0, ALICE.1, None).await.0, 200);
    // Each time right after a failure of the stranger's, which would cost the
    // victim at least 200 ms if it counted against the user name.
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        assert_eq!(login(&s, &stranger, "alice", "wrong", None).await.0, 401);
        let (status, took) = login(&s, &victim, ALICE.0, ALICE.1, None).await;
        assert_eq!(status, 200);
        fastest = fastest.min(took);
    }
    assert!(fastest < Duration::from_millis(100), "{fastest:?}");
    // The stranger's own address is slowed down.
    let (status, took) = login(&s, &stranger, "alice", "wrong", None).await;
    assert_eq!(status, 401);
    assert!(took >= Duration::from_millis(500), "{took:?}");
}

#[tokio::test]
async fn behind_a_proxy_the_client_is_the_address_the_proxy_appended() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        secured(c);
        c.auth.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let victim = "198.51.100.7";
    assert_eq!(
        login(&s, &s.http, ALICE.0, ALICE.1, Some(victim)).await.0,
        200
    );
    // nginx appends the real address (203.0.113.9) to what the client sent:
    // a guesser cannot pin its failures on the victim's address...
    let spoofed = format!("{victim}, 203.0.113.9");
    for _ in 0..3 {
        let (status, _) = login(&s, &s.http, "mallory", "wrong", Some(&spoofed)).await;
        assert_eq!(status, 401);
    }
    let fastest = fastest_login(&s, &s.http, ALICE, Some(victim)).await;
    assert!(fastest < Duration::from_millis(100), "{fastest:?}");
    // ...nor escape its own penalty by changing what it writes first.
    let rotated = "192.0.2.200, 203.0.113.9";
    let (status, took) = login(&s, &s.http, "mallory2", "wrong", Some(rotated)).await;
    assert_eq!(status, 401);
    assert!(took >= Duration::from_millis(500), "{took:?}");
}

#[tokio::test]
async fn a_new_password_ends_refresh_tokens_and_remembered_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let store = SqlMetadata::open(&s.database).await.unwrap();
    wharf::admin::add_user(
        &store,
        "carol",
        "carol-secret-1",
        vec![],
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    let token = refresh_token(&s, "carol", "carol-secret-1").await;
    assert_eq!(refresh(&s, &token).await.0, 200);
    let basic = |password: &'static str| {
        s.http
            .get(s.url("/v2/"))
            .basic_auth("carol", Some(password))
            .send()
    };
    assert_eq!(basic("carol-secret-1").await.unwrap().status(), 200);

    wharf::admin::set_password(
        &store,
        "carol",
        "carol-secret-2",
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    assert_eq!(refresh(&s, &token).await, (401, "UNAUTHORIZED".into()));
    assert_eq!(
        basic("carol-secret-1").await.unwrap().status(),
        401,
        "the old password is not taken from memory"
    );
    assert_eq!(basic("carol-secret-2").await.unwrap().status(), 200);
    let token = refresh_token(&s, "carol", "carol-secret-2").await;
    assert_eq!(refresh(&s, &token).await.0, 200);
}

#[tokio::test]
async fn a_removed_user_added_again_does_not_get_old_refresh_tokens_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let store = SqlMetadata::open(&s.database).await.unwrap();
    wharf::admin::add_user(
        &store,
        "carol",
        "carol-secret-1",
        vec![],
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    let token = refresh_token(&s, "carol", "carol-secret-1").await;
    wharf::admin::remove_user(&store, "carol", wharf::admin::By::unrecorded())
        .await
        .unwrap();
    assert_eq!(refresh(&s, &token).await, (401, "UNAUTHORIZED".into()));
    wharf::admin::add_user(
        &store,
        "carol",
        "carol-secret-1",
        vec![],
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    assert_eq!(refresh(&s, &token).await, (401, "UNAUTHORIZED".into()));
}

#[tokio::test]
async fn an_ecr_login_password_yields_no_refresh_token_outliving_it_or_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let store = SqlMetadata::open(&s.database).await.unwrap();
    let (id, secret) = access_key(&s, &store, "alice").await;
    let auth = ecr(&s, &id, &secret)
        .get_authorization_token()
        .send()
        .await
        .unwrap();
    let data = &auth.authorization_data()[0];
    let expires_at = data.expires_at().unwrap().secs() as u64;
    let decoded = STANDARD
        .decode(data.authorization_token().unwrap())
        .unwrap();
    let (user, password) = std::str::from_utf8(&decoded)
        .unwrap()
        .split_once(':')
        .unwrap();
    assert_eq!(user, "AWS");
    let token = refresh_token(&s, "AWS", password).await;
    let exp = claims(&token)["exp"].as_u64().unwrap();
    assert!(
        exp <= expires_at,
        "refresh token until {exp}, the password only until {expires_at}"
    );
    assert!(exp > now() + 11 * 3600);
    assert_eq!(refresh(&s, &token).await.0, 200);

    // Revoking the key that obtained the password ends both.
    wharf::admin::revoke_access_key(&store, &id, wharf::admin::By::unrecorded())
        .await
        .unwrap();
    assert_eq!(login(&s, &s.http, "AWS", password, None).await.0, 401);
    assert_eq!(refresh(&s, &token).await, (401, "UNAUTHORIZED".into()));
    // alice's own password still works.
    assert_eq!(login(&s, &s.http, ALICE.0, ALICE.1, None).await.0, 200);
}

#[tokio::test]
async fn a_refresh_token_never_outlives_the_access_token_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let store = SqlMetadata::open(&s.database).await.unwrap();
    let secret = wharf::admin::create_token(
        &store,
        "ci",
        &["repository:pub/*:pull".into()],
        Some(Duration::from_secs(3600)),
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    let token = refresh_token(&s, "robot", &secret).await;
    let exp = claims(&token)["exp"].as_u64().unwrap();
    assert!(exp <= now() + 3600 + 5, "{exp}");
    assert_eq!(refresh(&s, &token).await.0, 200);
}

#[tokio::test]
async fn removing_a_user_revokes_their_access_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let store = SqlMetadata::open(&s.database).await.unwrap();
    wharf::admin::add_user(
        &store,
        "dave",
        "dave-secret-1",
        vec![],
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    let (id, secret) = access_key(&s, &store, "dave").await;
    let dave = ecr(&s, &id, &secret);
    dave.describe_repositories().send().await.unwrap();

    // Awaited, not blocking: the server runs on this test's one runtime
    // thread, and a write transaction of its own left waiting there would
    // hold the lock the command needs.
    let mut command = common::wharf_cli(dir.path());
    command
        .args(["user", "remove", "dave", "--data-dir"])
        .arg(dir.path());
    let out = tokio::process::Command::from(command)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 access key"),
        "{out:?}"
    );
    wharf::admin::add_user(
        &store,
        "dave",
        "dave-secret-1",
        vec![],
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    let err = dave.describe_repositories().send().await.unwrap_err();
    assert_eq!(err.code(), Some("UnrecognizedClientException"));
    assert!(store.access_keys(Some("dave")).await.unwrap().is_empty());
}

#[tokio::test]
async fn access_key_secrets_are_sealed_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let database = s.database.clone();
    let store = SqlMetadata::open(&database).await.unwrap();
    let (id, secret) = access_key(&s, &store, "alice").await;
    let stored = store.access_key(&id).await.unwrap().unwrap().sealed_secret;
    assert!(!stored.contains(&secret), "{stored}");
    assert!(stored.starts_with("sealed:v1:"), "{stored}");
    ecr(&s, &id, &secret)
        .describe_repositories()
        .send()
        .await
        .unwrap();

    // A row an older version stored as is keeps working and is sealed at the next start.
    let (old_id, old_secret) = wharf::auth::new_access_key();
    store
        .put_access_key(&AccessKeyRecord {
            id: old_id.clone(),
            user: "alice".into(),
            sealed_secret: old_secret.clone(),
            created_at_ms: 0,
        })
        .await
        .unwrap();
    s.stop().await;
    let s = TestServer::start_with(dir.path(), secured).await;
    let stored = store
        .access_key(&old_id)
        .await
        .unwrap()
        .unwrap()
        .sealed_secret;
    assert!(!stored.contains(&old_secret), "{stored}");
    for (id, secret) in [(&id, &secret), (&old_id, &old_secret)] {
        ecr(&s, id, secret)
            .describe_repositories()
            .send()
            .await
            .unwrap();
    }
    s.stop().await;

    // The database alone cannot open them: a process given another key refuses to start.
    let other = dir.path().join("other-key");
    wharf::auth::SecretsKey::load(&other, true).unwrap();
    let overrides = wharf::config::Overrides {
        data_dir: Some(dir.path().into()),
        ..Default::default()
    };
    let mut config = Config::load(None, &Default::default(), &overrides).unwrap();
    if let wharf::storage::Database::Postgres { url, .. } = &database {
        config.database.url = url.clone();
    }
    secured(&mut config);
    config.auth.secrets_key = other;
    let err = wharf::server::AppState::open(&config)
        .await
        .err()
        .expect("must refuse another secrets key");
    assert!(
        err.to_string().contains("sealed with another secrets key"),
        "{err}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn everything_wharf_creates_is_private_to_its_account() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = common::free_port();
    let mut child = std::process::Command::new(common::wharf_bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/v2/")).send().await.is_err() {
        assert!(Instant::now() < deadline, "wharf did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A pushed blob and manifest, and an upload session left open.
    let config = b"{}";
    let r = http
        .post(format!(
            "{base}/v2/app/blobs/uploads/?digest={}",
            sha256(config)
        ))
        .body(&config[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .put(format!("{base}/v2/app/manifests/v1"))
        .header("Content-Type", common::OCI_MANIFEST)
        .body(common::image_manifest(config, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("{base}/v2/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = http
        .patch(format!("{base}{location}"))
        .body(&b"half a layer"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    child.kill().unwrap();
    child.wait().unwrap();

    let mut seen = Vec::new();
    let mut pending = vec![data.clone()];
    while let Some(path) = pending.pop() {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        if path.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
            seen.push(path.strip_prefix(&data).unwrap().to_path_buf());
        }
    }
    for expected in ["metadata.db", "token-signing-key.pem", "secrets-key"] {
        assert!(
            seen.iter().any(|p| p.as_os_str() == expected),
            "{expected} in {seen:?}"
        );
    }
    assert!(
        seen.iter().filter(|p| p.starts_with("blobs")).count() >= 3,
        "{seen:?}"
    );
}
