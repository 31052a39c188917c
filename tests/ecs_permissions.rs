//! Who may see and change the task runner's resources, over real HTTP against
//! a real `wharf serve`, driven by the official AWS SDK (aws-sdk-ecs): task
//! definitions, tasks and services belong to the repositories of their images,
//! and only those who may push there see or change them; task logs the same.
//!
//! Most of this needs no Docker Engine (the runner points at a socket that
//! does not exist). The test that reads real logs needs one and Debian's
//! busybox-static, as `tests/ecs.rs` does: without them it skips, except under
//! `CI=true`, where that is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers abort the test on failure"
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{
    ContainerDefinition, ContainerOverride, DesiredStatus, KeyValuePair, NetworkMode, TaskOverride,
};
use common::{docker, free_port};
use serde_json::json;
use wharf::runner::engine::{ContainerEngine, LABEL_TASK};

/// Where the runner looks for Docker in the tests that need none.
const NO_DOCKER: &str = "/nonexistent/wharf-test/docker.sock";
const SECRET: &str = "s3cr3t-database-password";

/// alice deploys `team/*`; bob may only pull `pub/*`; carol pushes `pub/*`;
/// olga may do everything everywhere (the operator).
const USERS: [&str; 4] = ["alice", "bob", "carol", "olga"];

fn password(user: &str) -> String {
    format!("{user}-password")
}

struct Wharf {
    _dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    http: reqwest::Client,
    /// An ECS client per user of [`USERS`], and its access key.
    clients: Vec<Client>,
    keys: Vec<(String, String)>,
    /// Access token secrets: pull-only and push on `team/*`.
    pull_token: String,
    push_token: String,
}

impl Wharf {
    /// A server whose runner uses `docker_host` ("" for `DOCKER_HOST`).
    async fn start(docker_host: &str) -> Wharf {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = String::from("[auth]\nanonymous_pull = [\"pub/*\"]\n");
        for user in USERS {
            let hash = wharf::auth::hash_password(&password(user)).unwrap();
            config.push_str(&format!(
                "[[auth.users]]\nname = \"{user}\"\npassword_hash = \"{hash}\"\n"
            ));
        }
        config.push_str(&format!(
            r#"
[[auth.rules]]
who = ["alice"]
repositories = ["team/*"]
actions = ["*"]
[[auth.rules]]
who = ["bob"]
repositories = ["pub/*"]
actions = ["pull"]
[[auth.rules]]
who = ["carol"]
repositories = ["pub/*"]
actions = ["pull", "push"]
[[auth.rules]]
who = ["olga"]
repositories = ["*"]
actions = ["*"]
[runner]
docker_host = "{docker_host}"
poll_interval_ms = 200
[gc]
interval_seconds = 0
"#
        ));
        std::fs::write(dir.path().join("wharf.toml"), config).unwrap();
        let store = wharf::storage::SqlMetadata::open(&wharf::storage::Database::Sqlite {
            path: dir.path().join("metadata.db"),
            readers: 1,
        })
        .await
        .unwrap();
        let names: Vec<String> = USERS.iter().map(|u| u.to_string()).collect();
        let secrets = wharf::auth::SecretsKey::load(&dir.path().join("secrets-key"), true).unwrap();
        let mut clients = Vec::new();
        let mut keys = Vec::new();
        for user in USERS {
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
            clients.push(Client::from_conf(config));
            keys.push((id, secret));
        }
        let pull_token = common::create_token(&store, "reader", &["repository:team/*:pull"]).await;
        let push_token =
            common::create_token(&store, "deployer", &["repository:team/*:pull,push"]).await;
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
            pull_token,
            push_token,
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
        &self.clients[USERS.iter().position(|u| *u == user).unwrap()]
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn image(&self, repo: &str) -> String {
        format!("localhost:{}/{repo}:1", self.port)
    }

    /// Registers `family` as `user`: one container per image, each with a
    /// secret in its environment.
    async fn register(
        &self,
        user: &str,
        family: &str,
        images: &[&str],
        command: &str,
    ) -> Result<String, String> {
        let mut request = self
            .ecs(user)
            .register_task_definition()
            .family(family)
            .network_mode(NetworkMode::None);
        for (i, repo) in images.iter().enumerate() {
            request = request.container_definitions(
                ContainerDefinition::builder()
                    .name(format!("c{i}"))
                    .image(self.image(repo))
                    .memory(64)
                    .essential(i == 0)
                    .command("/bin/sh")
                    .command("-c")
                    .command(command)
                    .environment(KeyValuePair::builder().name("SECRET").value(SECRET).build())
                    .build(),
            );
        }
        request
            .send()
            .await
            .map(|out| {
                out.task_definition()
                    .unwrap()
                    .task_definition_arn()
                    .unwrap()
                    .to_string()
            })
            .map_err(|e| e.code().unwrap_or("<none>").to_string())
    }

    /// Runs `definition` as alice, with an override carrying a secret.
    async fn run(&self, definition: &str) -> String {
        let out = self
            .ecs("alice")
            .run_task()
            .task_definition(definition)
            .overrides(
                TaskOverride::builder()
                    .container_overrides(
                        ContainerOverride::builder()
                            .name("c0")
                            .environment(
                                KeyValuePair::builder()
                                    .name("OVERRIDE")
                                    .value(SECRET)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.tasks()[0].task_arn().unwrap().to_string()
    }

    async fn logs(&self, arn: &str, auth: Auth<'_>) -> reqwest::Response {
        let id = arn.rsplit('/').next().unwrap();
        let request = self.http.get(self.url(&format!("/ecs/tasks/{id}/logs")));
        let request = match auth {
            Auth::None => request,
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
            Auth::Bearer(token) => request.bearer_auth(token),
        };
        request.send().await.unwrap()
    }

    /// A token from `/token` (anonymous without `user`) asking for `scope`.
    async fn bearer(&self, user: Option<&str>, scope: &str) -> String {
        let mut request = self
            .http
            .get(self.url("/token"))
            .query(&[("service", "wharf"), ("scope", scope)]);
        if let Some(user) = user {
            request = request.basic_auth(user, Some(password(user)));
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
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

enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

fn code<T, E: ProvideErrorMetadata, R>(
    result: Result<T, aws_sdk_ecs::error::SdkError<E, R>>,
) -> String {
    match result {
        Ok(_) => panic!("the call succeeded"),
        Err(e) => e.code().unwrap_or("<none>").to_string(),
    }
}

/// Everything alice's deployment is, as bob (pull on `pub/*` only) and the
/// anonymous-pull side of it would like to read or change it.
#[tokio::test]
async fn pull_only_users_neither_see_nor_change_others_resources() {
    let w = Wharf::start(NO_DOCKER).await;
    let web = w
        .register("alice", "web", &["team/web"], "sleep 60")
        .await
        .unwrap();
    let task = w.run(&web).await;
    let alice = w.ecs("alice");
    alice
        .create_service()
        .service_name("api")
        .task_definition("web")
        .desired_count(1)
        .send()
        .await
        .unwrap();

    let bob = w.ecs("bob");
    // Task definitions: as if there were none (no environment to read).
    for reference in [web.as_str(), "web", "web:1"] {
        assert_eq!(
            code(
                bob.describe_task_definition()
                    .task_definition(reference)
                    .send()
                    .await
            ),
            "ClientException",
            "{reference}"
        );
    }
    let listed = bob.list_task_definitions().send().await.unwrap();
    assert!(listed.task_definition_arns().is_empty());
    let families = bob.list_task_definition_families().send().await.unwrap();
    assert!(families.families().is_empty());
    // Tasks: missing, so neither overrides nor environment show.
    let described = bob.describe_tasks().tasks(&task).send().await.unwrap();
    assert!(described.tasks().is_empty());
    assert_eq!(described.failures()[0].reason(), Some("MISSING"));
    assert_eq!(described.failures()[0].arn(), Some(task.as_str()));
    for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
        let listed = bob
            .list_tasks()
            .desired_status(status)
            .send()
            .await
            .unwrap();
        assert!(listed.task_arns().is_empty());
    }
    // Services: missing, and untouchable.
    let described = bob
        .describe_services()
        .services("api")
        .send()
        .await
        .unwrap();
    assert!(described.services().is_empty());
    assert_eq!(described.failures()[0].reason(), Some("MISSING"));
    assert!(
        bob.list_services()
            .send()
            .await
            .unwrap()
            .service_arns()
            .is_empty()
    );
    assert_eq!(
        code(
            bob.update_service()
                .service("api")
                .desired_count(1000)
                .force_new_deployment(true)
                .send()
                .await
        ),
        "ServiceNotFoundException"
    );
    assert_eq!(
        code(bob.delete_service().service("api").force(true).send().await),
        "ServiceNotFoundException"
    );
    // Nor may bob run, stop, deploy or retire alice's work.
    assert_eq!(
        code(bob.stop_task().task(&task).send().await),
        "InvalidParameterException"
    );
    assert_eq!(
        code(bob.run_task().task_definition("web").send().await),
        "ClientException"
    );
    assert_eq!(
        code(
            bob.create_service()
                .service_name("mine")
                .task_definition(&web)
                .send()
                .await
        ),
        "ClientException"
    );
    assert_eq!(
        code(
            bob.deregister_task_definition()
                .task_definition("web:1")
                .send()
                .await
        ),
        "ClientException"
    );
    // Pulling is not deploying: not alice's images, nor public ones.
    for repo in ["team/web", "pub/tool"] {
        assert_eq!(
            w.register("bob", "bobs", &[repo], "true").await,
            Err("AccessDeniedException".to_string()),
            "{repo}"
        );
    }
    // Clusters carry no secrets, but only deployers make or remove them.
    assert_eq!(
        bob.list_clusters()
            .send()
            .await
            .unwrap()
            .cluster_arns()
            .len(),
        1
    );
    assert_eq!(
        code(bob.create_cluster().cluster_name("bobs").send().await),
        "AccessDeniedException"
    );
    assert_eq!(
        code(bob.delete_cluster().cluster("default").send().await),
        "AccessDeniedException"
    );

    // alice still sees and owns all of it, unchanged.
    let d = alice
        .describe_task_definition()
        .task_definition("web")
        .send()
        .await
        .unwrap();
    let env = d.task_definition().unwrap().container_definitions()[0].environment();
    assert_eq!(env[0].value(), Some(SECRET));
    let described = alice.describe_tasks().tasks(&task).send().await.unwrap();
    let overrides = described.tasks()[0].overrides().unwrap();
    assert_eq!(
        overrides.container_overrides()[0].environment()[0].value(),
        Some(SECRET)
    );
    let listed = alice
        .list_tasks()
        .desired_status(DesiredStatus::Running)
        .send()
        .await
        .unwrap();
    let stopped = alice
        .list_tasks()
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert!(
        listed.task_arns().contains(&task) || stopped.task_arns().contains(&task),
        "alice lists her task"
    );
    let service = alice
        .describe_services()
        .services("api")
        .send()
        .await
        .unwrap();
    let service = &service.services()[0];
    assert_eq!(service.desired_count(), 1);
    assert_eq!(service.status(), Some("ACTIVE"));
    assert_eq!(service.deployments().len(), 1, "no forced deployment");
    assert_eq!(
        alice.list_services().send().await.unwrap().service_arns(),
        [service.service_arn().unwrap()]
    );
    alice
        .update_service()
        .service("api")
        .desired_count(0)
        .send()
        .await
        .unwrap();
    alice.delete_service().service("api").send().await.unwrap();
    alice.stop_task().task(&task).send().await.unwrap();
    alice
        .create_cluster()
        .cluster_name("batch")
        .send()
        .await
        .unwrap();
    alice
        .delete_cluster()
        .cluster("batch")
        .send()
        .await
        .unwrap();
}

/// Push rights on other repositories do not reach into a team's resources,
/// and a resource mixing repositories needs push on all of them.
#[tokio::test]
async fn deployers_see_only_what_runs_their_images() {
    let w = Wharf::start(NO_DOCKER).await;
    let (alice, carol) = (w.ecs("alice"), w.ecs("carol"));
    let web = w
        .register("alice", "web", &["team/web"], "true")
        .await
        .unwrap();
    let tool = w
        .register("carol", "tool", &["pub/tool"], "true")
        .await
        .unwrap();
    // alice may pull pub/* (anonymous pull) but not push it: mixing is carol's or nobody's.
    assert_eq!(
        w.register("alice", "mixed", &["team/web", "pub/tool"], "true")
            .await,
        Err("AccessDeniedException".to_string())
    );
    // Nobody slips a revision with their own images under another team's family.
    assert_eq!(
        w.register("carol", "web", &["pub/tool"], "true").await,
        Err("AccessDeniedException".to_string())
    );
    assert_eq!(
        alice
            .list_task_definitions()
            .send()
            .await
            .unwrap()
            .task_definition_arns(),
        std::slice::from_ref(&web)
    );
    assert_eq!(
        carol
            .list_task_definitions()
            .send()
            .await
            .unwrap()
            .task_definition_arns(),
        std::slice::from_ref(&tool)
    );
    assert_eq!(
        carol
            .list_task_definition_families()
            .send()
            .await
            .unwrap()
            .families(),
        ["tool"]
    );
    assert_eq!(
        code(
            alice
                .describe_task_definition()
                .task_definition(&tool)
                .send()
                .await
        ),
        "ClientException"
    );
    // A service shows (and belongs) to whoever may push what it runs.
    alice
        .create_service()
        .service_name("api")
        .task_definition(&web)
        .send()
        .await
        .unwrap();
    carol
        .create_service()
        .service_name("tools")
        .task_definition(&tool)
        .send()
        .await
        .unwrap();
    let names = |arns: &[String]| -> Vec<String> {
        arns.iter()
            .map(|a| a.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(alice.list_services().send().await.unwrap().service_arns()),
        ["api"]
    );
    assert_eq!(
        names(carol.list_services().send().await.unwrap().service_arns()),
        ["tools"]
    );
    // Nor can an owner move a service onto a definition that is not theirs.
    assert_eq!(
        code(
            alice
                .update_service()
                .service("api")
                .task_definition(&tool)
                .send()
                .await
        ),
        "ClientException"
    );
    // The caps: desiredCount up to runner.max_desired_count (100), count up to 10.
    assert_eq!(
        code(
            alice
                .update_service()
                .service("api")
                .desired_count(1000)
                .force_new_deployment(true)
                .send()
                .await
        ),
        "InvalidParameterException"
    );
    assert_eq!(
        code(
            alice
                .create_service()
                .service_name("big")
                .task_definition(&web)
                .desired_count(101)
                .send()
                .await
        ),
        "InvalidParameterException"
    );
    assert_eq!(
        code(
            alice
                .run_task()
                .task_definition(&web)
                .count(11)
                .send()
                .await
        ),
        "InvalidParameterException"
    );
    // A client token names one request, not whatever ran under it before.
    let run = |client: &Client, definition: &str| {
        client
            .run_task()
            .task_definition(definition)
            .client_token("build-1")
            .send()
    };
    let alices = run(alice, &web).await.unwrap().tasks()[0].clone();
    let again = run(alice, &web).await.unwrap();
    assert_eq!(again.tasks()[0].task_arn(), alices.task_arn(), "idempotent");
    let carols = run(carol, &tool).await.unwrap();
    assert_ne!(carols.tasks()[0].task_arn(), alices.task_arn());
    assert_eq!(carols.tasks()[0].task_definition_arn(), Some(tool.as_str()));
    let service = alice
        .describe_services()
        .services("api")
        .send()
        .await
        .unwrap();
    assert_eq!(service.services()[0].desired_count(), 0);
    assert_eq!(service.services()[0].deployments().len(), 1);
}

/// `GET /ecs/tasks/<id>/logs` asks what DescribeTasks asks, from Basic and
/// Bearer credentials alike, and never shows why Docker is not there.
#[tokio::test]
async fn task_logs_need_what_describe_tasks_needs() {
    let w = Wharf::start(NO_DOCKER).await;
    // An image that exists: the task gets as far as asking Docker to pull it.
    push_image(&w, "team/web", b"not really a tarball".to_vec()).await;
    let web = w
        .register("alice", "web", &["team/web"], "echo $SECRET")
        .await
        .unwrap();
    let task = w.run(&web).await;
    let bob = password("bob");
    let alice = password("alice");

    // No identity: 401 with a challenge, whether or not the task exists.
    let anonymous = w.bearer(None, "repository:team/web:push").await;
    for auth in [Auth::None, Auth::Bearer(&anonymous), Auth::Bearer("forged")] {
        let r = w.logs(&task, auth).await;
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
    }
    let r = w.logs("0123456789abcdef", Auth::None).await;
    assert_eq!(r.status(), 401);

    // Signed in without push on team/web: as if the task did not exist.
    let missing = w
        .logs("0123456789abcdef", Auth::Basic("alice", &alice))
        .await;
    assert_eq!(missing.status(), 404);
    let missing = missing.text().await.unwrap();
    let bobs_bearer = w.bearer(Some("bob"), "repository:pub/tool:pull").await;
    let alice_pull = w.bearer(Some("alice"), "repository:team/web:pull").await;
    for auth in [
        Auth::Basic("bob", &bob),
        Auth::Bearer(&bobs_bearer),
        Auth::Basic("reader", &w.pull_token),
        Auth::Bearer(&alice_pull),
    ] {
        let r = w.logs(&task, auth).await;
        assert_eq!(r.status(), 404);
        assert_eq!(r.text().await.unwrap(), missing);
    }

    // Those who may: no Docker Engine is a 503 that says nothing of it.
    let alice_push = w.bearer(Some("alice"), "repository:team/web:push").await;
    for auth in [
        Auth::Basic("alice", &alice),
        Auth::Bearer(&alice_push),
        Auth::Basic("deployer", &w.push_token),
    ] {
        let r = w.logs(&task, auth).await;
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        let body = r.text().await.unwrap();
        assert_eq!(body, "temporarily unavailable; retry later\n");
    }
    // A wrong password is no identity (last: it slows this address down).
    let r = w.logs(&task, Auth::Basic("alice", "wrong")).await;
    assert_eq!(r.status(), 401);
    // Nor does what DescribeTasks shows the owner name the socket.
    let start = Instant::now();
    loop {
        let described = w
            .ecs("alice")
            .describe_tasks()
            .tasks(&task)
            .send()
            .await
            .unwrap();
        let t = &described.tasks()[0];
        assert!(!format!("{t:?}").contains("nonexistent"), "{t:?}");
        if t.last_status() == Some("STOPPED") || start.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pushes a FROM-scratch image holding a static busybox as `repo:1` (as alice).
async fn push_busybox(w: &Wharf, repo: &str) {
    push_image(w, repo, common::busybox_layer()).await;
}

/// Pushes a one-layer image as `repo:1` (as alice).
async fn push_image(w: &Wharf, repo: &str, layer: Vec<u8>) {
    let alice = password("alice");
    common::push_runnable_image(&w.http, &w.url(""), ("alice", &alice), repo, layer).await;
}

/// With a real Docker Engine: the owner reads the logs (the secret the task
/// printed), nobody else does.
#[tokio::test]
async fn only_deployers_read_real_logs() {
    let Some(engine) = docker().await else {
        return;
    };
    let w = Wharf::start("").await;
    push_busybox(&w, "team/web").await;
    let web = w
        .register("alice", "web", &["team/web"], "echo $SECRET $OVERRIDE")
        .await
        .unwrap();
    let task = w.run(&web).await;
    let start = Instant::now();
    loop {
        let out = w
            .ecs("alice")
            .describe_tasks()
            .tasks(&task)
            .send()
            .await
            .unwrap();
        let t = &out.tasks()[0];
        if t.last_status() == Some("STOPPED") {
            assert_eq!(t.containers()[0].exit_code(), Some(0), "{t:?}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{t:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = w
        .logs(&task, Auth::Basic("alice", &password("alice")))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().trim(), format!("{SECRET} {SECRET}"));
    for auth in [
        Auth::Basic("bob", &password("bob")),
        Auth::Basic("carol", &password("carol")),
        Auth::Basic("reader", &w.pull_token),
    ] {
        let r = w.logs(&task, auth).await;
        assert_eq!(r.status(), 404);
        assert!(!r.text().await.unwrap().contains(SECRET));
    }
    let r = w.logs(&task, Auth::Basic("deployer", &w.push_token)).await;
    assert_eq!(r.status(), 200);
    // Leave no containers behind on the shared engine.
    let id = task.rsplit('/').next().unwrap();
    for c in engine.list(LABEL_TASK, id).await.unwrap() {
        let _ = engine.remove(&c.id).await;
    }
    drop(w);
}

/// With no credentials on loopback (open mode), anyone may do anything, as before.
#[tokio::test]
async fn open_mode_lets_anyone_in() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::TestServer::start_with(dir.path(), |c| {
        c.runner.docker_host = format!("unix://{NO_DOCKER}");
    })
    .await;
    let call = |operation: &str, body: serde_json::Value| {
        s.http
            .post(s.url("/"))
            .header(
                "x-amz-target",
                format!("AmazonEC2ContainerServiceV20141113.{operation}"),
            )
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
    };
    let image = "localhost:5000/team/web:1";
    let r = call(
        "RegisterTaskDefinition",
        json!({"family": "web", "containerDefinitions": [
            {"name": "main", "image": image, "memory": 32,
             "environment": [{"name": "SECRET", "value": SECRET}]}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let r = call("DescribeTaskDefinition", json!({"taskDefinition": "web"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains(SECRET));
    let r = call("RunTask", json!({"taskDefinition": "web"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out: serde_json::Value = r.json().await.unwrap();
    let arn = out["tasks"][0]["taskArn"].as_str().unwrap();
    let r = call("DescribeTasks", json!({"tasks": [arn]}))
        .await
        .unwrap();
    let out: serde_json::Value = r.json().await.unwrap();
    assert_eq!(out["tasks"][0]["taskArn"], arn);
    assert!(
        out["tasks"][0]["containerInstanceArn"]
            .as_str()
            .unwrap()
            .contains(":container-instance/default/")
    );
    let r = call("CreateCluster", json!({"clusterName": "batch"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The new cluster's embedded instance, stored (on PostgreSQL too).
    let r = call("ListContainerInstances", json!({"cluster": "batch"}))
        .await
        .unwrap();
    let out: serde_json::Value = r.json().await.unwrap();
    let instance = out["containerInstanceArns"][0]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(
        "UpdateContainerInstancesState",
        json!({"cluster": "batch", "containerInstances": [instance], "status": "DRAINING"}),
    )
    .await
    .unwrap();
    let out: serde_json::Value = r.json().await.unwrap();
    assert_eq!(out["containerInstances"][0]["status"], "DRAINING", "{out}");
    assert!(
        out["containerInstances"][0]["version"].as_i64().unwrap() >= 2,
        "{out}"
    );
    // Past authorization, to the missing Docker Engine.
    let id = arn.rsplit('/').next().unwrap();
    let r = s
        .http
        .get(s.url(&format!("/ecs/tasks/{id}/logs")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
}

/// What a review found after the permission model: answers that told which
/// hidden families exist, and work one call could ask for without bound.
#[tokio::test]
async fn refusals_name_nothing_hidden_and_bound_the_work() {
    let w = Wharf::start(NO_DOCKER).await;
    w.register("alice", "web", &["team/web"], "sleep 60")
        .await
        .unwrap();
    // A bare family name is refused alike whether a hidden family has it or not.
    let carol = w.ecs("carol");
    let message = |family: &'static str| async move {
        match carol
            .deregister_task_definition()
            .task_definition(family)
            .send()
            .await
        {
            Ok(_) => panic!("deregistered {family}"),
            Err(e) => (
                e.code().unwrap_or("").to_string(),
                e.message().unwrap_or("").to_string(),
            ),
        }
    };
    let hidden = message("web").await;
    assert_eq!(hidden.0, "ClientException");
    assert_eq!(hidden, message("nosuchfamily").await);
    // DescribeClusters names at most 100 clusters, as ECS.
    let many: Vec<String> = (0..101).map(|_| "default".to_string()).collect();
    assert_eq!(
        code(
            carol
                .describe_clusters()
                .set_clusters(Some(many))
                .send()
                .await
        ),
        "InvalidParameterException"
    );
    // maximumPercent bounds the tasks a deployment runs at once.
    let alice = w.ecs("alice");
    let configuration = aws_sdk_ecs::types::DeploymentConfiguration::builder()
        .maximum_percent(1000)
        .minimum_healthy_percent(100)
        .build();
    assert_eq!(
        code(
            alice
                .create_service()
                .service_name("wide")
                .task_definition("web")
                .desired_count(100)
                .deployment_configuration(configuration)
                .send()
                .await
        ),
        "InvalidParameterException"
    );
}

/// Container instances: deployers (push somewhere) see them, only the
/// operator (every action on `*`) changes them; the anonymous get nowhere.
#[tokio::test]
async fn container_instances_are_seen_by_deployers_and_changed_by_operators() {
    use aws_sdk_ecs::types::{Attribute, ContainerInstanceStatus, TargetType};
    let w = Wharf::start(NO_DOCKER).await;
    // A deployer sees the embedded instance, registered without any step.
    for user in ["alice", "carol", "olga"] {
        let listed = w.ecs(user).list_container_instances().send().await.unwrap();
        assert_eq!(listed.container_instance_arns().len(), 1, "{user}");
        let arn = &listed.container_instance_arns()[0];
        let described = w
            .ecs(user)
            .describe_container_instances()
            .container_instances(arn)
            .send()
            .await
            .unwrap();
        assert_eq!(described.container_instances().len(), 1, "{user}");
        w.ecs(user)
            .list_attributes()
            .target_type(TargetType::ContainerInstance)
            .send()
            .await
            .unwrap();
    }
    let arn = w
        .ecs("alice")
        .list_container_instances()
        .send()
        .await
        .unwrap()
        .container_instance_arns()[0]
        .clone();
    let attribute = || {
        Attribute::builder()
            .name("stack")
            .value("blue")
            .target_id(&arn)
            .target_type(TargetType::ContainerInstance)
            .build()
            .unwrap()
    };
    // Pull-only bob sees nothing; neither bob nor the deployers change anything.
    let bob = w.ecs("bob");
    assert_eq!(
        code(bob.list_container_instances().send().await),
        "AccessDeniedException"
    );
    assert_eq!(
        code(
            bob.describe_container_instances()
                .container_instances(&arn)
                .send()
                .await
        ),
        "AccessDeniedException"
    );
    assert_eq!(
        code(
            bob.list_attributes()
                .target_type(TargetType::ContainerInstance)
                .send()
                .await
        ),
        "AccessDeniedException"
    );
    for user in ["bob", "alice", "carol"] {
        let c = w.ecs(user);
        let refused = [
            code(
                c.update_container_instances_state()
                    .container_instances(&arn)
                    .status(ContainerInstanceStatus::Draining)
                    .send()
                    .await,
            ),
            code(c.put_attributes().attributes(attribute()).send().await),
            code(c.delete_attributes().attributes(attribute()).send().await),
            code(c.register_container_instance().send().await),
            code(
                c.deregister_container_instance()
                    .container_instance(&arn)
                    .send()
                    .await,
            ),
        ];
        for (i, answer) in refused.iter().enumerate() {
            assert_eq!(answer, "AccessDeniedException", "{user}, call {i}");
        }
    }
    // Unsigned calls are refused at the door (no open mode here).
    for (operation, body) in [
        ("ListContainerInstances", json!({})),
        (
            "DescribeContainerInstances",
            json!({"containerInstances": [arn]}),
        ),
        (
            "UpdateContainerInstancesState",
            json!({"containerInstances": [arn], "status": "DRAINING"}),
        ),
        (
            "PutAttributes",
            json!({"attributes": [{"name": "a", "targetId": arn}]}),
        ),
        (
            "ListAttributes",
            json!({"targetType": "container-instance"}),
        ),
        ("RegisterContainerInstance", json!({})),
        (
            "DeregisterContainerInstance",
            json!({"containerInstance": arn}),
        ),
    ] {
        let r = w
            .http
            .post(w.url("/"))
            .header(
                "x-amz-target",
                format!("AmazonEC2ContainerServiceV20141113.{operation}"),
            )
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{operation}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            body["__type"], "MissingAuthenticationTokenException",
            "{operation}"
        );
    }
    // Nothing changed; the operator may.
    let olga = w.ecs("olga");
    olga.put_attributes()
        .attributes(attribute())
        .send()
        .await
        .unwrap();
    let drained = olga
        .update_container_instances_state()
        .container_instances(&arn)
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    assert_eq!(drained.container_instances()[0].status(), Some("DRAINING"));
}

/// The instance API and placement, without a Docker Engine: the embedded
/// instance in every cluster, registered hosts, attributes and their limits,
/// filters, RunTask's failures, and draining.
#[tokio::test]
async fn container_instances_and_placement() {
    use aws_sdk_ecs::types::{
        Attribute, ContainerInstanceStatus, PlacementConstraint, PlacementConstraintType,
        PlacementStrategy, PlacementStrategyType, Resource, TargetType,
    };
    let w = Wharf::start(NO_DOCKER).await;
    // An image that resolves, so tasks wait for the engine rather than fail.
    push_image(&w, "team/web", b"not a real layer".to_vec()).await;
    let olga = w.ecs("olga");
    let alice = w.ecs("alice");
    // A new cluster has its embedded instance at once: RunTask works there.
    alice
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    let web = w
        .register("alice", "web", &["team/web"], "sleep 60")
        .await
        .unwrap();
    let run = alice
        .run_task()
        .cluster("prod")
        .task_definition(&web)
        .send()
        .await
        .unwrap();
    assert_eq!(run.tasks().len(), 1, "{:?}", run.failures());
    let task = &run.tasks()[0];
    let embedded = task.container_instance_arn().unwrap().to_string();
    assert!(
        embedded.starts_with("arn:aws:ecs:us-east-1:")
            && embedded.contains(":container-instance/prod/"),
        "{embedded}"
    );
    let described = alice
        .describe_tasks()
        .cluster("prod")
        .tasks(task.task_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.tasks()[0].container_instance_arn(),
        Some(embedded.as_str())
    );
    // Registered vs remaining: the task reserves its 64 MiB.
    let described = alice
        .describe_container_instances()
        .cluster("prod")
        .container_instances(&embedded)
        .container_instances("0123456789abcdef")
        .send()
        .await
        .unwrap();
    let instance = &described.container_instances()[0];
    let value = |list: &[Resource], name: &str| {
        list.iter()
            .find(|r| r.name() == Some(name))
            .unwrap()
            .integer_value()
    };
    let memory = value(instance.registered_resources(), "MEMORY");
    assert!(memory > 64);
    assert_eq!(value(instance.remaining_resources(), "MEMORY"), memory - 64);
    assert_eq!(instance.running_tasks_count(), 1);
    assert_eq!(instance.status(), Some("ACTIVE"));
    assert!(!instance.agent_connected(), "there is no Docker Engine");
    let attribute = |name: &str| {
        instance
            .attributes()
            .iter()
            .find(|a| a.name() == name)
            .and_then(|a| a.value())
            .map(String::from)
    };
    assert_eq!(attribute("ecs.os-type").as_deref(), Some("linux"));
    assert_eq!(
        attribute("ecs.availability-zone").as_deref(),
        Some("us-east-1a")
    );
    assert!(attribute("ecs.cpu-architecture").is_some());
    let ports = instance
        .registered_resources()
        .iter()
        .find(|r| r.name() == Some("PORTS"))
        .unwrap()
        .string_set_value();
    assert!(ports.contains(&w.port.to_string()), "{ports:?}");
    assert_eq!(described.failures()[0].reason(), Some("MISSING"));
    assert!(
        described.failures()[0]
            .arn()
            .unwrap()
            .ends_with("container-instance/prod/0123456789abcdef")
    );
    // Each cluster has its own embedded record.
    let default = alice.list_container_instances().send().await.unwrap();
    assert_eq!(default.container_instance_arns().len(), 1);
    assert_ne!(default.container_instance_arns()[0], embedded);

    // What fits nowhere is a failure, not an error.
    let constraint = |expression: &str| {
        PlacementConstraint::builder()
            .r#type(PlacementConstraintType::MemberOf)
            .expression(expression)
            .build()
    };
    let failed = alice
        .run_task()
        .cluster("prod")
        .task_definition(&web)
        .placement_constraints(constraint("attribute:stack == green"))
        .send()
        .await
        .unwrap();
    assert!(failed.tasks().is_empty());
    assert_eq!(
        failed.failures()[0].reason(),
        Some("MemberOf placement constraint unsatisfied")
    );
    let distinct = PlacementConstraint::builder()
        .r#type(PlacementConstraintType::DistinctInstance)
        .build();
    let two = alice
        .run_task()
        .cluster("prod")
        .task_definition(&web)
        .group("solo")
        .count(2)
        .placement_constraints(distinct)
        .send()
        .await
        .unwrap();
    assert_eq!(two.tasks().len(), 1);
    assert_eq!(
        two.failures()[0].reason(),
        Some("DistinctInstance placement constraint unsatisfied")
    );
    assert_eq!(two.failures()[0].arn(), Some(embedded.as_str()));
    // Bad rules are refused with ECS's exception.
    let bad = alice
        .run_task()
        .cluster("prod")
        .task_definition(&web)
        .placement_strategy(
            PlacementStrategy::builder()
                .r#type(PlacementStrategyType::Binpack)
                .field("disk")
                .build(),
        )
        .send()
        .await;
    assert_eq!(code(bad), "InvalidParameterException");
    let bad = alice
        .run_task()
        .cluster("prod")
        .task_definition(&web)
        .placement_constraints(constraint("attribute:stack =="))
        .send()
        .await;
    assert_eq!(code(bad), "InvalidParameterException");
    // Memory: more than the host has.
    let huge = alice
        .register_task_definition()
        .family("huge")
        .network_mode(NetworkMode::None)
        .container_definitions(
            ContainerDefinition::builder()
                .name("c0")
                .image(w.image("team/web"))
                .memory(memory + 1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let huge = huge
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap();
    let failed = alice
        .run_task()
        .cluster("prod")
        .task_definition(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.failures()[0].reason(), Some("RESOURCE:MEMORY"));

    // A registered host (no agent connects yet): its attributes, a filter.
    let host = olga
        .register_container_instance()
        .cluster("prod")
        .total_resources(
            Resource::builder()
                .name("CPU")
                .r#type("INTEGER")
                .integer_value(2048)
                .build(),
        )
        .total_resources(
            Resource::builder()
                .name("MEMORY")
                .r#type("INTEGER")
                .integer_value(4096)
                .build(),
        )
        .attributes(
            Attribute::builder()
                .name("ecs.availability-zone")
                .value("zone-b")
                .build()
                .unwrap(),
        )
        .attributes(
            Attribute::builder()
                .name("stack")
                .value("green")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let host = host.container_instance().unwrap();
    assert!(!host.agent_connected());
    let host_arn = host.container_instance_arn().unwrap().to_string();
    let filtered = alice
        .list_container_instances()
        .cluster("prod")
        .filter("attribute:stack == green")
        .send()
        .await
        .unwrap();
    assert_eq!(
        filtered.container_instance_arns(),
        std::slice::from_ref(&host_arn)
    );
    let filtered = alice
        .list_container_instances()
        .cluster("prod")
        .filter("agentConnected == false and runningTasksCount > 0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        filtered.container_instance_arns(),
        std::slice::from_ref(&embedded)
    );
    assert_eq!(
        code(
            alice
                .list_container_instances()
                .cluster("prod")
                .filter("attribute:stack ==")
                .send()
                .await
        ),
        "InvalidParameterException"
    );
    let page = alice
        .list_container_instances()
        .cluster("prod")
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.container_instance_arns().len(), 1);
    let rest = alice
        .list_container_instances()
        .cluster("prod")
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.container_instance_arns().len(), 1);
    assert!(rest.next_token().is_none());
    // Only the host matches, and its agent is away.
    let failed = alice
        .run_task()
        .cluster("prod")
        .task_definition(&web)
        .placement_constraints(constraint("attribute:stack == green"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.failures()[0].reason(), Some("AGENT"));
    assert_eq!(failed.failures()[0].arn(), Some(host_arn.as_str()));

    // Attributes: put, list, limit, unknown target, delete.
    let custom = |name: &str, target: &str| {
        Attribute::builder()
            .name(name)
            .value("x")
            .target_type(TargetType::ContainerInstance)
            .target_id(target)
            .build()
            .unwrap()
    };
    olga.put_attributes()
        .cluster("prod")
        .attributes(custom("team", &host_arn))
        .send()
        .await
        .unwrap();
    let listed = alice
        .list_attributes()
        .cluster("prod")
        .target_type(TargetType::ContainerInstance)
        .attribute_name("ecs.os-type")
        .attribute_value("linux")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.attributes().len(),
        1,
        "only the embedded one says linux"
    );
    assert_eq!(listed.attributes()[0].target_id(), Some(embedded.as_str()));
    let mut request = olga.put_attributes().cluster("prod");
    for i in 0..9 {
        request = request.attributes(custom(&format!("extra{i}"), &host_arn));
    }
    assert_eq!(
        code(request.send().await),
        "AttributeLimitExceededException"
    );
    assert_eq!(
        code(
            olga.put_attributes()
                .cluster("prod")
                .attributes(custom("team", "0123456789abcdef"))
                .send()
                .await
        ),
        "TargetNotFoundException"
    );
    olga.delete_attributes()
        .cluster("prod")
        .attributes(custom("team", &host_arn))
        .send()
        .await
        .unwrap();
    let listed = alice
        .list_attributes()
        .cluster("prod")
        .target_type(TargetType::ContainerInstance)
        .attribute_name("team")
        .send()
        .await
        .unwrap();
    assert!(listed.attributes().is_empty());

    // Draining: no new placements; the standalone task stays.
    let drained = olga
        .update_container_instances_state()
        .cluster("prod")
        .container_instances(&embedded)
        .container_instances("0123456789abcdef")
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    assert_eq!(drained.container_instances()[0].status(), Some("DRAINING"));
    assert_eq!(drained.failures()[0].reason(), Some("MISSING"));
    let listed = alice
        .list_container_instances()
        .cluster("prod")
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.container_instance_arns(),
        std::slice::from_ref(&embedded)
    );
    let failed = alice
        .run_task()
        .cluster("prod")
        .task_definition(&web)
        .send()
        .await
        .unwrap();
    assert!(failed.tasks().is_empty());
    assert_eq!(
        failed.failures()[0].reason(),
        Some("AGENT"),
        "only the host is ACTIVE"
    );
    let still = alice
        .describe_tasks()
        .cluster("prod")
        .tasks(task.task_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(still.tasks()[0].desired_status(), Some("RUNNING"));
    // The default cluster's embedded record is not drained.
    alice.run_task().task_definition(&web).send().await.unwrap();

    // A cluster with a registered host is not deleted; its embedded instance
    // alone does not hold it.
    alice
        .create_cluster()
        .cluster_name("edge")
        .send()
        .await
        .unwrap();
    let edge = olga
        .register_container_instance()
        .cluster("edge")
        .send()
        .await
        .unwrap();
    let edge = edge
        .container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap()
        .to_string();
    assert_eq!(
        code(alice.delete_cluster().cluster("edge").send().await),
        "ClusterContainsContainerInstancesException"
    );
    olga.deregister_container_instance()
        .cluster("edge")
        .container_instance(&edge)
        .send()
        .await
        .unwrap();
    alice.delete_cluster().cluster("edge").send().await.unwrap();

    // Deregistering: the embedded instance is drained, never deregistered;
    // a host without tasks goes INACTIVE and out of the listing.
    assert_eq!(
        code(
            olga.deregister_container_instance()
                .cluster("prod")
                .container_instance(&embedded)
                .send()
                .await
        ),
        "InvalidParameterException"
    );
    let gone = olga
        .deregister_container_instance()
        .cluster("prod")
        .container_instance(&host_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.container_instance().unwrap().status(),
        Some("INACTIVE")
    );
    let listed = alice
        .list_container_instances()
        .cluster("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.container_instance_arns(),
        std::slice::from_ref(&embedded)
    );
    olga.update_container_instances_state()
        .cluster("prod")
        .container_instances(&embedded)
        .status(ContainerInstanceStatus::Active)
        .send()
        .await
        .unwrap();
    let run = alice
        .run_task()
        .cluster("prod")
        .task_definition(&web)
        .send()
        .await
        .unwrap();
    assert_eq!(run.tasks().len(), 1);
}

/// Services take placement rules: checked at CreateService and UpdateService,
/// shown by DescribeServices, and a task that fits nowhere is ECS's "unable
/// to place" event (once), placed as soon as the rules allow.
#[tokio::test]
async fn services_place_by_their_rules() {
    use aws_sdk_ecs::types::{
        PlacementConstraint, PlacementConstraintType, PlacementStrategy, PlacementStrategyType,
    };
    let w = Wharf::start(NO_DOCKER).await;
    push_image(&w, "team/web", b"not a real layer".to_vec()).await;
    let alice = w.ecs("alice");
    w.register("alice", "web", &["team/web"], "sleep 60")
        .await
        .unwrap();
    let green = PlacementConstraint::builder()
        .r#type(PlacementConstraintType::MemberOf)
        .expression("attribute:stack == green")
        .build();
    let bad = alice
        .create_service()
        .service_name("api")
        .task_definition("web")
        .desired_count(1)
        .placement_strategy(
            PlacementStrategy::builder()
                .r#type(PlacementStrategyType::Spread)
                .build(),
        )
        .send()
        .await;
    assert_eq!(code(bad), "InvalidParameterException");
    let created = alice
        .create_service()
        .service_name("api")
        .task_definition("web")
        .desired_count(1)
        .placement_constraints(green)
        .placement_strategy(
            PlacementStrategy::builder()
                .r#type(PlacementStrategyType::Binpack)
                .field("memory")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let service = created.service().unwrap();
    assert_eq!(service.placement_constraints().len(), 1);
    assert_eq!(service.placement_strategy()[0].field(), Some("memory"));
    let unplaced = |s: &aws_sdk_ecs::types::Service| {
        s.events()
            .iter()
            .filter(|e| {
                e.message().is_some_and(|m| {
                    m.starts_with("service api was unable to place a task")
                        && m.contains("MemberOf placement constraint unsatisfied")
                })
            })
            .count()
    };
    let start = Instant::now();
    loop {
        let out = alice
            .describe_services()
            .services("api")
            .send()
            .await
            .unwrap();
        if unplaced(&out.services()[0]) == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no unable-to-place event"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Several passes later: still the one event, and no task.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let out = alice
        .describe_services()
        .services("api")
        .send()
        .await
        .unwrap();
    assert_eq!(unplaced(&out.services()[0]), 1);
    let tasks = alice.list_tasks().service_name("api").send().await.unwrap();
    assert!(tasks.task_arns().is_empty());
    // Bad rules are refused by UpdateService too; no rules: the task is placed.
    let bad = alice
        .update_service()
        .service("api")
        .placement_constraints(
            PlacementConstraint::builder()
                .r#type(PlacementConstraintType::DistinctInstance)
                .expression("x")
                .build(),
        )
        .send()
        .await;
    assert_eq!(code(bad), "InvalidParameterException");
    alice
        .update_service()
        .service("api")
        .set_placement_constraints(Some(Vec::new()))
        .send()
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let tasks = alice.list_tasks().service_name("api").send().await.unwrap();
        if tasks.task_arns().len() == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the task was not placed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A value unique to this process's calls (the channel refuses a signature twice).
fn uuid_like() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "n{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Opens an agent channel as `user` for `instance`, signing `signed_for`
/// (the instance the signature covers) with protocol `version`; the
/// WebSocket, or the refusal's status and ECS error name.
async fn agent_channel(
    w: &Wharf,
    user: Option<&str>,
    instance: &str,
    signed_for: &str,
    version: u32,
    nonce: Option<&str>,
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, (u16, String)> {
    use tokio_tungstenite::tungstenite::handshake::client::generate_key;
    let given = nonce;
    let nonce = nonce.map(String::from).unwrap_or_else(uuid_like);
    let query = |i: &str| {
        let i: String = form_urlencoded::byte_serialize(i.as_bytes()).collect();
        format!(
            "/agent/v1/channel?cluster=default&containerInstance={i}&protocolVersion={version}&nonce={nonce}"
        )
    };
    let authority = format!("127.0.0.1:{}", w.port);
    let mut request = http::Request::get(format!("ws://{authority}{}", query(instance)))
        .header("host", &authority)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", generate_key());
    if let Some(user) = user {
        let (id, secret) = &w.keys[USERS.iter().position(|u| *u == user).unwrap()];
        let key = wharf::aws::sigv4::ClientKey {
            access_key_id: id,
            secret,
            region: "us-east-1",
            service: "ecs",
        };
        let mut now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        // A given nonce is a request to be sent twice: the same date makes the same signature.
        static FIXED: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
        if given.is_some() {
            now = *FIXED.get_or_init(|| now);
        }
        let signed = wharf::aws::sigv4::sign(
            &key,
            "GET",
            &query(signed_for),
            &[("host", authority.as_str())],
            b"",
            now,
        );
        for (name, value) in signed {
            request = request.header(name, value);
        }
    }
    let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
    match tokio_tungstenite::client_async(request.body(()).unwrap(), tcp).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body: serde_json::Value = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            Err((
                response.status().as_u16(),
                body["__type"].as_str().unwrap_or_default().to_string(),
            ))
        }
        Err(e) => panic!("channel: {e}"),
    }
}

/// The agent channel: only the operator opens it, only for a registered
/// host and with the signature covering which one; over it, a fake agent
/// answering the engine steps runs a StartTask'd task to RUNNING, sees
/// images only as `repo@digest`, and its departure disconnects the host.
#[tokio::test]
async fn agent_channels_need_the_operator_and_drive_tasks() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use wharf::runner::engine::{ContainerStatus, Listed};
    use wharf::runner::protocol::{AgentFrame, Command as Step, Outcome, ServerFrame};

    let w = Wharf::start(NO_DOCKER).await;
    let olga = w.ecs("olga");
    let registered = olga
        .register_container_instance()
        .total_resources(
            aws_sdk_ecs::types::Resource::builder()
                .name("MEMORY")
                .r#type("INTEGER")
                .integer_value(1024)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let arn = registered
        .container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap()
        .to_string();
    let embedded = olga
        .list_container_instances()
        .send()
        .await
        .unwrap()
        .container_instance_arns()
        .iter()
        .find(|a| **a != arn)
        .unwrap()
        .clone();
    let refused = |r: Result<_, (u16, String)>| match r {
        Ok(_) => panic!("the channel opened"),
        Err(e) => e,
    };
    // No signature, a deployer's, a pull-only user's: refused before anything is looked up.
    assert_eq!(
        refused(agent_channel(&w, None, &arn, &arn, 1, None).await),
        (403, "MissingAuthenticationTokenException".into())
    );
    for user in ["alice", "bob"] {
        assert_eq!(
            refused(agent_channel(&w, Some(user), &arn, &arn, 1, None).await),
            (400, "AccessDeniedException".into()),
            "{user}"
        );
    }
    // The signature covers the instance: signed for one, sent for another.
    assert_eq!(
        refused(agent_channel(&w, Some("olga"), &arn, &embedded, 1, None).await).1,
        "InvalidSignatureException"
    );
    // Another protocol, an unknown host, the embedded instance.
    assert_eq!(
        refused(agent_channel(&w, Some("olga"), &arn, &arn, 2, None).await).1,
        "ClientException"
    );
    let unknown = format!("{}/{}", arn.rsplit_once('/').unwrap().0, "0".repeat(32));
    for instance in [&unknown, &embedded] {
        assert_eq!(
            refused(agent_channel(&w, Some("olga"), instance, instance, 1, None).await).1,
            "InvalidParameterException",
            "{instance}"
        );
    }

    let mut ws = agent_channel(&w, Some("olga"), &arn, &arn, 1, Some("once"))
        .await
        .unwrap();
    // The same signed request again (a replay within its fifteen minutes) is refused.
    assert_eq!(
        refused(agent_channel(&w, Some("olga"), &arn, &arn, 1, Some("once")).await).1,
        "InvalidSignatureException"
    );
    let next =
        |text: Message| serde_json::from_str::<ServerFrame>(text.to_text().unwrap()).unwrap();
    let ServerFrame::Hello {
        container_instance_arn,
        installation,
        ..
    } = next(ws.next().await.unwrap().unwrap())
    else {
        panic!("no hello first")
    };
    assert_eq!(container_instance_arn, arn);
    let connected = |w: &Wharf| {
        let olga = w.ecs("olga").clone();
        let arn = arn.clone();
        async move {
            olga.describe_container_instances()
                .container_instances(arn)
                .send()
                .await
                .unwrap()
                .container_instances()[0]
                .agent_connected()
        }
    };
    assert!(connected(&w).await);

    push_image(&w, "team/app", vec![7; 64]).await;
    let definition = w
        .register("alice", "agent-app", &["team/app"], "sleep 600")
        .await
        .unwrap();
    // StartTask is the deployer's call, as RunTask: bob may not start alice's task.
    assert_eq!(
        code(
            w.ecs("bob")
                .start_task()
                .task_definition(&definition)
                .container_instances(&arn)
                .send()
                .await
        ),
        "ClientException"
    );
    let started = w
        .ecs("alice")
        .start_task()
        .task_definition(&definition)
        .container_instances(&arn)
        .container_instances(&unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(started.tasks().len(), 1);
    assert_eq!(
        started.tasks()[0].container_instance_arn(),
        Some(arn.as_str())
    );
    assert_eq!(started.failures()[0].reason(), Some("MISSING"));
    let task = started.tasks()[0].task_arn().unwrap().to_string();
    let task_id = task.rsplit('/').next().unwrap().to_string();

    // The fake agent: one container, created and started on request.
    let mut created: Option<String> = None;
    let mut started_container = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the task never ran");
        let described = w
            .ecs("alice")
            .describe_tasks()
            .tasks(&task)
            .send()
            .await
            .unwrap();
        if described.tasks()[0].last_status() == Some("RUNNING") {
            break;
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let ServerFrame::Command { id, command } = next(frame) else {
            continue;
        };
        let outcome = match command {
            Step::Pull { image, token } => {
                assert!(image.starts_with("team/app@sha256:"), "{image}");
                assert!(token.is_some(), "a pull-only token comes with the pull");
                Outcome::Done
            }
            Step::Create { spec } => {
                assert!(spec.image.starts_with("team/app@sha256:"), "{}", spec.image);
                assert_eq!(spec.labels.get("wharf.instance"), Some(&installation));
                created = Some("c0ffee".repeat(8));
                Outcome::Created {
                    id: created.clone().unwrap(),
                }
            }
            Step::Start { id } => {
                assert_eq!(Some(&id), created.as_ref());
                started_container = true;
                Outcome::Done
            }
            Step::Inspect { .. } => Outcome::Inspected {
                status: created.clone().map(|id| ContainerStatus {
                    id,
                    running: started_container,
                    exited: false,
                    exit_code: None,
                    oom_killed: false,
                    health: wharf::runner::status::HealthStatus::Unknown,
                    error: None,
                    bindings: Vec::new(),
                }),
            },
            Step::List { .. } => Outcome::Listed {
                containers: created
                    .iter()
                    .map(|id| Listed {
                        id: id.clone(),
                        task: task_id.clone(),
                        container: "c0".into(),
                        running: started_container,
                    })
                    .collect(),
            },
            other => Outcome::Failed {
                message: format!("unexpected {other:?}"),
            },
        };
        let reply = serde_json::to_string(&AgentFrame::Reply { id, outcome }).unwrap();
        ws.send(Message::Text(reply.into())).await.unwrap();
    }

    // The agent goes: the host is disconnected, its task is not declared dead.
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(10);
    while connected(&w).await {
        assert!(Instant::now() < deadline, "still connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let described = w
        .ecs("alice")
        .describe_tasks()
        .tasks(&task)
        .send()
        .await
        .unwrap();
    assert_eq!(described.tasks()[0].last_status(), Some("RUNNING"));
    assert_eq!(
        described.tasks()[0].desired_status(),
        Some("RUNNING"),
        "a disconnected host's task keeps running until the agent is lost"
    );
}

/// Putting a service behind a load balancer wires a listener's traffic to
/// the caller's tasks: only operators may, on create and on update.
#[tokio::test]
async fn only_operators_put_services_behind_load_balancers() {
    use aws_sdk_ecs::types::LoadBalancer;
    let w = Wharf::start(NO_DOCKER).await;
    push_image(&w, "team/web", b"not a real layer".to_vec()).await;
    w.register("alice", "web", &["team/web"], "sleep 60")
        .await
        .unwrap();
    let group =
        "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/0123456789abcdef";
    let lb = LoadBalancer::builder()
        .target_group_arn(group)
        .container_name("c0")
        .container_port(8080)
        .build();
    for user in ["alice", "bob"] {
        let denied = w
            .ecs(user)
            .create_service()
            .service_name("api")
            .task_definition("web")
            .desired_count(1)
            .load_balancers(lb.clone())
            .send()
            .await;
        assert_eq!(code(denied), "AccessDeniedException", "{user}");
    }
    w.ecs("alice")
        .create_service()
        .service_name("api")
        .task_definition("web")
        .desired_count(0)
        .send()
        .await
        .unwrap();
    let denied = w
        .ecs("alice")
        .update_service()
        .service("api")
        .load_balancers(lb.clone())
        .send()
        .await;
    assert_eq!(code(denied), "AccessDeniedException");
    // The operator passes the check; the target group must exist.
    let missing = w
        .ecs("olga")
        .update_service()
        .service("api")
        .load_balancers(lb)
        .send()
        .await;
    assert_eq!(code(missing), "InvalidParameterException");
    let service = w
        .ecs("alice")
        .describe_services()
        .services("api")
        .send()
        .await
        .unwrap();
    assert!(service.services()[0].load_balancers().is_empty());
}
