//! `POST /` (ECR and ECS) admits a call only when its SigV4 signature binds
//! the whole request (body, target, content type, date, scope), and judges
//! it from the headers before reading the body, which it then reads within a
//! per-operation cap and a minimum rate. Requests come from the AWS SDKs, from
//! the SDKs' own signer (`aws-sigv4`) for what the SDKs would not send, and
//! raw over TCP where the point is what is *not* sent.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers abort the test on failure"
)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ecr::config::retry::RetryConfig;
use aws_sdk_ecr::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use common::{TestServer, sha256};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf::auth::{ConfigUser, Rule, hash_password};
use wharf::config::Config;
use wharf::storage::SqlMetadata;

const ECR: &str = "AmazonEC2ContainerRegistry_V20150921.";
const ECS: &str = "AmazonEC2ContainerServiceV20141113.";
const JSON: &str = "application/x-amz-json-1.1";

struct Fixture {
    server: TestServer,
    _dir: tempfile::TempDir,
    id: String,
    secret: String,
}

/// alice may do anything and has an access key; the runner is off.
async fn fixture(tweak: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), |c| {
        c.auth.users = vec![ConfigUser {
            name: "alice".into(),
            password_hash: hash_password("alice-password").unwrap(),
            groups: vec![],
        }];
        c.auth.rules = vec![Rule {
            who: vec!["alice".into()],
            repositories: vec!["*".into()],
            actions: vec!["*".into()],
            catalog: true,
        }];
        c.runner.enabled = false;
        tweak(c);
    })
    .await;
    let store = SqlMetadata::open(&server.database).await.unwrap();
    let (id, secret) = wharf::admin::create_access_key(
        &store,
        server.auth.login.secrets(),
        "alice",
        &["alice".into()],
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    Fixture {
        server,
        _dir: dir,
        id,
        secret,
    }
}

impl Fixture {
    fn ecr(&self, region: &str) -> aws_sdk_ecr::Client {
        ecr_client(&self.server.url(""), &self.id, &self.secret, region)
    }

    fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Headers of a call signed with the SDKs' signer: `host`, `content-type`,
    /// `x-amz-target`, and what signing adds (`authorization`, `x-amz-date`…).
    fn sign(
        &self,
        region: &str,
        service: &str,
        target: &str,
        body: SignableBody<'_>,
        tweak: impl FnOnce(&mut SigningSettings),
    ) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = [
            ("host", self.host()),
            ("content-type", JSON.to_string()),
            ("x-amz-target", target.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut settings = SigningSettings::default();
        tweak(&mut settings);
        let identity = Credentials::new(&self.id, &self.secret, None, None, "test").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let request = SignableRequest::new(
            "POST",
            self.server.url("/"),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            body,
        )
        .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let added: Vec<(String, String)> = instructions
            .headers()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        headers.extend(added);
        headers
    }

    /// Sends a call with exactly these headers (reqwest adds the same `host`).
    async fn send(&self, headers: &[(String, String)], body: &[u8]) -> (u16, Value) {
        let mut request = self.server.http.post(self.server.url("/"));
        for (name, value) in headers.iter().filter(|(k, _)| k != "host") {
            request = request.header(name, value);
        }
        let r = request.body(body.to_vec()).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn repositories(&self) -> Vec<String> {
        let out = self
            .ecr("us-east-1")
            .describe_repositories()
            .send()
            .await
            .unwrap();
        out.repositories()
            .iter()
            .map(|r| r.repository_name().unwrap().to_string())
            .collect()
    }
}

fn ecr_client(url: &str, id: &str, secret: &str, region: &str) -> aws_sdk_ecr::Client {
    let config = aws_sdk_ecr::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(id, secret, None, None, "wharf-test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_ecr::Client::from_conf(config)
}

fn error_type(body: &Value) -> &str {
    body["__type"].as_str().unwrap_or_default()
}

/// One raw HTTP/1.1 exchange: writes `head` (without the blank line) and
/// `body`, keeps the connection open, and reads one response, which must come
/// within `wait`. Returns the status, the JSON body and the time it took.
async fn raw(addr: &str, head: &str, body: &[u8], wait: Duration) -> (u16, Value, Duration) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream.write_all(body).await.unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    let status = head[9..12].parse().unwrap();
                    let body = serde_json::from_slice(&received[end + 4..end + 4 + length])
                        .unwrap_or(Value::Null);
                    return (status, body);
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed without a full response");
            received.extend_from_slice(&buf[..n]);
        }
    };
    let (status, body) = tokio::time::timeout(wait, read)
        .await
        .unwrap_or_else(|_| panic!("no answer within {wait:?}"));
    (status, body, started.elapsed())
}

/// The head of a `POST /` with these headers.
fn head(headers: &[(String, String)], content_length: usize) -> String {
    let mut head = "POST / HTTP/1.1".to_string();
    for (name, value) in headers {
        head.push_str(&format!("\r\n{name}: {value}"));
    }
    head.push_str(&format!("\r\ncontent-length: {content_length}"));
    head
}

/// A request signed by the AWS SDK, captured on the wire by a stand-in
/// endpoint: the exact bytes an eavesdropper (or a logging proxy) would hold.
async fn captured_sdk_request(f: &Fixture, repository: &str) -> (String, Vec<u8>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let capture = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            received.extend_from_slice(&buf[..n]);
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap();
                if received.len() >= end + 4 + length {
                    let body = received[end + 4..end + 4 + length].to_vec();
                    stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 2\r\n\r\n{}")
                        .await
                        .unwrap();
                    return (head, body);
                }
            }
        }
    });
    ecr_client(&url, &f.id, &f.secret, "us-east-1")
        .create_repository()
        .repository_name(repository)
        .send()
        .await
        .unwrap();
    capture.await.unwrap()
}

#[tokio::test]
async fn a_captured_signature_does_not_carry_another_body() {
    let f = fixture(|_| {}).await;
    let (head, body) = captured_sdk_request(&f, "app-one").await;
    let addr = f.host();
    let wait = Duration::from_secs(10);
    assert!(String::from_utf8_lossy(&body).contains("app-one"));

    // The same signature, another body of the same length; the header that
    // used to stand in for the payload's hash names the signed body.
    let forged = String::from_utf8(body.clone())
        .unwrap()
        .replace("app-one", "app-two");
    let tampered = format!("{head}\r\nx-amz-content-sha256: {}", &sha256(&body)[7..]);
    let (status, answer, _) = raw(&addr, &tampered, forged.as_bytes(), wait).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(error_type(&answer), "InvalidSignatureException", "{answer}");
    // Without that header too.
    let (status, answer, _) = raw(&addr, &head, forged.as_bytes(), wait).await;
    assert_eq!(
        error_type(&answer),
        "InvalidSignatureException",
        "{status} {answer}"
    );
    assert!(f.repositories().await.is_empty());

    // The capture itself is a valid request (a replay within the 15 minutes
    // SigV4 allows is accepted, as by AWS): it was refused for its body.
    let (status, answer, _) = raw(&addr, &head, &body, wait).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(f.repositories().await, ["app-one"]);
}

#[tokio::test]
async fn unsigned_payloads_are_refused_and_a_signed_payload_hash_must_match() {
    let f = fixture(|_| {}).await;
    let target = format!("{ECR}CreateRepository");
    let body = br#"{"repositoryName":"app"}"#;
    let with_hash = |s: &mut SigningSettings| {
        s.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    };
    // A signed x-amz-content-sha256 binds that hash, and the body must have it.
    let headers = f.sign(
        "us-east-1",
        "ecr",
        &target,
        SignableBody::Bytes(body),
        with_hash,
    );
    let (status, answer) = f.send(&headers, br#"{"repositoryName":"evi"}"#).await;
    assert_eq!(
        error_type(&answer),
        "InvalidSignatureException",
        "{status} {answer}"
    );
    assert!(f.repositories().await.is_empty());
    let (status, answer) = f.send(&headers, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(f.repositories().await, ["app"]);

    // UNSIGNED-PAYLOAD was refused before too (its signature never matched);
    // now the answer says why.
    let headers = f.sign(
        "us-east-1",
        "ecr",
        &target,
        SignableBody::UnsignedPayload,
        with_hash,
    );
    let (status, answer) = f.send(&headers, body).await;
    assert_eq!(
        error_type(&answer),
        "InvalidSignatureException",
        "{status} {answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("UNSIGNED-PAYLOAD")
    );
}

#[tokio::test]
async fn target_content_type_and_date_must_be_signed() {
    let f = fixture(|_| {}).await;
    f.ecr("us-east-1")
        .create_repository()
        .repository_name("victim")
        .send()
        .await
        .unwrap();
    // A read signed without its target, sent as a delete: the body reads
    // the same to both (DescribeRepositories ignores what it does not know).
    let body = br#"{"repositoryName":"victim","force":true}"#;
    let mut headers = f.sign(
        "us-east-1",
        "ecr",
        &format!("{ECR}DescribeRepositories"),
        SignableBody::Bytes(body),
        |s| s.excluded_headers = Some(vec!["x-amz-target".into()]),
    );
    for (name, value) in &mut headers {
        if name == "x-amz-target" {
            *value = format!("{ECR}DeleteRepository");
        }
    }
    let (status, answer) = f.send(&headers, body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        error_type(&answer),
        "IncompleteSignatureException",
        "{answer}"
    );
    assert!(answer["message"].as_str().unwrap().contains("x-amz-target"));
    assert_eq!(f.repositories().await, ["victim"]);

    for unsigned in ["content-type", "x-amz-date"] {
        let headers = f.sign(
            "us-east-1",
            "ecr",
            &format!("{ECR}DescribeRepositories"),
            SignableBody::Bytes(b"{}"),
            |s| s.excluded_headers = Some(vec![unsigned.into()]),
        );
        let (status, answer) = f.send(&headers, b"{}").await;
        assert_eq!(status, 400, "{unsigned}: {answer}");
        assert_eq!(
            error_type(&answer),
            "IncompleteSignatureException",
            "{answer}"
        );
        assert!(answer["message"].as_str().unwrap().contains(unsigned));
    }
}

#[tokio::test]
async fn the_credential_scope_names_the_service_and_the_configured_region() {
    let f = fixture(|_| {}).await;
    // The real SDK, configured for another region than ecr.region.
    let elsewhere = f.ecr("eu-west-1").describe_repositories().send().await;
    let e = elsewhere.unwrap_err();
    assert_eq!(e.code(), Some("InvalidSignatureException"));
    assert!(
        e.message().unwrap().contains("eu-west-1"),
        "{:?}",
        e.message()
    );
    f.ecr("us-east-1")
        .describe_repositories()
        .send()
        .await
        .unwrap();

    // An ECS call scoped to ECR, and an ECR call scoped to ECS.
    let headers = f.sign(
        "us-east-1",
        "ecr",
        &format!("{ECS}ListClusters"),
        SignableBody::Bytes(b"{}"),
        |_| {},
    );
    let (status, answer) = f.send(&headers, b"{}").await;
    assert_eq!(
        error_type(&answer),
        "InvalidSignatureException",
        "{status} {answer}"
    );
    assert!(answer["message"].as_str().unwrap().contains("'ecs'"));
    let headers = f.sign(
        "us-east-1",
        "ecs",
        &format!("{ECR}DescribeRepositories"),
        SignableBody::Bytes(b"{}"),
        |_| {},
    );
    let (status, answer) = f.send(&headers, b"{}").await;
    assert_eq!(
        error_type(&answer),
        "InvalidSignatureException",
        "{status} {answer}"
    );
    assert!(answer["message"].as_str().unwrap().contains("'ecr'"));

    // Rightly scoped, the ECS call gets through to say the runner is off.
    let headers = f.sign(
        "us-east-1",
        "ecs",
        &format!("{ECS}ListClusters"),
        SignableBody::Bytes(b"{}"),
        |_| {},
    );
    let (_, answer) = f.send(&headers, b"{}").await;
    assert_eq!(error_type(&answer), "ClientException", "{answer}");
}

#[tokio::test]
async fn strangers_are_answered_before_their_body_is_sent() {
    let f = fixture(|_| {}).await;
    let addr = f.host();
    let wait = Duration::from_secs(5);
    let base = |target: &str| {
        vec![
            ("host".to_string(), addr.clone()),
            ("content-type".to_string(), JSON.to_string()),
            ("x-amz-target".to_string(), target.to_string()),
        ]
    };
    // 20 MB announced, nothing sent: the answer must not wait for it.
    let announced = 20_000_000;
    let (status, answer, _) = raw(
        &addr,
        &head(&base(&format!("{ECR}CreateRepository")), announced),
        b"",
        wait,
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(error_type(&answer), "MissingAuthenticationTokenException");

    // A well-formed signature of an unknown key.
    let mut stranger = base(&format!("{ECR}CreateRepository"));
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    stranger.push(("x-amz-date".into(), stamp.clone()));
    stranger.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIAUNKNOWN000000000/{}/us-east-1/ecr/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
            &stamp[..8],
            "0".repeat(64)
        ),
    ));
    let (status, answer, _) = raw(&addr, &head(&stranger, announced), b"", wait).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(error_type(&answer), "UnrecognizedClientException");

    // An unknown operation.
    let (status, answer, _) = raw(
        &addr,
        &head(&base(&format!("{ECR}MakeCoffee")), announced),
        b"",
        wait,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(error_type(&answer), "UnknownOperationException");
}

#[tokio::test]
async fn a_body_over_the_operations_cap_is_refused_unread() {
    let f = fixture(|_| {}).await;
    let addr = f.host();
    // alice's own, validly signed call, announcing 2 MiB for an operation
    // whose documents are tiny; the body is never sent.
    let announced = 2 * 1024 * 1024;
    let hash = "0".repeat(64);
    let headers = f.sign(
        "us-east-1",
        "ecr",
        &format!("{ECR}DescribeRepositories"),
        SignableBody::Precomputed(hash),
        |_| {},
    );
    let (status, answer, _) = raw(
        &addr,
        &head(&headers, announced),
        b"",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(error_type(&answer), "RequestEntityTooLargeException");

    // PutImage takes manifests up to limits.max_manifest_bytes, escaped in
    // JSON: a 3 MiB manifest, half of it escaped quotes (6 MiB on the wire),
    // reaches the registry, which finds its config missing.
    let filler = "\"".repeat(1536 * 1024);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": common::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(b"c"), "size": 1},
        "layers": [],
        "annotations": {"filler": filler},
    })
    .to_string();
    let ecr = f.ecr("us-east-1");
    ecr.create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    let put = ecr
        .put_image()
        .repository_name("app")
        .image_manifest(manifest)
        .image_tag("big")
        .send()
        .await;
    assert_eq!(put.unwrap_err().code(), Some("LayersNotFoundException"));
}

#[tokio::test]
async fn a_stalled_body_times_out() {
    let f = fixture(|c| c.limits.request_body_timeout_seconds = 1).await;
    let body = br#"{"repositoryName":"slow"}"#;
    let headers = f.sign(
        "us-east-1",
        "ecr",
        &format!("{ECR}CreateRepository"),
        SignableBody::Bytes(body),
        |_| {},
    );
    // Ten bytes of the body, then nothing.
    let (status, answer, took) = raw(
        &f.host(),
        &head(&headers, body.len()),
        &body[..10],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(status, 408, "{answer}");
    assert_eq!(error_type(&answer), "RequestTimeoutException");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(f.repositories().await.is_empty());
}

#[tokio::test]
async fn the_token_form_is_small_and_must_arrive() {
    let f = fixture(|c| c.limits.request_body_timeout_seconds = 1).await;
    let addr = f.host();
    let form_head = |length: usize| {
        format!(
            "POST /token HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {length}"
        )
    };
    // 1 MiB of form, announced and not sent.
    let (status, answer, _) = raw(&addr, &form_head(1 << 20), b"", Duration::from_secs(5)).await;
    assert_eq!(status, 413, "{answer}");
    // A form that stops halfway.
    let (status, _, took) = raw(
        &addr,
        &form_head(100),
        b"grant_type=pass",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(status, 408);
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A normal form still works.
    let r = f
        .server
        .http
        .post(f.server.url("/token"))
        .form(&[
            ("grant_type", "password"),
            ("service", "wharf"),
            ("username", "alice"),
            ("password", "alice-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The operations the front door knows before reading a body are those the
/// services serve: each documented one reaches its service.
#[tokio::test]
async fn every_documented_operation_is_known() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), |c| c.runner.enabled = false).await;
    let ecr = "CreateRepository DescribeRepositories DeleteRepository DescribeRegistry \
        GetAuthorizationToken ListImages DescribeImages BatchGetImage BatchDeleteImage PutImage \
        PutImageTagMutability ListImageReferrers BatchCheckLayerAvailability InitiateLayerUpload \
        UploadLayerPart CompleteLayerUpload GetDownloadUrlForLayer SetRepositoryPolicy \
        GetRepositoryPolicy DeleteRepositoryPolicy TagResource UntagResource ListTagsForResource \
        PutLifecyclePolicy GetLifecyclePolicy DeleteLifecyclePolicy StartLifecyclePolicyPreview \
        GetLifecyclePolicyPreview";
    let ecs = "CreateCluster DescribeClusters ListClusters DeleteCluster RegisterTaskDefinition \
        DeregisterTaskDefinition DescribeTaskDefinition ListTaskDefinitions \
        ListTaskDefinitionFamilies RunTask StopTask DescribeTasks ListTasks CreateService \
        UpdateService DeleteService DescribeServices ListServices ListContainerInstances \
        DescribeContainerInstances UpdateContainerInstancesState RegisterContainerInstance \
        DeregisterContainerInstance PutAttributes DeleteAttributes ListAttributes";
    let targets = ecr
        .split_whitespace()
        .map(|op| format!("{ECR}{op}"))
        .chain(ecs.split_whitespace().map(|op| format!("{ECS}{op}")));
    for target in targets {
        let r = server
            .http
            .post(server.url("/"))
            .header("x-amz-target", &target)
            .header("content-type", JSON)
            .body("{}")
            .send()
            .await
            .unwrap();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(error_type(&answer), "UnknownOperationException", "{target}");
    }
}
