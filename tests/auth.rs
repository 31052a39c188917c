//! Token authentication over real HTTP: the challenge, the token endpoint,
//! every way a token is rejected, HTTP Basic, access tokens and refresh.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{OCI_MANIFEST, TestServer, sha256};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use wharf::auth::{ConfigUser, Rule, hash_password};
use wharf::config::Config;
use wharf::storage::SqlMetadata;

const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret-1");

fn secured(c: &mut Config) {
    c.auth.users = [ALICE, BOB]
        .map(|(name, pw)| ConfigUser {
            name: name.into(),
            password_hash: hash_password(pw).unwrap(),
            groups: vec![],
        })
        .to_vec();
    c.auth.rules = vec![
        Rule {
            who: vec!["alice".into()],
            repositories: vec!["*".into()],
            actions: vec!["*".into()],
            catalog: true,
        },
        Rule {
            who: vec!["bob".into()],
            repositories: vec!["*".into()],
            actions: vec!["pull".into()],
            catalog: false,
        },
    ];
    c.auth.anonymous_pull = vec!["public/*".into()];
}

async fn token(s: &TestServer, user: Option<(&str, &str)>, scope: &str) -> Value {
    let mut req = s.http.get(s.url(&format!(
        "/token?service=wharf&scope={scope}&offline_token=true&client_id=test"
    )));
    if let Some((u, p)) = user {
        req = req.basic_auth(u, Some(p));
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "token request");
    r.json().await.unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for `sub` with push and pull on `repo`, valid now.
fn claims(repo: &str) -> Value {
    json!({
        "iss": "wharf", "sub": "alice", "aud": "wharf", "exp": now() + 300, "nbf": now(), "iat": now(),
        "jti": "test", "access": [{"type": "repository", "name": repo, "actions": ["pull", "push"]}],
    })
}

async fn server_key(s: &TestServer, dir: &std::path::Path) -> (EncodingKey, String) {
    let pem = match &s.database {
        // Replicas on PostgreSQL share the key the database keeps.
        wharf::storage::Database::Postgres { .. } => SqlMetadata::open(&s.database)
            .await
            .unwrap()
            .shared_value("token_signing_key", "")
            .await
            .unwrap(),
        wharf::storage::Database::Sqlite { .. } => {
            std::fs::read_to_string(dir.join("token-signing-key.pem")).unwrap()
        }
    };
    let kid = wharf::auth::SigningKey::from_pem(&pem).unwrap().kid;
    (EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(), kid)
}

fn sign(key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// GET tags with a bearer token; returns the status and the WWW-Authenticate header.
async fn use_token(s: &TestServer, bearer: &str, repo: &str) -> (u16, String) {
    let r = s
        .http
        .get(s.url(&format!("/v2/{repo}/tags/list")))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), challenge)
}

#[tokio::test]
async fn unauthenticated_requests_get_a_bearer_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let r = s.http.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let realm = format!("Bearer realm=\"http://{}/token\",service=\"wharf\"", s.addr);
    assert_eq!(r.headers()["www-authenticate"], realm.as_str());
    let r = s
        .http
        .get(s.url("/v2/team/app/manifests/latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("{realm},scope=\"repository:team/app:pull\"").as_str()
    );
    assert_eq!(common::error_code(r).await, "UNAUTHORIZED");
    // Anonymous pull where configured: no challenge (404 only because the repository is empty).
    let r = s
        .http
        .get(s.url("/v2/public/base/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .http
        .put(s.url("/v2/public/base/manifests/x"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "anonymous pull does not allow push");
}

#[tokio::test]
async fn tokens_grant_the_intersection_of_asked_and_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let t = token(&s, Some(ALICE), "repository:team/app:pull,push").await;
    assert_eq!(t["token"], t["access_token"]);
    assert!(t["expires_in"].as_u64().unwrap() >= 60);
    assert!(t["issued_at"].as_str().unwrap().contains('T'));
    assert!(t["refresh_token"].is_string());
    let alice = t["token"].as_str().unwrap().to_string();

    // Alice pushes with her token.
    let config = b"{}";
    let r = s
        .http
        .post(s.url(&format!(
            "/v2/team/app/blobs/uploads/?digest={}",
            sha256(config)
        )))
        .bearer_auth(&alice)
        .body(&config[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let manifest = common::image_manifest(config, &[]);
    let r = s
        .http
        .put(s.url("/v2/team/app/manifests/v1"))
        .bearer_auth(&alice)
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Bob asks for push too but only gets pull: no error at the token endpoint.
    let t = token(&s, Some(BOB), "repository:team/app:pull,push").await;
    let bob = t["token"].as_str().unwrap();
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(bob.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        payload["access"],
        json!([{"type": "repository", "name": "team/app", "actions": ["pull"]}])
    );
    assert_eq!(payload["sub"], "bob");
    assert_eq!(use_token(&s, bob, "team/app").await.0, 200);
    let r = s
        .http
        .put(s.url("/v2/team/app/manifests/v2"))
        .bearer_auth(bob)
        .header("Content-Type", OCI_MANIFEST)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"repository:team/app:pull,push\""),
        "{challenge}"
    );
    // A token for one repository does not open another.
    let (status, challenge) = use_token(&s, &alice, "team/other").await;
    assert_eq!(status, 401);
    assert!(challenge.contains("insufficient_scope"));

    // Wrong password: 401 at the token endpoint.
    let r = s
        .http
        .get(s.url("/token?service=wharf"))
        .basic_auth("alice", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn every_bad_token_is_rejected_as_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let (key, kid) = server_key(&s, dir.path()).await;
    let valid = sign(&key, &kid, &claims("team/app"));
    assert_eq!(
        use_token(&s, &valid, "team/app").await.0,
        404,
        "a well-made token passes (the repository is empty)"
    );

    let other = wharf::auth::SigningKey::load(&dir.path().join("other.pem"), true).unwrap();
    let other_pem = std::fs::read_to_string(dir.path().join("other.pem")).unwrap();
    let other_key = EncodingKey::from_ec_pem(other_pem.as_bytes()).unwrap();
    let mut expired = claims("team/app");
    expired["exp"] = json!(now() - 120);
    let mut early = claims("team/app");
    early["nbf"] = json!(now() + 600);
    let mut wrong_aud = claims("team/app");
    wrong_aud["aud"] = json!("another-registry");
    let mut wrong_iss = claims("team/app");
    wrong_iss["iss"] = json!("someone-else");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#)),
        URL_SAFE_NO_PAD.encode(claims("team/app").to_string())
    );
    let cases = [
        (
            "forged signature (another key, our kid)",
            sign(&other_key, &kid, &claims("team/app")),
        ),
        (
            "unknown kid",
            sign(&other_key, &other.kid, &claims("team/app")),
        ),
        ("expired", sign(&key, &kid, &expired)),
        ("not yet valid", sign(&key, &kid, &early)),
        ("wrong audience", sign(&key, &kid, &wrong_aud)),
        ("wrong issuer", sign(&key, &kid, &wrong_iss)),
        ("alg none", none),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (name, token) in cases {
        let (status, challenge) = use_token(&s, &token, "team/app").await;
        assert_eq!(status, 401, "{name}");
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{name}: {challenge}"
        );
    }
    // Within the clock-skew allowance a just-expired token still works.
    let mut skewed = claims("team/app");
    skewed["exp"] = json!(now() - 10);
    assert_eq!(
        use_token(&s, &sign(&key, &kid, &skewed), "team/app")
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn http_basic_works_directly_with_per_user_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let r = s
        .http
        .get(s.url("/v2/"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .get(s.url("/v2/_catalog"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .get(s.url("/v2/_catalog"))
        .basic_auth(BOB.0, Some(BOB.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "catalog needs registry:catalog:*");
    let r = s
        .http
        .post(s.url("/v2/team/app/blobs/uploads/"))
        .basic_auth(BOB.0, Some(BOB.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(common::error_code(r).await, "DENIED");
    let r = s
        .http
        .get(s.url("/v2/"))
        .basic_auth(BOB.0, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn access_tokens_work_until_revoked_and_refresh_follows_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let store = SqlMetadata::open(&s.database).await.unwrap();
    let secret = common::create_token(&store, "ci", &["repository:app/*:pull,push"]).await;

    // As a password, with any user name, at the token endpoint and directly.
    let t = token(
        &s,
        Some(("robot", &secret)),
        "repository:app/web:pull,push repository:team/x:pull",
    )
    .await;
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(t["token"].as_str().unwrap().split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        payload["access"],
        json!([{"type": "repository", "name": "app/web", "actions": ["pull", "push"]}])
    );
    let r = s
        .http
        .post(s.url("/v2/app/web/blobs/uploads/"))
        .basic_auth("robot", Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    let form = [
        ("grant_type", "refresh_token"),
        ("service", "wharf"),
        ("client_id", "test"),
        ("refresh_token", &refresh),
        ("scope", "repository:app/web:pull"),
    ];
    let r = s
        .http
        .post(s.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "repository:app/web:pull");

    wharf::admin::revoke_token(&store, "ci", wharf::admin::By::unrecorded())
        .await
        .unwrap();
    let r = s
        .http
        .get(s.url("/token?service=wharf"))
        .basic_auth("robot", Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "revoked secret");
    let r = s
        .http
        .post(s.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "refresh after revocation");
}

#[tokio::test]
async fn oauth_password_grant_and_user_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let form = [
        ("grant_type", "password"),
        ("service", "wharf"),
        ("client_id", "test"),
        ("access_type", "offline"),
        ("username", ALICE.0),
        ("password", ALICE.1),
        ("scope", "repository:a:pull repository:b:push"),
    ];
    let r = s
        .http
        .post(s.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "repository:a:pull repository:b:push");
    assert!(body["refresh_token"].is_string());
    let bad = [
        ("grant_type", "password"),
        ("username", ALICE.0),
        ("password", "x"),
    ];
    assert_eq!(
        s.http
            .post(s.url("/token"))
            .form(&bad)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let unknown = [("grant_type", "magic")];
    assert_eq!(
        s.http
            .post(s.url("/token"))
            .form(&unknown)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
}

#[tokio::test]
async fn refuses_to_start_unprotected_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = wharf::config::Overrides {
        data_dir: Some(dir.path().into()),
        listen: Some("0.0.0.0:5000".parse().unwrap()),
        ..Default::default()
    };
    let mut config = Config::load(None, &Default::default(), &overrides).unwrap();
    let err = wharf::server::AppState::open(&config)
        .await
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("not a loopback address"), "{err}");
    config.auth.anonymous_pull = vec!["public/*".into()];
    assert!(
        wharf::server::AppState::open(&config).await.is_ok(),
        "explicit anonymous pull is enough"
    );
}

#[tokio::test]
async fn serves_https_with_a_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let (cert_path, key_path) = (cert.clone(), key.clone());
    let s = TestServer::start_with(dir.path(), move |c| {
        secured(c);
        c.tls.cert = cert_path;
        c.tls.key = key_path;
    })
    .await;
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{}/v2/", s.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with(&format!(
            "Bearer realm=\"https://localhost:{}/token\"",
            s.addr.port()
        )),
        "{challenge}"
    );
    let r = client
        .get(format!(
            "https://localhost:{}/token?service=wharf",
            s.addr.port()
        ))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP to the TLS port does not get through.
    assert!(s.http.get(s.url("/v2/")).send().await.is_err());
}

#[tokio::test]
async fn realm_follows_external_url_or_trusted_forwarded_headers() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        secured(c);
        c.auth.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let r = s
        .http
        .get(s.url("/v2/"))
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "registry.example.com")
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .unwrap();
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"https://registry.example.com/token\""),
        "{challenge}"
    );
    drop(s);

    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        secured(c);
        c.external_url = "https://hub.example.org/".into();
    })
    .await;
    // Without trust, forwarded headers are ignored; external_url wins.
    let r = s
        .http
        .get(s.url("/v2/"))
        .header("X-Forwarded-Host", "evil.example")
        .send()
        .await
        .unwrap();
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"https://hub.example.org/token\""),
        "{challenge}"
    );
}
