//! The ECS-style task runner against a real Docker Engine and a real `wharf
//! serve`, driven by the official AWS SDK (aws-sdk-ecs): tasks from a busybox
//! image pushed to Wharf, exit codes, StopTask, refused images, services that
//! heal and roll, the circuit breaker, and a restart that adopts running tasks.
//!
//! Needs a Docker Engine (`DOCKER_HOST` or the default socket) and Debian's
//! busybox-static; `tests/run.sh` provides both. Without them the tests skip,
//! except under `CI=true`, where that is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers abort the test on failure"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{
    ContainerDefinition, DesiredStatus, KernelCapabilities, KeyValuePair, LinuxParameters,
    NetworkMode, PortMapping, Task,
};
use common::{BUSYBOX, OCI_MANIFEST, docker, free_port, sha256};
use serde_json::json;
use wharf::runner::engine::{ContainerEngine, LABEL_TASK};

const PASSWORD: &str = "alice-password";

struct Wharf {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    ecs: Client,
    ecr: aws_sdk_ecr::Client,
    http: reqwest::Client,
    password_hash: String,
    /// The server's log goes to `wharf.log` in `dir` (with the runner's debug lines).
    log_to_file: bool,
}

impl Wharf {
    async fn start() -> Wharf {
        Wharf::start_with("").await
    }

    /// With `runner` added to the `[runner]` section (`{dir}` stands for the data folder).
    async fn start_with(runner: &str) -> Wharf {
        let mut wharf = Wharf::prepare(runner).await;
        wharf.spawn().await;
        wharf
    }

    /// Configured, not started yet.
    async fn prepare(runner: &str) -> Wharf {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let password_hash = wharf::auth::hash_password(PASSWORD).unwrap();
        let store = wharf::storage::SqlMetadata::open(&wharf::storage::Database::Sqlite {
            path: dir.path().join("metadata.db"),
            readers: 1,
        })
        .await
        .unwrap();
        // The key the server finds in its data folder when it starts.
        let secrets = wharf::auth::SecretsKey::load(&dir.path().join("secrets-key"), true).unwrap();
        let (id, secret) = wharf::admin::create_access_key(
            &store,
            &secrets,
            "alice",
            &["alice".into()],
            wharf::admin::By::unrecorded(),
        )
        .await
        .unwrap();
        drop(store);
        let credentials = Credentials::new(id, secret, None, None, "wharf-test");
        let config = aws_sdk_ecs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .credentials_provider(credentials.clone())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .retry_config(RetryConfig::disabled())
            .build();
        let ecr = aws_sdk_ecr::Config::builder()
            .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
            .region(aws_sdk_ecr::config::Region::new("us-east-1"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .credentials_provider(credentials)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        let wharf = Wharf {
            dir,
            port,
            child: None,
            ecs: Client::from_conf(config),
            ecr: aws_sdk_ecr::Client::from_conf(ecr),
            http: reqwest::Client::new(),
            password_hash,
            log_to_file: false,
        };
        wharf.configure(runner);
        wharf
    }

    /// Writes the configuration, with `runner` in its `[runner]` section.
    fn configure(&self, runner: &str) {
        let runner = runner.replace("{dir}", &self.dir.path().display().to_string());
        std::fs::write(
            self.dir.path().join("wharf.toml"),
            format!(
                r#"
[auth]
[[auth.users]]
name = "alice"
password_hash = "{}"
[[auth.rules]]
who = ["alice"]
repositories = ["*"]
actions = ["*"]
[runner]
poll_interval_ms = 200
{runner}
[gc]
interval_seconds = 0
"#,
                self.password_hash
            ),
        )
        .unwrap();
    }

    /// Restarts the server with `runner` as its `[runner]` settings.
    async fn restart_with(&mut self, runner: &str) {
        self.kill();
        self.configure(runner);
        self.spawn().await;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("wharf.log")).unwrap_or_default()
    }

    async fn spawn(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
        command
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--config")
            .arg(self.dir.path().join("wharf.toml"))
            .env(
                "RUST_LOG",
                std::env::var("WHARF_TEST_LOG").unwrap_or("warn".into()),
            )
            // WHARF_TEST_LOG=info (a log filter) shows the server's log.
            .stderr(if std::env::var_os("WHARF_TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        if self.log_to_file {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join("wharf.log"))
                .unwrap();
            command
                .env("RUST_LOG", "info,wharf::runner=debug")
                .env("NO_COLOR", "1")
                .stderr(log);
        }
        let child = command.spawn().unwrap();
        self.child = Some(child);
        for _ in 0..200 {
            if self.http.get(self.url("/healthz")).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("wharf did not come up");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn image(&self, repo: &str, reference: &str) -> String {
        let separator = if reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        format!("localhost:{}/{repo}{separator}{reference}", self.port)
    }

    /// Pushes a FROM-scratch image holding a static busybox as `repo:tag`
    /// (`seed` varies the config); its manifest digest.
    async fn push_busybox(&self, repo: &str, tag: &str, seed: &str) -> String {
        self.push_layer(repo, tag, seed, common::busybox_layer())
            .await
    }

    /// Pushes a one-layer image as `repo:tag`; its manifest digest.
    async fn push_layer(&self, repo: &str, tag: &str, seed: &str, layer: Vec<u8>) -> String {
        let arch = if cfg!(target_arch = "aarch64") {
            "arm64"
        } else {
            "amd64"
        };
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "config": { "Env": ["PATH=/bin"], "Labels": { "seed": seed } },
            "rootfs": { "type": "layers", "diff_ids": [sha256(&layer)] },
        }))
        .unwrap();
        for blob in [&layer, &config] {
            let r = self
                .http
                .post(self.url(&format!(
                    "/v2/{repo}/blobs/uploads/?digest={}",
                    sha256(blob)
                )))
                .basic_auth("alice", Some(PASSWORD))
                .body(blob.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "blob push");
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len() }],
        }))
        .unwrap();
        let r = self
            .http
            .put(self.url(&format!("/v2/{repo}/manifests/{tag}")))
            .basic_auth("alice", Some(PASSWORD))
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "manifest push");
        sha256(&manifest)
    }

    /// Registers a one-container task definition running `script` in sh.
    async fn register(&self, family: &str, image: &str, script: &str, stop_timeout: i32) -> String {
        let container = ContainerDefinition::builder()
            .name("main")
            .image(image)
            .memory(64)
            .essential(true)
            .command("/bin/sh")
            .command("-c")
            .command(script)
            .environment(
                KeyValuePair::builder()
                    .name("GREETING")
                    .value("hello from wharf")
                    .build(),
            )
            .stop_timeout(stop_timeout)
            .build();
        let out = self
            .ecs
            .register_task_definition()
            .family(family)
            .network_mode(NetworkMode::None)
            .container_definitions(container)
            .send()
            .await
            .unwrap();
        out.task_definition()
            .unwrap()
            .task_definition_arn()
            .unwrap()
            .to_string()
    }

    async fn run(&self, definition: &str) -> String {
        let out = self
            .ecs
            .run_task()
            .task_definition(definition)
            .send()
            .await
            .unwrap();
        out.tasks()[0].task_arn().unwrap().to_string()
    }

    async fn task(&self, arn: &str) -> Task {
        let out = self.ecs.describe_tasks().tasks(arn).send().await.unwrap();
        assert!(out.failures().is_empty(), "{:?}", out.failures());
        out.tasks()[0].clone()
    }

    /// Polls the task until `done` holds (or panics after `limit`); the
    /// statuses seen on the way.
    async fn wait_task(
        &self,
        arn: &str,
        limit: Duration,
        done: impl Fn(&Task) -> bool,
    ) -> (Task, Vec<String>) {
        let start = Instant::now();
        let mut seen: Vec<String> = Vec::new();
        loop {
            let task = self.task(arn).await;
            let status = task.last_status().unwrap_or_default().to_string();
            if seen.last() != Some(&status) {
                seen.push(status);
            }
            if done(&task) {
                return (task, seen);
            }
            assert!(
                start.elapsed() < limit,
                "task {arn} still {seen:?} after {limit:?}: {task:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn logs(&self, arn: &str) -> String {
        let id = arn.rsplit('/').next().unwrap();
        let r = self
            .http
            .get(self.url(&format!("/ecs/tasks/{id}/logs")))
            .basic_auth("alice", Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }
}

impl Drop for Wharf {
    fn drop(&mut self) {
        self.kill();
        // Leave no containers behind on the shared engine.
        let data: PathBuf = self.dir.path().to_path_buf();
        let _ = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["task", "ls", "--all", "--data-dir"])
            .arg(&data)
            .output()
            .map(|out| {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    if let Some(id) = line.split('\t').next() {
                        let _ = Command::new("docker")
                            .args(["rm", "-f", &format!("wharf-{id}-main")])
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                    }
                }
            });
    }
}

fn stopped(t: &Task) -> bool {
    t.last_status() == Some("STOPPED")
}

fn code<T, E: ProvideErrorMetadata, R>(
    result: Result<T, aws_sdk_ecs::error::SdkError<E, R>>,
) -> String {
    error(result).0
}

/// The error code and message of a call that must fail.
fn error<T, E: ProvideErrorMetadata, R>(
    result: Result<T, aws_sdk_ecs::error::SdkError<E, R>>,
) -> (String, String) {
    match result {
        Ok(_) => panic!("the call succeeded"),
        Err(e) => (
            e.code().unwrap_or("<none>").to_string(),
            e.message().unwrap_or_default().to_string(),
        ),
    }
}

/// Task definitions and clusters need no Docker Engine.
#[tokio::test]
async fn task_definitions_and_clusters() {
    let w = Wharf::start().await;
    let image = w.image("tools/busybox", "1");
    let a1 = w.register("app", &image, "true", 10).await;
    let a2 = w.register("app", &image, "true", 10).await;
    let b1 = w.register("batch", &image, "true", 10).await;
    assert!(
        a1.ends_with("task-definition/app:1") && a2.ends_with("app:2") && b1.ends_with("batch:1")
    );
    // A bare family is its latest ACTIVE revision.
    let d = w
        .ecs
        .describe_task_definition()
        .task_definition("app")
        .send()
        .await
        .unwrap();
    let d = d.task_definition().unwrap();
    assert_eq!(d.revision(), 2);
    assert_eq!(d.container_definitions()[0].memory(), Some(64));
    assert_eq!(d.network_mode().map(|m| m.as_str()), Some("none"));
    w.ecs
        .deregister_task_definition()
        .task_definition("app:2")
        .send()
        .await
        .unwrap();
    let d = w
        .ecs
        .describe_task_definition()
        .task_definition("app")
        .send()
        .await
        .unwrap();
    assert_eq!(d.task_definition().unwrap().revision(), 1);
    let d = w
        .ecs
        .describe_task_definition()
        .task_definition(&a2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.task_definition().unwrap().status().map(|s| s.as_str()),
        Some("INACTIVE")
    );
    // Revisions never reset.
    let a3 = w.register("app", &image, "true", 10).await;
    assert!(a3.ends_with("app:3"), "{a3}");
    let listed = w.ecs.list_task_definitions().send().await.unwrap();
    assert_eq!(
        listed.task_definition_arns(),
        [a1.clone(), a3.clone(), b1.clone()]
    );
    let listed = w
        .ecs
        .list_task_definitions()
        .family_prefix("app")
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Inactive)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.task_definition_arns(), std::slice::from_ref(&a2));
    let page = w
        .ecs
        .list_task_definitions()
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.task_definition_arns().len(), 2);
    let rest = w
        .ecs
        .list_task_definitions()
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.task_definition_arns(), std::slice::from_ref(&b1));
    assert!(rest.next_token().is_none());
    let families = w.ecs.list_task_definition_families().send().await.unwrap();
    assert_eq!(families.families(), ["app", "batch"]);
    let families = w
        .ecs
        .list_task_definition_families()
        .family_prefix("ba")
        .send()
        .await
        .unwrap();
    assert_eq!(families.families(), ["batch"]);
    // Invalid definitions are ClientExceptions and register nothing.
    let no_memory = ContainerDefinition::builder()
        .name("main")
        .image(&image)
        .build();
    assert_eq!(
        code(
            w.ecs
                .register_task_definition()
                .family("bad")
                .container_definitions(no_memory)
                .send()
                .await
        ),
        "ClientException"
    );
    let cycle = |name: &str, other: &str| {
        ContainerDefinition::builder()
            .name(name)
            .image(&image)
            .memory(16)
            .depends_on(
                aws_sdk_ecs::types::ContainerDependency::builder()
                    .container_name(other)
                    .condition(aws_sdk_ecs::types::ContainerCondition::Start)
                    .build()
                    .unwrap(),
            )
            .build()
    };
    assert_eq!(
        code(
            w.ecs
                .register_task_definition()
                .family("bad")
                .container_definitions(cycle("a", "b"))
                .container_definitions(cycle("b", "a"))
                .send()
                .await
        ),
        "ClientException"
    );
    assert_eq!(
        code(
            w.ecs
                .describe_task_definition()
                .task_definition("bad")
                .send()
                .await
        ),
        "ClientException"
    );

    // Clusters: default exists; others come and go.
    let out = w
        .ecs
        .create_cluster()
        .cluster_name("batch")
        .send()
        .await
        .unwrap();
    assert_eq!(out.cluster().unwrap().cluster_name(), Some("batch"));
    let clusters = w.ecs.list_clusters().send().await.unwrap();
    assert_eq!(clusters.cluster_arns().len(), 2);
    let described = w
        .ecs
        .describe_clusters()
        .clusters("batch")
        .clusters("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(described.clusters()[0].status(), Some("ACTIVE"));
    assert_eq!(described.failures()[0].reason(), Some("MISSING"));
    w.ecs
        .delete_cluster()
        .cluster("batch")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(w.ecs.delete_cluster().cluster("batch").send().await),
        "ClusterNotFoundException"
    );
    assert_eq!(
        code(w.ecs.list_tasks().cluster("batch").send().await),
        "ClusterNotFoundException"
    );
    assert_eq!(
        code(
            w.ecs
                .describe_services()
                .services("nope")
                .cluster("nope")
                .send()
                .await
        ),
        "ClusterNotFoundException"
    );
    let out = w
        .ecs
        .describe_services()
        .services("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(out.failures()[0].reason(), Some("MISSING"));
    assert_eq!(
        code(
            w.ecs
                .update_service()
                .service("nope")
                .desired_count(1)
                .send()
                .await
        ),
        "ServiceNotFoundException"
    );
}

#[tokio::test]
async fn task_runs_to_completion_with_digest_and_logs() {
    let Some(_engine) = docker().await else {
        return;
    };
    let w = Wharf::start().await;
    let digest = w.push_busybox("tools/busybox", "1", "a").await;
    let definition = w
        .register(
            "hello",
            &w.image("tools/busybox", "1"),
            "sleep 2; echo \"$GREETING\"; exit 0",
            10,
        )
        .await;
    let arn = w.run(&definition).await;
    let (task, seen) = w.wait_task(&arn, Duration::from_secs(90), stopped).await;
    assert!(seen.contains(&"RUNNING".to_string()), "{seen:?}");
    assert_eq!(
        task.stop_code().map(|c| c.as_str()),
        Some("EssentialContainerExited")
    );
    assert_eq!(task.desired_status(), Some("STOPPED"));
    let container = &task.containers()[0];
    assert_eq!(container.exit_code(), Some(0));
    assert_eq!(container.image_digest(), Some(digest.as_str()));
    assert_eq!(container.last_status(), Some("STOPPED"));
    for at in [
        task.pull_started_at(),
        task.pull_stopped_at(),
        task.started_at(),
        task.stopped_at(),
    ] {
        assert!(at.is_some(), "{task:?}");
    }
    assert!(w.logs(&arn).await.contains("hello from wharf"));
    // The CLI reads the same logs from the Docker Engine.
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["task", "logs", &arn, "--data-dir"])
        .arg(w.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello from wharf"));
    // Overrides, count and idempotency by clientToken.
    let run = || {
        w.ecs
            .run_task()
            .task_definition(&definition)
            .count(2)
            .client_token("once")
            .started_by("test")
            .overrides(
                aws_sdk_ecs::types::TaskOverride::builder()
                    .container_overrides(
                        aws_sdk_ecs::types::ContainerOverride::builder()
                            .name("main")
                            .environment(
                                KeyValuePair::builder()
                                    .name("GREETING")
                                    .value("overridden")
                                    .build(),
                            )
                            .command("/bin/sh")
                            .command("-c")
                            .command("echo \"$GREETING\"; exit 0")
                            .build(),
                    )
                    .build(),
            )
            .send()
    };
    let first: Vec<String> = run()
        .await
        .unwrap()
        .tasks()
        .iter()
        .map(|t| t.task_arn().unwrap().to_string())
        .collect();
    let again: Vec<String> = run()
        .await
        .unwrap()
        .tasks()
        .iter()
        .map(|t| t.task_arn().unwrap().to_string())
        .collect();
    assert_eq!(first.len(), 2);
    assert_eq!(first, again, "the same clientToken started new tasks");
    for arn in &first {
        let (task, _) = w.wait_task(arn, Duration::from_secs(90), stopped).await;
        assert_eq!(task.started_by(), Some("test"));
        assert_eq!(task.containers()[0].exit_code(), Some(0));
        assert_eq!(w.logs(arn).await.trim(), "overridden");
    }
    let listed = w
        .ecs
        .list_tasks()
        .started_by("test")
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.task_arns().len(), 2);
    // Listing: stopped tasks only when asked for.
    let listed = w
        .ecs
        .list_tasks()
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert!(listed.task_arns().contains(&arn));
    let listed = w.ecs.list_tasks().send().await.unwrap();
    assert!(!listed.task_arns().contains(&arn));
}

#[tokio::test]
async fn exit_codes_and_stop_task() {
    let Some(_engine) = docker().await else {
        return;
    };
    let w = Wharf::start().await;
    w.push_busybox("tools/busybox", "1", "a").await;
    let image = w.image("tools/busybox", "1");
    let failing = w.register("fails", &image, "exit 3", 10).await;
    let long = w.register("sleeps", &image, "sleep 600", 3).await;
    let failing = w.run(&failing).await;
    let long = w.run(&long).await;
    let (task, _) = w
        .wait_task(&failing, Duration::from_secs(90), stopped)
        .await;
    assert_eq!(task.containers()[0].exit_code(), Some(3));
    assert_eq!(
        task.stop_code().map(|c| c.as_str()),
        Some("EssentialContainerExited")
    );

    w.wait_task(&long, Duration::from_secs(90), |t| {
        t.last_status() == Some("RUNNING")
    })
    .await;
    let asked = Instant::now();
    let out = w
        .ecs
        .stop_task()
        .task(&long)
        .reason("done with it")
        .send()
        .await
        .unwrap();
    assert_eq!(out.task().unwrap().desired_status(), Some("STOPPED"));
    let (task, _) = w.wait_task(&long, Duration::from_secs(30), stopped).await;
    // sh as PID 1 ignores SIGTERM: the SIGKILL after stopTimeout (3 s) ends it.
    assert!(
        asked.elapsed() < Duration::from_secs(3 + 5),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(task.stop_code().map(|c| c.as_str()), Some("UserInitiated"));
    assert_eq!(task.stopped_reason(), Some("done with it"));
    assert_eq!(task.containers()[0].exit_code(), Some(137));
}

#[tokio::test]
async fn images_from_elsewhere_are_refused_and_missing_tags_fail_to_pull() {
    let Some(_engine) = docker().await else {
        return;
    };
    let w = Wharf::start().await;
    w.push_busybox("tools/busybox", "1", "a").await;
    for image in [
        "docker.io/library/busybox",
        "busybox",
        "ghcr.io/owner/app:1",
        "localhost:1/tools/busybox:1",
    ] {
        let container = ContainerDefinition::builder()
            .name("main")
            .image(image)
            .memory(64)
            .build();
        let result = w
            .ecs
            .register_task_definition()
            .family("elsewhere")
            .container_definitions(container)
            .send()
            .await;
        assert_eq!(code(result), "ClientException", "{image}");
    }
    let missing = w
        .register("missing", &w.image("tools/busybox", "nope"), "true", 10)
        .await;
    let arn = w.run(&missing).await;
    let (task, _) = w.wait_task(&arn, Duration::from_secs(60), stopped).await;
    assert_eq!(
        task.stop_code().map(|c| c.as_str()),
        Some("TaskFailedToStart")
    );
    let reason = task.stopped_reason().unwrap_or_default();
    assert!(reason.starts_with("CannotPullContainerError"), "{reason}");
    // Unknown clusters and definitions are ECS errors.
    assert_eq!(
        code(
            w.ecs
                .run_task()
                .cluster("nope")
                .task_definition(&missing)
                .send()
                .await
        ),
        "ClusterNotFoundException"
    );
    assert_eq!(
        code(w.ecs.run_task().task_definition("nope:1").send().await),
        "ClientException"
    );
    // Deregistered: no new tasks.
    w.ecs
        .deregister_task_definition()
        .task_definition(&missing)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(w.ecs.run_task().task_definition(&missing).send().await),
        "ClientException"
    );
}

async fn running_service_tasks(w: &Wharf, service: &str) -> Vec<Task> {
    let arns = w
        .ecs
        .list_tasks()
        .service_name(service)
        .send()
        .await
        .unwrap();
    if arns.task_arns().is_empty() {
        return Vec::new();
    }
    let out = w
        .ecs
        .describe_tasks()
        .set_tasks(Some(arns.task_arns().to_vec()))
        .send()
        .await
        .unwrap();
    out.tasks()
        .iter()
        .filter(|t| t.last_status() == Some("RUNNING"))
        .cloned()
        .collect()
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn services_heal_roll_and_trip_the_circuit_breaker() {
    let Some(engine) = docker().await else { return };
    let w = Wharf::start().await;
    w.push_busybox("tools/busybox", "1", "a").await;
    let image = w.image("tools/busybox", "1");
    let v1 = w.register("web", &image, "sleep 600", 2).await;
    w.ecs
        .create_service()
        .service_name("web")
        .task_definition(&v1)
        .desired_count(2)
        .send()
        .await
        .unwrap();
    wait_until(Duration::from_secs(90), "2 running tasks", || async {
        running_service_tasks(&w, "web").await.len() == 2
    })
    .await;
    let before = running_service_tasks(&w, "web").await;
    // Kill one container behind Wharf's back: the service replaces the task.
    let victim = before[0]
        .task_arn()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    for c in engine.list(LABEL_TASK, &victim).await.unwrap() {
        engine.stop(&c.id, 0).await.unwrap();
    }
    wait_until(Duration::from_secs(90), "a replacement task", || async {
        let now = running_service_tasks(&w, "web").await;
        now.len() == 2
            && now
                .iter()
                .all(|t| !t.task_arn().unwrap().ends_with(&victim))
    })
    .await;
    let killed = w.task(before[0].task_arn().unwrap()).await;
    assert_eq!(
        killed.stop_code().map(|c| c.as_str()),
        Some("EssentialContainerExited")
    );

    // A new revision replaces every task.
    let v2 = w.register("web", &image, "sleep 601", 2).await;
    assert!(v2.ends_with(":2"), "{v2}");
    w.ecs
        .update_service()
        .service("web")
        .task_definition(&v2)
        .send()
        .await
        .unwrap();
    wait_until(Duration::from_secs(120), "the rollout to v2", || async {
        let tasks = running_service_tasks(&w, "web").await;
        let service = w
            .ecs
            .describe_services()
            .services("web")
            .send()
            .await
            .unwrap();
        let s = &service.services()[0];
        tasks.len() == 2
            && tasks
                .iter()
                .all(|t| t.task_definition_arn() == Some(v2.as_str()))
            && s.deployments().len() == 1
            && s.deployments()[0].rollout_state().map(|r| r.as_str()) == Some("COMPLETED")
            && s.running_count() == 2
    })
    .await;
    // forceNewDeployment re-resolves the tag: the tasks move to the new digest.
    let newer = w.push_busybox("tools/busybox", "1", "b").await;
    w.ecs
        .update_service()
        .service("web")
        .force_new_deployment(true)
        .send()
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(120),
        "the tasks to run the new digest",
        || async {
            let tasks = running_service_tasks(&w, "web").await;
            tasks.len() == 2
                && tasks
                    .iter()
                    .all(|t| t.containers()[0].image_digest() == Some(newer.as_str()))
        },
    )
    .await;
    // Deleting needs desiredCount 0 unless forced.
    assert_eq!(
        code(w.ecs.delete_service().service("web").send().await),
        "InvalidParameterException"
    );
    assert_eq!(
        code(w.ecs.delete_cluster().cluster("default").send().await),
        "ClusterContainsServicesException"
    );
    w.ecs
        .delete_service()
        .service("web")
        .force(true)
        .send()
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(60),
        "the service's tasks to stop",
        || async { running_service_tasks(&w, "web").await.is_empty() },
    )
    .await;

    // A service whose task always fails trips the breaker instead of looping.
    let broken = w.register("broken", &image, "exit 1", 2).await;
    w.ecs
        .create_service()
        .service_name("broken")
        .task_definition(&broken)
        .desired_count(1)
        .send()
        .await
        .unwrap();
    wait_until(Duration::from_secs(120), "the circuit breaker", || async {
        let out = w
            .ecs
            .describe_services()
            .services("broken")
            .send()
            .await
            .unwrap();
        out.services()[0].deployments()[0]
            .rollout_state()
            .map(|r| r.as_str())
            == Some("FAILED")
    })
    .await;
    let count = || async {
        w.ecs
            .list_tasks()
            .service_name("broken")
            .desired_status(DesiredStatus::Stopped)
            .send()
            .await
            .unwrap()
            .task_arns()
            .len()
    };
    let tripped = count().await;
    assert!(tripped >= 3, "{tripped}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        count().await,
        tripped,
        "tasks launched after the breaker tripped"
    );
    let out = w
        .ecs
        .describe_services()
        .services("broken")
        .send()
        .await
        .unwrap();
    assert!(out.services()[0].events().iter().any(|e| {
        e.message()
            .unwrap_or_default()
            .contains("deployment failed")
    }));
}

#[tokio::test]
async fn restart_adopts_running_tasks_and_ends_vanished_ones() {
    let Some(engine) = docker().await else { return };
    let mut w = Wharf::start().await;
    let old = w.push_busybox("tools/busybox", "1", "a").await;
    let image = w.image("tools/busybox", "1");
    let long = w.register("sleeps", &image, "sleep 600", 2).await;
    let kept = w.run(&long).await;
    let doomed = w.run(&long).await;
    for arn in [&kept, &doomed] {
        w.wait_task(arn, Duration::from_secs(90), |t| {
            t.last_status() == Some("RUNNING")
        })
        .await;
    }
    // The running task pins its image: moving the tag and collecting garbage
    // with untagged manifests expiring at once keeps it.
    w.push_busybox("tools/busybox", "1", "b").await;

    w.kill();
    let doomed_id = doomed.rsplit('/').next().unwrap();
    for c in engine.list(LABEL_TASK, doomed_id).await.unwrap() {
        engine.remove(&c.id).await.unwrap();
    }
    std::fs::write(
        w.dir.path().join("gc.toml"),
        "[gc]\ngrace_seconds = 0\nuntagged_after_seconds = 1\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let gc = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["gc", "--config"])
        .arg(w.dir.path().join("gc.toml"))
        .arg("--data-dir")
        .arg(w.dir.path())
        .output()
        .unwrap();
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    w.spawn().await;

    let (task, _) = w.wait_task(&doomed, Duration::from_secs(30), stopped).await;
    assert!(
        task.stopped_reason()
            .unwrap_or_default()
            .contains("Essential container"),
        "{task:?}"
    );
    assert!(
        task.containers()[0]
            .reason()
            .unwrap_or_default()
            .contains("no longer exists"),
        "{task:?}"
    );
    // Still running, same container, not duplicated.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let task = w.task(&kept).await;
    assert_eq!(task.last_status(), Some("RUNNING"));
    let kept_id = kept.rsplit('/').next().unwrap();
    let containers = engine.list(LABEL_TASK, kept_id).await.unwrap();
    assert_eq!(containers.len(), 1);
    assert!(containers[0].running);
    assert_eq!(
        task.containers()[0].runtime_id(),
        Some(containers[0].id.as_str())
    );
    let r = w
        .http
        .head(w.url(&format!("/v2/tools/busybox/manifests/{old}")))
        .basic_auth("alice", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the running task's image was collected");

    // Lifecycle rules count the image but do not expire it while it runs.
    let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    let expiring = || async {
        w.ecr
            .start_lifecycle_policy_preview()
            .repository_name("tools/busybox")
            .lifecycle_policy_text(policy)
            .send()
            .await
            .unwrap();
        let preview = w
            .ecr
            .get_lifecycle_policy_preview()
            .repository_name("tools/busybox")
            .send()
            .await
            .unwrap();
        preview
            .preview_results()
            .iter()
            .filter_map(|r| r.image_digest().map(String::from))
            .collect::<Vec<_>>()
    };
    assert!(
        !expiring().await.contains(&old),
        "a running task's image would expire"
    );

    w.ecs.stop_task().task(&kept).send().await.unwrap();
    let (task, _) = w.wait_task(&kept, Duration::from_secs(30), stopped).await;
    assert_eq!(task.stop_code().map(|c| c.as_str()), Some("UserInitiated"));
    assert!(
        expiring().await.contains(&old),
        "the image stayed pinned after its task stopped"
    );
}

#[tokio::test]
async fn dependencies_and_health_checks() {
    let Some(_engine) = docker().await else {
        return;
    };
    let w = Wharf::start().await;
    w.push_busybox("tools/busybox", "1", "a").await;
    let image = w.image("tools/busybox", "1");
    let sh = |script: &str| ["/bin/sh".to_string(), "-c".to_string(), script.to_string()];
    let depends = |on: &str, condition: aws_sdk_ecs::types::ContainerCondition| {
        aws_sdk_ecs::types::ContainerDependency::builder()
            .container_name(on)
            .condition(condition)
            .build()
            .unwrap()
    };
    let init = ContainerDefinition::builder()
        .name("init")
        .image(&image)
        .memory(16)
        .essential(false)
        .set_command(Some(sh("echo prepared > /tmp/ready; exit 0").to_vec()))
        .build();
    let main = ContainerDefinition::builder()
        .name("main")
        .image(&image)
        .memory(32)
        .set_command(Some(sh("sleep 600").to_vec()))
        .depends_on(depends(
            "init",
            aws_sdk_ecs::types::ContainerCondition::Success,
        ))
        .health_check(
            aws_sdk_ecs::types::HealthCheck::builder()
                .command("CMD-SHELL")
                .command("true")
                .interval(5)
                .timeout(2)
                .retries(1)
                .build()
                .unwrap(),
        )
        .stop_timeout(2)
        .build();
    let side = ContainerDefinition::builder()
        .name("side")
        .image(&image)
        .memory(16)
        .essential(false)
        .set_command(Some(sh("sleep 600").to_vec()))
        .depends_on(depends(
            "main",
            aws_sdk_ecs::types::ContainerCondition::Healthy,
        ))
        .stop_timeout(2)
        .build();
    let out = w
        .ecs
        .register_task_definition()
        .family("layered")
        .network_mode(NetworkMode::None)
        .container_definitions(init)
        .container_definitions(main)
        .container_definitions(side)
        .send()
        .await
        .unwrap();
    let arn = w
        .run(
            out.task_definition()
                .unwrap()
                .task_definition_arn()
                .unwrap(),
        )
        .await;
    let (task, _) = w
        .wait_task(&arn, Duration::from_secs(90), |t| {
            t.last_status() == Some("RUNNING")
                && t.health_status().map(|h| h.as_str()) == Some("HEALTHY")
        })
        .await;
    let container = |name: &str| {
        task.containers()
            .iter()
            .find(|c| c.name() == Some(name))
            .unwrap()
            .clone()
    };
    assert_eq!(container("init").exit_code(), Some(0));
    assert_eq!(
        container("main").health_status().map(|h| h.as_str()),
        Some("HEALTHY")
    );
    assert_eq!(container("side").last_status(), Some("RUNNING"));
    // The non-essential init container's exit did not stop the task.
    assert_eq!(task.desired_status(), Some("RUNNING"));
    w.ecs.stop_task().task(&arn).send().await.unwrap();
    w.wait_task(&arn, Duration::from_secs(30), stopped).await;
}

/// The Docker Engine's socket, as `docker()` finds it.
fn docker_socket() -> PathBuf {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    match host.strip_prefix("unix://") {
        Some(path) => PathBuf::from(path),
        None if host.starts_with('/') => PathBuf::from(host),
        None => PathBuf::from("/var/run/docker.sock"),
    }
}

async fn register_as(
    w: &Wharf,
    family: &str,
    mode: NetworkMode,
    container: ContainerDefinition,
) -> Result<
    aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput,
    aws_sdk_ecs::error::SdkError<
        aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionError,
        aws_sdk_ecs::config::http::HttpResponse,
    >,
> {
    w.ecs
        .register_task_definition()
        .family(family)
        .network_mode(mode)
        .container_definitions(container)
        .send()
        .await
}

fn capabilities(add: &str) -> LinuxParameters {
    LinuxParameters::builder()
        .capabilities(KernelCapabilities::builder().add(add).build())
        .build()
}

/// Host networking, root users, privileged ports and capabilities are the
/// operator's decision: refused by default at registration, allowed by the
/// `[runner]` settings, and refused again by RunTask, CreateService,
/// UpdateService and at task start once the operator turns them off.
/// Needs no Docker Engine.
#[tokio::test]
async fn unsafe_definitions_need_the_operator() {
    const NO_DOCKER: &str = r#"docker_host = "unix://{dir}/no-docker.sock""#;
    let mut w = Wharf::start_with(NO_DOCKER).await;
    w.push_layer("tools/stub", "1", "stub", b"a layer never pulled".to_vec())
        .await;
    let image = w.image("tools/stub", "1");
    let base = || {
        ContainerDefinition::builder()
            .name("main")
            .image(&image)
            .memory(16)
    };
    let published = |container: i32, host: i32| {
        PortMapping::builder()
            .container_port(container)
            .host_port(host)
            .build()
    };
    // Family, network mode, container, and the setting that allows it.
    let cases = [
        (
            "hostnet",
            NetworkMode::Host,
            base().build(),
            "allow_host_network",
        ),
        (
            "rootuid",
            NetworkMode::None,
            base().user("0:0").build(),
            "allow_root_user",
        ),
        (
            "rootname",
            NetworkMode::Bridge,
            base().user("root").build(),
            "allow_root_user",
        ),
        (
            "sshport",
            NetworkMode::Bridge,
            base().port_mappings(published(2222, 22)).build(),
            "allow_privileged_ports",
        ),
        (
            "rawsocket",
            NetworkMode::None,
            base().linux_parameters(capabilities("NET_RAW")).build(),
            "allowed_capabilities",
        ),
    ];
    for (family, mode, container, setting) in &cases {
        let (code, message) = error(register_as(&w, family, mode.clone(), container.clone()).await);
        assert_eq!(code, "ClientException", "{family}: {message}");
        assert!(message.contains(setting), "{family}: {message}");
    }
    let (code, message) = error(
        register_as(
            &w,
            "unknown",
            NetworkMode::None,
            base().linux_parameters(capabilities("CAP_NET_RAW")).build(),
        )
        .await,
    );
    assert_eq!(code, "ClientException");
    assert!(message.contains("unknown capability"), "{message}");
    // linuxParameters other than capabilities cannot be honoured: refused by name.
    let init = LinuxParameters::builder()
        .init_process_enabled(true)
        .build();
    let (code, message) = error(
        register_as(
            &w,
            "init",
            NetworkMode::None,
            base().linux_parameters(init).build(),
        )
        .await,
    );
    assert_eq!(code, "InvalidParameterException");
    assert!(message.contains("initProcessEnabled"), "{message}");
    let listed = w.ecs.list_task_definitions().send().await.unwrap();
    assert!(listed.task_definition_arns().is_empty(), "{listed:?}");

    // The operator allows it all.
    let open = format!(
        "{NO_DOCKER}\nallow_host_network = true\nallow_root_user = true\n\
         allow_privileged_ports = true\nallowed_capabilities = [\"NET_RAW\"]"
    );
    w.restart_with(&open).await;
    for (family, mode, container, _) in &cases {
        register_as(&w, family, mode.clone(), container.clone())
            .await
            .unwrap_or_else(|e| panic!("{family}: {e:?}"));
    }
    let d = w
        .ecs
        .describe_task_definition()
        .task_definition("rawsocket")
        .send()
        .await
        .unwrap();
    let c = &d.task_definition().unwrap().container_definitions()[0];
    let added = c.linux_parameters().unwrap().capabilities().unwrap().add();
    assert_eq!(added, ["NET_RAW"]);
    // Queued while allowed; the engine is away, so it waits to start.
    let queued = w.run("hostnet").await;
    w.ecs
        .create_service()
        .service_name("web")
        .task_definition("rootuid")
        .desired_count(1)
        .send()
        .await
        .unwrap();

    // The operator changes their mind: nothing forbidden starts any more.
    w.restart_with(NO_DOCKER).await;
    for (family, _, _, setting) in &cases {
        let (code, message) = error(w.ecs.run_task().task_definition(*family).send().await);
        assert_eq!(code, "ClientException", "{family}: {message}");
        assert!(message.contains(setting), "{family}: {message}");
    }
    let (code, message) = error(
        w.ecs
            .create_service()
            .service_name("web2")
            .task_definition("rootname")
            .desired_count(1)
            .send()
            .await,
    );
    assert_eq!(code, "ClientException");
    assert!(message.contains("allow_root_user"), "{message}");
    let (code, message) = error(
        w.ecs
            .update_service()
            .service("web")
            .force_new_deployment(true)
            .send()
            .await,
    );
    assert_eq!(code, "ClientException");
    assert!(message.contains("allow_root_user"), "{message}");
    let (task, _) = w
        .wait_task(&queued, Duration::from_secs(30), |t| {
            t.desired_status() == Some("STOPPED")
        })
        .await;
    assert_eq!(
        task.stop_code().map(|c| c.as_str()),
        Some("TaskFailedToStart")
    );
    let reason = task.stopped_reason().unwrap_or_default();
    assert!(reason.contains("allow_host_network"), "{reason}");
}

/// Without a Docker Engine a queued task waits (it does not fail), retried
/// with a growing backoff instead of a tight loop; the runner says once that
/// the engine is unreachable, and once that it is back.
#[tokio::test]
async fn an_unreachable_engine_is_retried_with_backoff_and_logged_once() {
    let mut w = Wharf::prepare(r#"docker_host = "unix://{dir}/docker.sock""#).await;
    w.log_to_file = true;
    w.spawn().await;
    if Path::new(BUSYBOX).exists() {
        w.push_busybox("tools/busybox", "1", "a").await;
    } else {
        w.push_layer("tools/busybox", "1", "a", b"no busybox here".to_vec())
            .await;
    }
    let definition = w
        .register("waits", &w.image("tools/busybox", "1"), "sleep 600", 2)
        .await;
    let arn = w.run(&definition).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = w.log();
    let count = |log: &str, what: &str| log.lines().filter(|l| l.contains(what)).count();
    // Attempts at about 0, 1 and 3 s (then 7 s): a handful, not thousands.
    let attempts = count(&log, "task job failed");
    let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
    assert!(
        (1..=5).contains(&attempts),
        "{attempts} attempts in 5 s; the log ends with:\n{tail}"
    );
    assert_eq!(
        count(&log, "container engine is unreachable"),
        1,
        "the log ends with:\n{tail}"
    );
    let task = w.task(&arn).await;
    assert_eq!(task.desired_status(), Some("RUNNING"), "{task:?}");
    assert_eq!(task.last_status(), Some("PENDING"), "{task:?}");
    assert!(task.stopped_reason().is_none(), "{task:?}");

    // The engine comes back: the task starts without waiting out its backoff.
    let Some(_engine) = docker().await else {
        return;
    };
    std::os::unix::fs::symlink(docker_socket(), w.dir.path().join("docker.sock")).unwrap();
    w.wait_task(&arn, Duration::from_secs(60), |t| {
        t.last_status() == Some("RUNNING")
    })
    .await;
    let log = w.log();
    assert_eq!(count(&log, "container engine is reachable again"), 1);
    assert_eq!(count(&log, "container engine is unreachable"), 1);
    w.ecs.stop_task().task(&arn).send().await.unwrap();
    w.wait_task(&arn, Duration::from_secs(30), stopped).await;
}

/// Every container runs with no-new-privileges and without capabilities
/// beyond those granted, and publishes ports on `publish_address` only: as
/// the Docker Engine reports it, and as the process inside sees it.
#[tokio::test]
async fn containers_run_with_least_privilege() {
    let Some(_engine) = docker().await else {
        return;
    };
    let w =
        Wharf::start_with("allow_host_network = true\nallowed_capabilities = [\"CHOWN\"]").await;
    w.push_busybox("tools/busybox", "1", "a").await;
    let image = w.image("tools/busybox", "1");
    let container = || {
        ContainerDefinition::builder()
            .name("main")
            .image(&image)
            .memory(16)
            .command("/bin/sh")
            .command("-c")
            .command("grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; sleep 600")
            .stop_timeout(2)
    };
    let bridged = container()
        .port_mappings(PortMapping::builder().container_port(8080).build())
        .linux_parameters(capabilities("CHOWN"))
        .build();
    let bridged = register_as(&w, "bridged", NetworkMode::Bridge, bridged)
        .await
        .unwrap();
    let hosted = register_as(&w, "hosted", NetworkMode::Host, container().build())
        .await
        .unwrap();
    let docker = bollard::Docker::connect_with_unix(
        &docker_socket().display().to_string(),
        60,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap();
    // CHOWN is capability 0.
    for (definition, caps) in [(bridged, "0000000000000001"), (hosted, "0000000000000000")] {
        let definition = definition.task_definition().unwrap();
        let arn = w.run(definition.task_definition_arn().unwrap()).await;
        let (task, _) = w
            .wait_task(&arn, Duration::from_secs(90), |t| {
                t.last_status() == Some("RUNNING")
            })
            .await;
        let id = task.containers()[0].runtime_id().unwrap();
        let inspected = docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .unwrap();
        let host = inspected.host_config.unwrap();
        assert_eq!(
            host.security_opt.as_deref(),
            Some(&["no-new-privileges:true".to_string()][..])
        );
        assert_eq!(host.cap_drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert_eq!(host.privileged, Some(false));
        if definition.network_mode() == Some(&NetworkMode::Bridge) {
            assert_eq!(host.cap_add.as_deref(), Some(&["CHOWN".to_string()][..]));
            let bindings = host.port_bindings.unwrap_or_default();
            let binding = &bindings["8080/tcp"].as_ref().unwrap()[0];
            assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        } else {
            assert!(host.cap_add.unwrap_or_default().is_empty());
        }
        let mut seen = String::new();
        for _ in 0..100 {
            seen = w.logs(&arn).await;
            if seen.contains("NoNewPrivs") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for line in [
            format!("CapEff:\t{caps}"),
            format!("CapBnd:\t{caps}"),
            "NoNewPrivs:\t1".to_string(),
        ] {
            assert!(seen.contains(&line), "{line:?} not in {seen:?}");
        }
        w.ecs.stop_task().task(&arn).send().await.unwrap();
        w.wait_task(&arn, Duration::from_secs(30), stopped).await;
    }
}

/// The embedded container instance over a real engine: connected, with the
/// engine's resources; tasks record it; a static host port held by a task is
/// `RESOURCE:PORTS` for the next; draining it leaves a service's tasks in
/// place (there is nowhere else) with ECS's "unable to place" event, and a
/// standalone task alone.
#[tokio::test]
async fn the_embedded_instance_places_and_drains() {
    use aws_sdk_ecs::types::ContainerInstanceStatus;
    let Some(_engine) = docker().await else {
        return;
    };
    let w = Wharf::start().await;
    w.push_busybox("tools/busybox", "1", "a").await;
    let image = w.image("tools/busybox", "1");
    let listed = w.ecs.list_container_instances().send().await.unwrap();
    let arn = listed.container_instance_arns()[0].clone();
    wait_until(Duration::from_secs(30), "the engine to be seen", || async {
        let out = w
            .ecs
            .describe_container_instances()
            .container_instances(&arn)
            .send()
            .await
            .unwrap();
        out.container_instances()[0].agent_connected()
    })
    .await;
    let out = w
        .ecs
        .describe_container_instances()
        .container_instances(&arn)
        .send()
        .await
        .unwrap();
    let instance = &out.container_instances()[0];
    let cpu = instance
        .registered_resources()
        .iter()
        .find(|r| r.name() == Some("CPU"))
        .unwrap()
        .integer_value();
    assert!(cpu >= 1024 && cpu % 1024 == 0, "{cpu}");
    assert!(
        instance
            .version_info()
            .and_then(|v| v.docker_version())
            .is_some_and(|v| v.starts_with("DockerVersion: "))
    );

    // A task holding host port P; the next one asking for P does not fit.
    let port = free_port();
    let held = w
        .ecs
        .register_task_definition()
        .family("holder")
        .container_definitions(
            ContainerDefinition::builder()
                .name("main")
                .image(&image)
                .memory(32)
                .command("/bin/sh")
                .command("-c")
                .command("sleep 600")
                .port_mappings(
                    PortMapping::builder()
                        .container_port(8080)
                        .host_port(i32::from(port))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let held = held
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap();
    let first = w.ecs.run_task().task_definition(held).send().await.unwrap();
    let first = first.tasks()[0].clone();
    assert_eq!(first.container_instance_arn(), Some(arn.as_str()));
    let second = w.ecs.run_task().task_definition(held).send().await.unwrap();
    assert!(second.tasks().is_empty());
    assert_eq!(second.failures()[0].reason(), Some("RESOURCE:PORTS"));
    assert_eq!(second.failures()[0].arn(), Some(arn.as_str()));

    // A service of one runs; draining keeps it (nowhere else to go).
    let web = w.register("web", &image, "sleep 600", 2).await;
    w.ecs
        .create_service()
        .service_name("web")
        .task_definition(&web)
        .desired_count(1)
        .send()
        .await
        .unwrap();
    wait_until(Duration::from_secs(90), "the service task", || async {
        running_service_tasks(&w, "web").await.len() == 1
    })
    .await;
    let before = running_service_tasks(&w, "web").await;
    w.ecs
        .update_container_instances_state()
        .container_instances(&arn)
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    wait_until(Duration::from_secs(30), "the unable-to-place event", || async {
        let out = w
            .ecs
            .describe_services()
            .services("web")
            .send()
            .await
            .unwrap();
        out.services()[0].events().iter().any(|e| {
            e.message().is_some_and(|m| {
                m.starts_with("service web was unable to place a task because no container instance met all of its requirements.")
            })
        })
    })
    .await;
    let after = running_service_tasks(&w, "web").await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].task_arn(), before[0].task_arn());
    let standalone = w.task(first.task_arn().unwrap()).await;
    assert_eq!(standalone.desired_status(), Some("RUNNING"));
    // RunTask has nowhere to go either.
    assert_eq!(
        code(w.ecs.run_task().task_definition(&web).send().await),
        "InvalidParameterException"
    );
    // Back to ACTIVE: placements resume.
    w.ecs
        .update_container_instances_state()
        .container_instances(&arn)
        .status(ContainerInstanceStatus::Active)
        .send()
        .await
        .unwrap();
    let again = w.ecs.run_task().task_definition(&web).send().await.unwrap();
    assert_eq!(again.tasks().len(), 1);
}
