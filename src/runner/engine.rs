//! Where containers run. `ContainerEngine` is what the runner needs from a
//! host; `DockerEngine` drives one Docker Engine through bollard. More hosts
//! later means more engines behind the same trait.

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, HealthConfig, HealthStatusEnum, HostConfig,
    PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StatsOptions, StopContainerOptions,
};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::model::{HealthCheck, HealthStatus, NetworkBinding, PortMapping};

/// Labels that tie a container to its task, so state can be rebuilt from the engine.
pub const LABEL_INSTANCE: &str = "wharf.instance";
pub const LABEL_TASK: &str = "wharf.task";
pub const LABEL_CONTAINER: &str = "wharf.container";
pub const LABEL_CLUSTER: &str = "wharf.cluster";
pub const LABEL_TASK_ARN: &str = "com.amazonaws.ecs.task-arn";

/// Docker requests (pulls included) give up after this long.
const REQUEST_TIMEOUT_SECONDS: u64 = 600;
/// Docker Engine API 1.41 (Docker 20.10) has everything the runner uses, and
/// newer engines still speak it.
const API_VERSION: bollard::ClientVersion = bollard::ClientVersion {
    major_version: 1,
    minor_version: 41,
};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

impl From<bollard::errors::Error> for EngineError {
    fn from(e: bollard::errors::Error) -> Self {
        use bollard::errors::Error as E;
        match e {
            E::DockerResponseServerError { message, .. } => EngineError::Failed(message),
            E::DockerStreamError { error } => EngineError::Failed(error),
            // The socket is missing, refuses connections or does not answer.
            E::IOError { .. }
            | E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::SocketNotFoundError(_)
            | E::RequestTimeoutError => EngineError::Unavailable(e.to_string()),
            other => EngineError::Failed(other.to_string()),
        }
    }
}

/// One container to create (also what `wharf agent` is asked to create).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub cpu_shares: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub memory_reservation_bytes: Option<i64>,
    pub network_mode: String,
    pub ports: Vec<PortMapping>,
    /// Host address published ports bind to.
    pub publish_address: String,
    /// Linux capabilities added back; every other one is dropped.
    pub cap_add: Vec<String>,
    pub health: Option<HealthCheck>,
    pub stop_timeout: i32,
}

/// What the engine knows about a container now.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub id: String,
    pub running: bool,
    /// It ran and ended (or died).
    pub exited: bool,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    /// UNKNOWN without a health check, or while it starts.
    pub health: HealthStatus,
    /// The engine's error, e.g. why it could not start.
    pub error: Option<String>,
    pub bindings: Vec<NetworkBinding>,
}

/// A container found by its labels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub id: String,
    pub task: String,
    pub container: String,
    pub running: bool,
}

/// What the engine says of its host: the embedded container instance
/// registers these (README, "Container instances").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineInfo {
    pub cpus: u32,
    pub memory_mib: u32,
    /// Docker's name (`x86_64`, `aarch64`, ...).
    pub architecture: String,
    pub server_version: String,
}

/// A container's resource use at one moment (`ContainerEngine::stats`):
/// CPU time is cumulative, so utilization comes from two samples' difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// CPU time the container has used since it started, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use now, in bytes (the page cache that can be dropped excluded,
    /// as `docker stats` counts it).
    pub memory_bytes: u64,
    /// When the engine read these (ms since the Unix epoch).
    pub at_ms: i64,
}

#[async_trait]
pub trait ContainerEngine: Send + Sync + 'static {
    async fn ping(&self) -> Result<(), EngineError>;
    /// The host's CPUs, memory, architecture and engine version.
    async fn info(&self) -> Result<EngineInfo, EngineError>;
    /// Pulls `reference`, with a bearer token for the registry when given.
    async fn pull(&self, reference: &str, token: Option<String>) -> Result<(), EngineError>;
    /// Creates the container, or finds the one of that name; its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError>;
    async fn start(&self, id: &str) -> Result<(), EngineError>;
    /// SIGTERM, then SIGKILL after `timeout_seconds`.
    async fn stop(&self, id: &str, timeout_seconds: i32) -> Result<(), EngineError>;
    /// `None` when the container does not exist.
    async fn inspect(&self, id: &str) -> Result<Option<ContainerStatus>, EngineError>;
    /// Every container (running or not) carrying `label=value`.
    async fn list(&self, label: &str, value: &str) -> Result<Vec<Listed>, EngineError>;
    /// stdout and stderr interleaved, as written; the last `tail` lines when given.
    fn logs(&self, id: &str, tail: Option<usize>)
    -> BoxStream<'static, Result<Bytes, EngineError>>;
    async fn remove(&self, id: &str) -> Result<(), EngineError>;
    /// A running container's resource use now; `None` when it does not
    /// exist or is not running.
    async fn stats(&self, id: &str) -> Result<Option<Usage>, EngineError>;
}

pub struct DockerEngine {
    socket: String,
    /// Connected on first use (and again after a failure), so Wharf starts
    /// whether or not the Docker Engine is there yet.
    docker: std::sync::Mutex<Option<Docker>>,
}

impl DockerEngine {
    /// `host`: `unix:///path`, or empty for `DOCKER_HOST` (else the default
    /// socket). Only Unix sockets: the Docker API over TCP without TLS would
    /// hand the host to anyone on the network.
    pub fn connect(host: &str) -> Result<DockerEngine, EngineError> {
        let host = if host.is_empty() {
            std::env::var("DOCKER_HOST").unwrap_or_default()
        } else {
            host.to_string()
        };
        let socket = if host.is_empty() {
            "/var/run/docker.sock".to_string()
        } else if let Some(path) = host.strip_prefix("unix://") {
            path.to_string()
        } else if host.starts_with('/') {
            host
        } else {
            return Err(EngineError::Unavailable(format!(
                "Docker Engine {host:?}: only unix:// sockets are supported"
            )));
        };
        Ok(DockerEngine {
            socket,
            docker: std::sync::Mutex::new(None),
        })
    }

    /// The tasks (`LABEL_TASK`) of containers labelled `label=value` as
    /// they start, die, are removed or change health: what `wharf agent`
    /// reports so the server looks at once. Ends when the engine's stream does.
    pub fn task_events(
        &self,
        label: &str,
        value: &str,
    ) -> BoxStream<'static, Result<String, EngineError>> {
        let docker = match self.docker() {
            Ok(d) => d,
            Err(e) => return Box::pin(futures::stream::once(async { Err(e) })),
        };
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![format!("{label}={value}")]),
            (
                "event".to_string(),
                ["start", "die", "destroy", "health_status"]
                    .map(String::from)
                    .to_vec(),
            ),
        ]);
        let options = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        Box::pin(docker.events(Some(options)).filter_map(|event| async {
            match event {
                Ok(message) => message
                    .actor
                    .and_then(|a| a.attributes)
                    .and_then(|mut labels| labels.remove(LABEL_TASK))
                    .map(Ok),
                Err(e) => Some(Err(EngineError::from(e))),
            }
        }))
    }

    fn docker(&self) -> Result<Docker, EngineError> {
        let mut slot = self.docker.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let docker = Docker::connect_with_unix(&self.socket, REQUEST_TIMEOUT_SECONDS, &API_VERSION)
            .map_err(|e| {
                EngineError::Unavailable(format!("Docker Engine at {}: {e}", self.socket))
            })?;
        *slot = Some(docker.clone());
        Ok(docker)
    }
}

fn seconds_to_nanos(s: i32) -> i64 {
    i64::from(s) * 1_000_000_000
}

fn health_config(h: &HealthCheck) -> HealthConfig {
    HealthConfig {
        test: Some(h.command.clone()),
        interval: Some(seconds_to_nanos(h.interval)),
        timeout: Some(seconds_to_nanos(h.timeout)),
        retries: Some(i64::from(h.retries)),
        start_period: Some(seconds_to_nanos(h.start_period)),
        ..Default::default()
    }
}

fn port_key(p: &PortMapping) -> String {
    format!("{}/{}", p.container_port, p.protocol)
}

#[async_trait]
impl ContainerEngine for DockerEngine {
    async fn ping(&self) -> Result<(), EngineError> {
        self.docker()?.ping().await?;
        Ok(())
    }

    async fn info(&self) -> Result<EngineInfo, EngineError> {
        let info = self.docker()?.info().await?;
        Ok(EngineInfo {
            cpus: info.ncpu.and_then(|n| u32::try_from(n).ok()).unwrap_or(1),
            memory_mib: info
                .mem_total
                .and_then(|b| u32::try_from(b / (1024 * 1024)).ok())
                .unwrap_or(0),
            architecture: info.architecture.unwrap_or_default(),
            server_version: info.server_version.unwrap_or_default(),
        })
    }

    async fn pull(&self, reference: &str, token: Option<String>) -> Result<(), EngineError> {
        let credentials = token.map(|t| DockerCredentials {
            registrytoken: Some(t),
            ..Default::default()
        });
        let options = CreateImageOptions {
            from_image: Some(reference.to_string()),
            ..Default::default()
        };
        let mut progress = self
            .docker()?
            .create_image(Some(options), None, credentials);
        while let Some(step) = progress.next().await {
            let info = step?;
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(EngineError::Failed(detail));
            }
        }
        Ok(())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        if let Some(existing) = self.inspect(&spec.name).await? {
            return Ok(existing.id);
        }
        let bridge = spec.network_mode == "bridge";
        let exposed: HashMap<String, HashMap<(), ()>> = spec
            .ports
            .iter()
            .map(|p| (port_key(p), HashMap::new()))
            .collect();
        let bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
            .ports
            .iter()
            .map(|p| {
                let binding = PortBinding {
                    host_ip: Some(spec.publish_address.clone()),
                    // No host port: the engine picks one (ECS's dynamic port mapping).
                    host_port: Some(
                        p.host_port
                            .filter(|h| *h > 0)
                            .map(|h| h.to_string())
                            .unwrap_or_default(),
                    ),
                };
                (port_key(p), Some(vec![binding]))
            })
            .collect();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            labels: Some(spec.labels.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            env: Some(spec.env.clone()),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            healthcheck: spec.health.as_ref().map(health_config),
            stop_timeout: Some(i64::from(spec.stop_timeout)),
            exposed_ports: (bridge && !exposed.is_empty()).then_some(exposed),
            host_config: Some(HostConfig {
                cpu_shares: spec.cpu_shares,
                nano_cpus: spec.nano_cpus,
                memory: spec.memory_bytes,
                memory_reservation: spec.memory_reservation_bytes,
                network_mode: Some(spec.network_mode.clone()),
                port_bindings: (bridge && !bindings.is_empty()).then_some(bindings),
                // Least privilege whatever the task asks: no capability it
                // was not granted, and no setuid binary can raise them.
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
                security_opt: Some(vec!["no-new-privileges:true".into()]),
                privileged: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        match self.docker()?.create_container(Some(options), body).await {
            Ok(created) => Ok(created.id),
            // Created by an earlier attempt that did not get to record it.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => self
                .inspect(&spec.name)
                .await?
                .map(|c| c.id)
                .ok_or_else(|| EngineError::Failed(format!("container {} vanished", spec.name))),
            Err(e) => Err(e.into()),
        }
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        match self
            .docker()?
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
        {
            // 304: already running.
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn stop(&self, id: &str, timeout_seconds: i32) -> Result<(), EngineError> {
        let options = StopContainerOptions {
            t: Some(timeout_seconds),
            signal: None,
        };
        match self.docker()?.stop_container(id, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerStatus>, EngineError> {
        let inspected = match self
            .docker()?
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(i) => i,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let state = inspected.state.unwrap_or_default();
        let status = state.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
        let health = match state.health.and_then(|h| h.status) {
            Some(HealthStatusEnum::HEALTHY) => HealthStatus::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => HealthStatus::Unhealthy,
            _ => HealthStatus::Unknown,
        };
        let bindings = inspected
            .network_settings
            .and_then(|n| n.ports)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(key, bound)| {
                let (port, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
                let container_port: i32 = port.parse().unwrap_or(0);
                let protocol = protocol.to_string();
                bound
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |b| NetworkBinding {
                        bind_ip: b.host_ip.unwrap_or_default(),
                        container_port,
                        host_port: b.host_port.and_then(|p| p.parse().ok()).unwrap_or(0),
                        protocol: protocol.clone(),
                    })
            })
            .collect();
        let exited = matches!(
            status,
            ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD
        );
        Ok(Some(ContainerStatus {
            id: inspected.id.unwrap_or_default(),
            running: state.running.unwrap_or(false),
            exited,
            exit_code: exited.then(|| state.exit_code.unwrap_or(-1) as i32),
            oom_killed: state.oom_killed.unwrap_or(false),
            health,
            error: state.error.filter(|e| !e.is_empty()),
            bindings,
        }))
    }

    async fn list(&self, label: &str, value: &str) -> Result<Vec<Listed>, EngineError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{label}={value}")],
            )])),
            ..Default::default()
        };
        let listed = self.docker()?.list_containers(Some(options)).await?;
        Ok(listed
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                Some(Listed {
                    id: c.id?,
                    task: labels.get(LABEL_TASK)?.clone(),
                    container: labels.get(LABEL_CONTAINER)?.clone(),
                    running: c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
                })
            })
            .collect())
    }

    fn logs(
        &self,
        id: &str,
        tail: Option<usize>,
    ) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
            ..Default::default()
        };
        let docker = match self.docker() {
            Ok(d) => d,
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        docker
            .logs(id, Some(options))
            .map_ok(|out| out.into_bytes())
            .map_err(EngineError::from)
            .boxed()
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker()?.remove_container(id, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn stats(&self, id: &str) -> Result<Option<Usage>, EngineError> {
        // One-shot: without it the engine waits a second to fill `precpu_stats`,
        // which the cumulative counter makes unnecessary.
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let docker = self.docker()?;
        let mut stream = docker.stats(id, Some(options));
        let stats = match stream.next().await {
            Some(Ok(s)) => s,
            Some(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }))
            | None => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
        };
        Ok(usage_of(&stats, crate::registry::now_ms()))
    }
}

/// What a stats reading says, or `None` for a container that is not running
/// (the engine answers with empty counters then).
fn usage_of(stats: &bollard::models::ContainerStatsResponse, now_ms: i64) -> Option<Usage> {
    let cpu_ns = stats
        .cpu_stats
        .as_ref()
        .and_then(|c| c.cpu_usage.as_ref())
        .and_then(|u| u.total_usage)?;
    let memory = stats.memory_stats.as_ref()?;
    let used = memory.usage?;
    // cgroup v2 names it inactive_file, v1 total_inactive_file (docker stats' rule).
    let cache = memory
        .stats
        .as_ref()
        .and_then(|s| {
            s.get("inactive_file")
                .or_else(|| s.get("total_inactive_file"))
        })
        .copied()
        .unwrap_or(0);
    Some(Usage {
        cpu_ns,
        memory_bytes: used.saturating_sub(cache),
        // One-shot readings are taken as the request is answered.
        at_ms: now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a stats reading says: cumulative CPU time, and memory without
    /// the page cache that can be dropped (cgroup v2 and v1 names); a
    /// stopped container's empty reading is no reading.
    #[test]
    fn stats_readings() {
        use bollard::models::{
            ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats, ContainerStatsResponse,
        };
        let reading = |cache: &str| ContainerStatsResponse {
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(5_000),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(1_000),
                stats: Some(HashMap::from([(cache.to_string(), 400)])),
                ..Default::default()
            }),
            ..Default::default()
        };
        for cache in ["inactive_file", "total_inactive_file"] {
            assert_eq!(
                usage_of(&reading(cache), 9),
                Some(Usage {
                    cpu_ns: 5_000,
                    memory_bytes: 600,
                    at_ms: 9
                })
            );
        }
        let stopped = ContainerStatsResponse {
            memory_stats: Some(ContainerMemoryStats::default()),
            ..reading("inactive_file")
        };
        assert_eq!(usage_of(&stopped, 9), None);
    }

    /// A socket that is missing or that nobody listens on is an engine that
    /// cannot be reached (tasks wait), not one that refused (tasks fail).
    #[tokio::test]
    async fn an_absent_engine_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sock");
        let engine = DockerEngine::connect(&format!("unix://{}", missing.display())).unwrap();
        assert!(matches!(
            engine.ping().await,
            Err(EngineError::Unavailable(_))
        ));
        let dead = dir.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        let engine = DockerEngine::connect(&format!("unix://{}", dead.display())).unwrap();
        let outcome = engine.pull("localhost:5000/a:1", None).await;
        assert!(
            matches!(outcome, Err(EngineError::Unavailable(_))),
            "{outcome:?}"
        );
    }
}
