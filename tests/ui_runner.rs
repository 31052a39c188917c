//! The console's runner pages over real HTTP against a real `wharf serve`:
//! clusters, container instances (drain for operators only, with CSRF),
//! services and tasks seen by exactly those the ECS API shows them to (a
//! service or task one may not see leaves no trace), and the task log tail
//! (the page's last lines, the server-sent events that follow them, their
//! authorization and their cap). Resources are made through the ECS API
//! (aws-sdk-ecs), as a deployer would.
//!
//! Most of this needs no Docker Engine (the runner points at a socket that
//! does not exist). The test that runs real tasks needs one and Debian's
//! busybox-static, as `tests/ecs.rs` does: without them it skips, except
//! under `CI=true`, where that is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers abort the test on failure"
)]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecs::types::{ContainerDefinition, NetworkMode};
use common::browser::{Browser, Page, capture};
use common::{docker, free_port};
use futures::StreamExt;
use wharf::runner::engine::{ContainerEngine, LABEL_TASK};

/// Where the runner looks for Docker in the tests that need none.
const NO_DOCKER: &str = "/nonexistent/wharf-test/docker.sock";

/// olga may do everything everywhere (the operator); alice deploys `team/*`;
/// carol deploys `pub/*` (a deployer, not alice's services' owner); bob
/// only pulls `team/*` (no runner at all).
const USERS: [(&str, &str, &str); 4] = [
    ("olga", "*", r#"["*"]"#),
    ("alice", "team/*", r#"["*"]"#),
    ("carol", "pub/*", r#"["pull", "push"]"#),
    ("bob", "team/*", r#"["pull"]"#),
];

fn password(user: &str) -> String {
    format!("{user}-password")
}

struct Wharf {
    _dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    http: reqwest::Client,
    /// An ECS client per user of [`USERS`], and its access key.
    clients: BTreeMap<&'static str, Client>,
    keys: BTreeMap<&'static str, (String, String)>,
}

impl Wharf {
    /// A server whose runner uses `docker_host` ("" for `DOCKER_HOST`);
    /// anonymous visitors may pull `pub/*`, so they are viewers, not sent
    /// to the sign-in form.
    async fn start(docker_host: &str) -> Wharf {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = String::from("[auth]\nanonymous_pull = [\"pub/*\"]\n");
        for (user, _, _) in USERS {
            let hash = wharf::auth::hash_password(&password(user)).unwrap();
            config.push_str(&format!(
                "[[auth.users]]\nname = \"{user}\"\npassword_hash = \"{hash}\"\n"
            ));
        }
        for (user, repos, actions) in USERS {
            config.push_str(&format!(
                "[[auth.rules]]\nwho = [\"{user}\"]\nrepositories = [\"{repos}\"]\nactions = {actions}\n"
            ));
        }
        config.push_str(&format!(
            "[runner]\ndocker_host = \"{docker_host}\"\npoll_interval_ms = 200\n[gc]\ninterval_seconds = 0\n"
        ));
        std::fs::write(dir.path().join("wharf.toml"), config).unwrap();
        let store = wharf::storage::SqlMetadata::open(&wharf::storage::Database::Sqlite {
            path: dir.path().join("metadata.db"),
            readers: 1,
        })
        .await
        .unwrap();
        let names: Vec<String> = USERS.iter().map(|(u, _, _)| u.to_string()).collect();
        let secrets = wharf::auth::SecretsKey::load(&dir.path().join("secrets-key"), true).unwrap();
        let mut clients = BTreeMap::new();
        let mut keys = BTreeMap::new();
        for (user, _, _) in USERS {
            let (id, secret) = wharf::admin::create_access_key(
                &store,
                &secrets,
                user,
                &names,
                wharf::admin::By::unrecorded(),
            )
            .await
            .unwrap();
            let config = aws_sdk_ecs::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(format!("http://127.0.0.1:{port}"))
                .credentials_provider(Credentials::new(&id, &secret, None, None, "wharf-test"))
                .http_client(aws_smithy_http_client::Builder::new().build_http())
                .retry_config(RetryConfig::disabled())
                .build();
            clients.insert(user, Client::from_conf(config));
            keys.insert(user, (id, secret));
        }
        drop(store);
        let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--config")
            .arg(dir.path().join("wharf.toml"))
            .env(
                "RUST_LOG",
                std::env::var("WHARF_TEST_LOG").unwrap_or("warn".into()),
            )
            .stderr(if std::env::var_os("WHARF_TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        let wharf = Wharf {
            _dir: dir,
            port,
            child: Some(child),
            http: reqwest::Client::new(),
            clients,
            keys,
        };
        for _ in 0..200 {
            if wharf.http.get(wharf.url("/healthz")).send().await.is_ok() {
                return wharf;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("wharf did not come up");
    }

    fn ecs(&self, user: &str) -> &Client {
        &self.clients[user]
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// An ELBv2 Query call (`Action` with `params`) signed as `user`; its
    /// XML answer, which must be a success.
    async fn elb(&self, user: &str, action: &str, params: &[(&str, &str)]) -> String {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action)
            .append_pair("Version", "2015-12-01");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        let (id, secret) = &self.keys[user];
        let identity = Credentials::new(id, secret, None, None, "test").into();
        let signing = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("elasticloadbalancing")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let url = self.url("/");
        let host = format!("127.0.0.1:{}", self.port);
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let headers = [("host", host.as_str()), ("content-type", content_type)];
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &signing).unwrap().into_parts();
        let mut request = self.http.post(&url).header("content-type", content_type);
        for (k, v) in instructions.headers() {
            request = request.header(k, v);
        }
        let r = request.body(body).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "{action}: {text}");
        text
    }

    /// Registers `family` as `user`: one container `main` of `repo:1`
    /// running `command`; its ARN.
    async fn register(&self, user: &str, family: &str, repo: &str, command: &str) -> String {
        self.ecs(user)
            .register_task_definition()
            .family(family)
            .network_mode(NetworkMode::None)
            .container_definitions(
                ContainerDefinition::builder()
                    .name("main")
                    .image(format!("localhost:{}/{repo}:1", self.port))
                    .memory(64)
                    .command("/bin/sh")
                    .command("-c")
                    .command(command)
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .task_definition()
            .unwrap()
            .task_definition_arn()
            .unwrap()
            .to_string()
    }

    /// Runs `definition` as `user`; the task's id.
    async fn run(&self, user: &str, definition: &str) -> String {
        let out = self
            .ecs(user)
            .run_task()
            .task_definition(definition)
            .send()
            .await
            .unwrap();
        let arn = out.tasks()[0].task_arn().unwrap();
        arn.rsplit('/').next().unwrap().to_string()
    }

    async fn create_service(&self, user: &str, name: &str, family: &str, desired: i32) {
        self.ecs(user)
            .create_service()
            .service_name(name)
            .task_definition(family)
            .desired_count(desired)
            .send()
            .await
            .unwrap();
    }

    /// The status of the default cluster's container instance, by the API.
    async fn instance_status(&self) -> String {
        let olga = self.ecs("olga");
        let arns = olga.list_container_instances().send().await.unwrap();
        let out = olga
            .describe_container_instances()
            .set_container_instances(Some(arns.container_instance_arns().to_vec()))
            .send()
            .await
            .unwrap();
        out.container_instances()[0].status().unwrap().to_string()
    }

    fn browser(&self) -> Browser {
        Browser::at(self.url(""))
    }

    /// A browser signed in as `user`.
    async fn signed_in(&self, user: &str) -> Browser {
        let mut browser = self.browser();
        browser.sign_in((user, &password(user))).await;
        browser
    }
}

impl Drop for Wharf {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The id of the default cluster's (embedded) container instance, from the
/// cluster page of an operator.
fn drain_action(page: &Page) -> Option<String> {
    capture(
        &page.body,
        r#"action="(/ui/clusters/default/instances/[^/"]+/state)""#,
    )
    .into_iter()
    .next()
}

/// Everything of alice's deployment, as each kind of viewer sees it: all
/// of it for alice (and the operator), the clusters but not her service or
/// task for another deployer, and nothing at all, as for pages that do not
/// exist, for a pull-only user and the anonymous.
#[tokio::test]
async fn runner_pages_show_what_the_ecs_api_shows_and_nothing_more() {
    let w = Wharf::start(NO_DOCKER).await;
    // The image exists, so tasks wait for the (absent) engine: they stay live.
    push_image(&w, "team/web", b"not a real layer".to_vec()).await;
    let web = w.register("alice", "web", "team/web", "sleep 60").await;
    w.create_service("alice", "api", "web", 1).await;
    let task = w.run("alice", &web).await;

    let mut alice = w.signed_in("alice").await;
    let home = alice.get("/ui/").await;
    assert!(home.body.contains(r#"href="/ui/clusters""#), "Runner link");
    let clusters = alice.get("/ui/clusters").await;
    assert_eq!(clusters.status, 200);
    assert!(clusters.body.contains(r#"href="/ui/clusters/default""#));
    let cluster = alice.get("/ui/clusters/default").await;
    assert_eq!(cluster.status, 200, "{}", cluster.body);
    assert!(cluster.body.contains(r#"id="instances""#));
    assert!(
        cluster.body.contains("(this server)"),
        "the embedded instance"
    );
    assert!(
        cluster
            .body
            .contains(r#"href="/ui/clusters/default/services/api""#)
    );
    assert!(drain_action(&cluster).is_none(), "alice is no operator");
    assert!(!cluster.body.contains(">Drain<"));
    let service = alice.get("/ui/clusters/default/services/api").await;
    assert_eq!(service.status, 200, "{}", service.body);
    assert!(service.body.contains(r#"<dd id="desired">1</dd>"#));
    assert!(service.body.contains("PRIMARY"));
    assert!(service.body.contains("web:1"));
    let tasks = alice.get("/ui/clusters/default/tasks").await;
    assert_eq!(tasks.status, 200);
    assert!(tasks.body.contains(&task), "{}", tasks.body);
    let stopped = alice.get("/ui/clusters/default/tasks?status=STOPPED").await;
    assert_eq!(stopped.status, 200);
    assert!(!stopped.body.contains(&task));
    let of_service = alice.get("/ui/clusters/default/tasks?service=api").await;
    assert!(!of_service.body.contains(&task), "the task is no service's");
    let page = alice
        .get(&format!("/ui/clusters/default/tasks/{task}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(r#"id="containers""#));
    assert!(page.body.contains("team/web:1"));
    // No engine: the page says the log cannot be read, and still renders.
    assert!(page.body.contains("log-unavailable"), "{}", page.body);

    // The operator sees alice's resources too (she may push everywhere).
    let mut olga = w.signed_in("olga").await;
    for path in [
        "/ui/clusters/default/services/api".to_string(),
        format!("/ui/clusters/default/tasks/{task}"),
    ] {
        assert_eq!(olga.get(&path).await.status, 200, "{path}");
    }

    // A missing service and task: the page every hidden one must equal.
    let missing_service = alice.get("/ui/clusters/default/services/nope").await;
    assert_eq!(missing_service.status, 404);
    let missing_task = alice
        .get("/ui/clusters/default/tasks/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(missing_task.status, 404);
    assert_eq!(missing_task.body, missing_service.body);

    // carol deploys elsewhere: the clusters, not alice's service or task.
    let mut carol = w.signed_in("carol").await;
    assert_eq!(carol.get("/ui/clusters").await.status, 200);
    let cluster = carol.get("/ui/clusters/default").await;
    assert_eq!(cluster.status, 200);
    assert!(!cluster.body.contains("/services/api"), "{}", cluster.body);
    let hidden = carol.get("/ui/clusters/default/services/api").await;
    assert_eq!(hidden.status, 404);
    assert_eq!(hidden.body, missing_service.body);
    let hidden = carol
        .get(&format!("/ui/clusters/default/tasks/{task}"))
        .await;
    assert_eq!(hidden.status, 404);
    assert_eq!(hidden.body, missing_service.body);
    let tasks = carol.get("/ui/clusters/default/tasks").await;
    assert_eq!(tasks.status, 200);
    assert!(!tasks.body.contains(&task));
    let tasks = carol.get("/ui/clusters/default/tasks?service=api").await;
    assert!(!tasks.body.contains(&task));

    // bob may pull alice's images but push nothing: no runner at all; and
    // the anonymous (who may pull `pub/*`, so are viewers) neither.
    let mut bob = w.signed_in("bob").await;
    let mut anonymous = w.browser();
    for (who, browser) in [("bob", &mut bob), ("anonymous", &mut anonymous)] {
        let home = browser.get("/ui/").await;
        assert_eq!(home.status, 200, "{who}");
        assert!(!home.body.contains("/ui/clusters"), "{who}: no Runner link");
        for path in [
            "/ui/clusters".to_string(),
            "/ui/clusters/default".to_string(),
            "/ui/clusters/nope".to_string(),
            "/ui/clusters/default/services/api".to_string(),
            "/ui/clusters/default/tasks".to_string(),
            format!("/ui/clusters/default/tasks/{task}"),
            format!("/ui/clusters/default/tasks/{task}/logs/stream"),
        ] {
            let page = browser.get(&path).await;
            assert_eq!(page.status, 404, "{who} {path}");
            assert_eq!(page.body, missing_service.body, "{who} {path}");
        }
    }
}

/// Draining is the operator's (as UpdateContainerInstancesState): only
/// operators see the button; anyone else's forged form is refused and
/// changes nothing, and no form goes through without its CSRF token.
#[tokio::test]
async fn only_operators_drain_and_every_form_needs_its_csrf_token() {
    let w = Wharf::start(NO_DOCKER).await;
    assert_eq!(w.instance_status().await, "ACTIVE");
    let mut olga = w.signed_in("olga").await;
    let page = olga.get("/ui/clusters/default").await;
    assert_eq!(page.status, 200);
    let action = drain_action(&page).expect("a Drain form for the operator");
    assert!(page.body.contains(">Drain</button>"));

    // alice (a deployer) and bob (no runner) forge the form with their own tokens.
    let mut alice = w.signed_in("alice").await;
    let csrf = alice.get("/ui/").await.csrf();
    let forged = alice
        .post(&action, &[("csrf", &csrf), ("status", "DRAINING")])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let mut bob = w.signed_in("bob").await;
    let csrf = bob.get("/ui/").await.csrf();
    let forged = bob
        .post(&action, &[("csrf", &csrf), ("status", "DRAINING")])
        .await;
    assert_eq!(forged.status, 404);
    assert_eq!(w.instance_status().await, "ACTIVE");

    // The operator without the token, or with another browser's.
    let refused = olga.post(&action, &[("status", "DRAINING")]).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("Form expired"));
    let refused = olga
        .post(&action, &[("csrf", &csrf), ("status", "DRAINING")])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(w.instance_status().await, "ACTIVE");

    // With it: drained, then activated again.
    let csrf = page.csrf();
    let done = olga
        .post(&action, &[("csrf", &csrf), ("status", "DRAINING")])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/ui/clusters/default?done=DRAINING");
    assert_eq!(w.instance_status().await, "DRAINING");
    let page = olga.get(done.location()).await;
    assert!(page.body.contains("is now DRAINING"));
    assert!(page.body.contains(">Activate</button>"));
    let bad = olga
        .post(&action, &[("csrf", &csrf), ("status", "INACTIVE")])
        .await;
    assert_eq!(bad.status, 400);
    let done = olga
        .post(&action, &[("csrf", &csrf), ("status", "ACTIVE")])
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(w.instance_status().await, "ACTIVE");
    // An instance that does not exist.
    let missing = olga
        .post(
            "/ui/clusters/default/instances/nope/state",
            &[("csrf", &csrf), ("status", "DRAINING")],
        )
        .await;
    assert_eq!(missing.status, 404);
}

/// The log stream answers only those who may see the task (as the page),
/// and one viewer holds at most four streams at once.
#[tokio::test]
async fn log_streams_are_authorized_and_capped() {
    let w = Wharf::start(NO_DOCKER).await;
    // The image exists, so tasks wait for the (absent) engine: they stay live.
    push_image(&w, "team/web", b"not a real layer".to_vec()).await;
    let web = w.register("alice", "web", "team/web", "sleep 60").await;
    // Without an engine the task waits to start: it stays live.
    let task = w.run("alice", &web).await;
    let path = format!("/ui/clusters/default/tasks/{task}/logs/stream");

    let mut carol = w.signed_in("carol").await;
    let missing = carol
        .get("/ui/clusters/default/tasks/nope/logs/stream")
        .await;
    let hidden = carol.get(&path).await;
    assert_eq!(hidden.status, 404);
    assert_eq!(hidden.body, missing.body);
    let mut alice = w.signed_in("alice").await;
    let no_container = alice.get(&format!("{path}?container=other")).await;
    assert_eq!(no_container.status, 404);

    let mut open = Vec::new();
    for _ in 0..4 {
        let r = alice.stream(&path).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        open.push(r);
    }
    let fifth = alice.stream(&path).await;
    assert_eq!(fifth.status(), 429);
    assert!(fifth.headers().contains_key("retry-after"));
    // Another viewer has places of their own.
    let olga = w.signed_in("olga").await;
    let theirs = olga.stream(&path).await;
    assert_eq!(theirs.status(), 200);
    // Closing one frees its place (once the server notices, at its next write).
    drop(open.pop());
    let start = Instant::now();
    loop {
        let r = alice.stream(&path).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 429);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the place stays taken"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(open);
    drop(theirs);
}

/// Pushes a one-layer image as `repo:1` (as alice); its digest.
async fn push_image(w: &Wharf, repo: &str, layer: Vec<u8>) -> String {
    let alice = password("alice");
    common::push_runnable_image(&w.http, &w.url(""), ("alice", &alice), repo, layer).await
}

/// Waits for `task`'s page to show it stopped.
async fn stopped_page(browser: &mut Browser, task: &str) -> Page {
    let start = Instant::now();
    loop {
        let page = browser
            .get(&format!("/ui/clusters/default/tasks/{task}"))
            .await;
        assert_eq!(page.status, 200);
        if page
            .body
            .contains(r#"<dd id="last-status"><span class="badge status ">STOPPED"#)
            || page.body.contains(">STOPPED</span></dd>")
        {
            return page;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{}", page.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Reads server-sent events from `response` until one whose data holds
/// `want`, or the stream ends; the events' text.
async fn events_until(response: reqwest::Response, want: &str, within: Duration) -> String {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let deadline = Instant::now() + within;
    while !text.contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            Ok(None) | Err(_) => break,
        }
    }
    text
}

/// With a real Docker Engine: a task's page shows its exit code, the image
/// digest it ran (linked to the image page) and its log lines; a running
/// task's stream sends the lines that come after those shown.
#[tokio::test]
async fn task_pages_show_exit_codes_and_logs_and_follow_new_lines() {
    let Some(engine) = docker().await else {
        return;
    };
    let w = Wharf::start("").await;
    let digest = push_image(&w, "team/box", common::busybox_layer()).await;
    let quick = w
        .register(
            "alice",
            "quick",
            "team/box",
            "echo hello-from-task; echo second-line; exit 3",
        )
        .await;
    let slow = w
        .register(
            "alice",
            "slow",
            "team/box",
            "echo first-line; sleep 4; echo later-line; sleep 120",
        )
        .await;
    let done = w.run("alice", &quick).await;
    let live = w.run("alice", &slow).await;
    let mut alice = w.signed_in("alice").await;

    let page = stopped_page(&mut alice, &done).await;
    assert_eq!(
        capture(&page.body, r#"<td class="num exit-code">(\d+)</td>"#),
        ["3"],
        "{}",
        page.body
    );
    assert!(
        page.body.contains("EssentialContainerExited"),
        "{}",
        page.body
    );
    let image = format!("/ui/r/team/box/-/image/{digest}");
    assert!(
        page.body.contains(&format!(r#"href="{image}""#)),
        "{}",
        page.body
    );
    assert_eq!(alice.get(&image).await.status, 200);
    assert!(
        page.body.contains("hello-from-task\nsecond-line\n"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("data-log-stream"),
        "a stopped task is not followed"
    );

    // The running task: its first line on the page, the later one by the stream.
    let start = Instant::now();
    let page = loop {
        let page = alice
            .get(&format!("/ui/clusters/default/tasks/{live}"))
            .await;
        if page.body.contains("first-line") {
            break page;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{}", page.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let stream = capture(&page.body, r#"data-log-stream="([^"]+)""#)
        .pop()
        .expect("a running task's log is followed");
    assert!(
        page.body.contains("/logtail.js"),
        "the page loads the tail script"
    );
    let response = alice.stream(&stream).await;
    assert_eq!(response.status(), 200);
    let events = events_until(response, "later-line", Duration::from_secs(30)).await;
    assert!(events.contains("event: reset"), "{events}");
    assert!(events.contains("first-line"), "{events}");
    assert!(events.contains("later-line"), "{events}");
    // Someone else's view of the same stream: none.
    let carol = w.signed_in("carol").await;
    assert_eq!(carol.stream(&stream).await.status(), 404);

    w.ecs("alice").stop_task().task(&live).send().await.unwrap();
    for id in [&done, &live] {
        for c in engine.list(LABEL_TASK, id).await.unwrap() {
            let _ = engine.remove(&c.id).await;
        }
    }
}

/// A load-balanced service's page shows its target group's targets and
/// their health (what DescribeTargetHealth says), to those who see the service.
#[tokio::test]
async fn load_balanced_services_show_their_targets_health() {
    let w = Wharf::start(NO_DOCKER).await;
    push_image(&w, "team/web", b"not a real layer".to_vec()).await;
    let answer = w
        .elb(
            "olga",
            "CreateTargetGroup",
            &[
                ("Name", "web"),
                ("Protocol", "HTTP"),
                ("Port", "80"),
                ("TargetType", "instance"),
            ],
        )
        .await;
    let group = capture(&answer, "<TargetGroupArn>([^<]+)</TargetGroupArn>")
        .pop()
        .unwrap();
    let olga = w.ecs("olga");
    olga.register_task_definition()
        .family("web")
        .network_mode(NetworkMode::Bridge)
        .container_definitions(
            ContainerDefinition::builder()
                .name("main")
                .image(format!("localhost:{}/team/web:1", w.port))
                .memory(64)
                .port_mappings(
                    aws_sdk_ecs::types::PortMapping::builder()
                        .container_port(8080)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    olga.create_service()
        .service_name("api")
        .task_definition("web")
        .desired_count(0)
        .load_balancers(
            aws_sdk_ecs::types::LoadBalancer::builder()
                .target_group_arn(&group)
                .container_name("main")
                .container_port(8080)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut browser = w.signed_in("olga").await;
    let page = browser.get("/ui/clusters/default/services/api").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Target health"));
    assert!(
        page.body.contains("No targets registered."),
        "{}",
        page.body
    );

    // A target registered by hand (the embedded instance's port 8080).
    let cluster = browser.get("/ui/clusters/default").await;
    let action = drain_action(&cluster).unwrap();
    let instance = action.split('/').nth(5).unwrap().to_string();
    w.elb(
        "olga",
        "RegisterTargets",
        &[
            ("TargetGroupArn", &group),
            ("Targets.member.1.Id", &instance),
            ("Targets.member.1.Port", "8080"),
        ],
    )
    .await;
    let page = browser.get("/ui/clusters/default/services/api").await;
    assert_eq!(page.status, 200);
    let targets = capture(
        &page.body,
        r#"<tr><td><code>([^<]+)</code></td><td class="num">8080</td><td><span class="badge status [a-z]*">([a-z]+)</span>"#,
    );
    assert_eq!(targets, std::slice::from_ref(&instance), "{}", page.body);

    // alice may push the service's images: she sees it, and its targets.
    let mut alice = w.signed_in("alice").await;
    let page = alice.get("/ui/clusters/default/services/api").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("<code>{instance}</code>")));
    // carol may not: the service does not exist for her.
    let mut carol = w.signed_in("carol").await;
    assert_eq!(
        carol.get("/ui/clusters/default/services/api").await.status,
        404
    );
}
