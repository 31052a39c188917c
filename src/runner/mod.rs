//! The task runner: ECS-style task definitions, tasks and services, run as
//! containers on the Docker Engine from images of this registry only.
//!
//! State lives in the metadata store (`RunnerStore`); one loop per process
//! (`Runner::run`) drives tasks through their lifecycle (`supervisor`) and
//! keeps services at their desired count (`scheduler`). After a restart the
//! loop picks up where the stored state says: running containers are adopted
//! through their labels, vanished ones end their tasks.
//!
//! Decisions are pure and tested without Docker: `status` (the wire
//! vocabulary as enums), `lifecycle` (a task's transitions from its record
//! and what the engine shows), `scheduler::plan` (a service's pass),
//! `definitions`' checks, `placement`. The engine is the
//! `engine::ContainerEngine` trait: `DockerEngine` in production, an
//! in-memory one (`memory`) in unit tests.
//!
//! Container instances (`instances`, `attributes`) are the hosts tasks are
//! placed on (`placing`); today the only one that runs tasks is the embedded
//! instance (`embedded`), this server's own engine, registered in every
//! cluster.

mod addresses;
mod agents;
pub mod attributes;
mod definitions;
mod embedded;
pub mod engine;
pub mod images;
pub mod instances;
mod jobs;
mod lifecycle;
#[cfg(test)]
mod memory;
pub mod model;
pub mod placement;
mod placing;
pub mod protocol;
mod remote;
mod safety;
mod scheduler;
mod services;
pub mod status;
mod supervisor;
mod targets;
mod tasks;
pub mod usage;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::{Access, Auth};
use crate::registry::Registry;
use crate::storage::metadata::{Pins, RunnerStore, TaskRow};
use crate::storage::{Lease, MetadataError, RunnerStoreError};
use engine::ContainerEngine;
use images::RegistryHosts;
use model::{ServiceRecord, TaskRecord};

pub use agents::Attached;
pub use definitions::{DefinitionFilter, RegisterDefinition, require_revision};
pub use instances::EmbeddedSettings;
pub use placing::PlacementFailure;
pub use safety::{CAPABILITIES, Safety};
pub use services::{CreateService, UpdateService};
pub use tasks::{Launched, RunTask, TaskFilter, task_logs};

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The caller asked for something invalid (ECS ClientException).
    #[error("{0}")]
    Client(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("Cluster not found.")]
    ClusterNotFound,
    #[error("Service not found.")]
    ServiceNotFound,
    #[error("Service not active.")]
    ServiceNotActive,
    #[error("The Cluster cannot be deleted while Tasks are active.")]
    ClusterContainsTasks,
    #[error("The Cluster cannot be deleted while Services are active.")]
    ClusterContainsServices,
    #[error("The Cluster cannot be deleted while Container Instances are active or draining.")]
    ClusterContainsInstances,
    /// More than ten custom attributes on one container instance.
    #[error("{0}")]
    AttributeLimitExceeded(String),
    /// An attribute names a container instance that is not in the cluster.
    #[error("{0}")]
    TargetNotFound(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("metadata store: {0}")]
    Store(#[from] MetadataError),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("container engine: {0}")]
    Engine(#[from] engine::EngineError),
    #[error("load balancer: {0}")]
    Balancer(String),
}

pub type Result<T, E = RunnerError> = std::result::Result<T, E>;

/// How the runner is set up.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// ARNs: `arn:aws:ecs:<region>:<account>:...`.
    pub region: String,
    pub account: String,
    pub poll_interval: Duration,
    /// Stopped tasks (and their containers, with their logs) are kept this long.
    pub retain_stopped: Duration,
    /// What task definitions may ask of the host.
    pub safety: Safety,
    /// The most tasks one service may ask for (`desiredCount`).
    pub max_desired_count: i64,
    /// What the embedded container instance registers.
    pub embedded: EmbeddedSettings,
    /// How long an agent may be away before its service tasks are replaced
    /// on other instances (README "Agents").
    pub agent_lost_timeout: Duration,
}

#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn RunnerStore>,
    registry: Registry,
    auth: Arc<Auth>,
    engine: Arc<dyn ContainerEngine>,
    hosts: RegistryHosts,
    settings: RunnerSettings,
    /// Labels this installation's containers (shared by its replicas).
    instance: String,
    /// Tasks a start or stop job is working on, in this process.
    busy: Mutex<HashSet<String>>,
    /// Tasks whose last job failed, waiting before the next attempt.
    retries: Mutex<HashMap<String, jobs::Retry>>,
    /// Whether the engine could be reached when last asked (`None`: not yet asked).
    engine_reachable: Mutex<Option<bool>>,
    wake: tokio::sync::Notify,
    /// Wakes the supervision loops of the agents connected here.
    agents_wake: tokio::sync::Notify,
    /// The agents connected to this process.
    sessions: remote::Sessions,
    /// When stopped tasks were last pruned.
    pruned_at: Mutex<Option<std::time::Instant>>,
    /// What the engine last said of its host (the embedded instance's resources).
    engine_info: Mutex<Option<engine::EngineInfo>>,
    /// When the embedded instances were last refreshed, and whether the
    /// engine answered then.
    /// When the embedded instances were last refreshed, whether the engine
    /// answered then, and the listener ports they reserved.
    embedded_checked: Mutex<Option<(std::time::Instant, bool, BTreeSet<u16>)>>,
    /// The load balancer services register their tasks with.
    balancer: std::sync::OnceLock<crate::balancer::Balancer>,
    /// Whether this replica holds the runner's lease now.
    leading: std::sync::atomic::AtomicBool,
    /// Service tasks' utilization samples (`usage`), on the lease holder.
    usage: usage::Windows,
}

/// The embedded instances are looked at least this often (and at once when
/// the engine comes or goes).
const EMBEDDED_INTERVAL: Duration = Duration::from_secs(10);

/// Stopped tasks are pruned at most this often.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

fn corrupt(e: serde_json::Error) -> RunnerError {
    RunnerError::Corrupt(e.to_string())
}

pub(crate) fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl Runner {
    pub async fn new(
        store: Arc<dyn RunnerStore>,
        registry: Registry,
        auth: Arc<Auth>,
        engine: Arc<dyn ContainerEngine>,
        hosts: RegistryHosts,
        settings: RunnerSettings,
    ) -> Result<Runner> {
        let instance = store.runner_instance().await?;
        Ok(Runner {
            inner: Arc::new(Inner {
                store,
                registry,
                auth,
                engine,
                hosts,
                settings,
                instance,
                busy: Mutex::default(),
                retries: Mutex::default(),
                engine_reachable: Mutex::default(),
                wake: tokio::sync::Notify::new(),
                agents_wake: tokio::sync::Notify::new(),
                sessions: remote::Sessions::default(),
                pruned_at: Mutex::default(),
                engine_info: Mutex::default(),
                embedded_checked: Mutex::default(),
                balancer: std::sync::OnceLock::new(),
                leading: std::sync::atomic::AtomicBool::new(false),
                usage: usage::Windows::default(),
            }),
        })
    }

    /// Lets services register their tasks with `balancer`.
    pub fn attach_balancer(&self, balancer: crate::balancer::Balancer) {
        let _ = self.inner.balancer.set(balancer);
    }

    pub fn balancer(&self) -> Option<&crate::balancer::Balancer> {
        self.inner.balancer.get()
    }

    pub fn settings(&self) -> &RunnerSettings {
        &self.inner.settings
    }

    pub fn hosts(&self) -> &RegistryHosts {
        &self.inner.hosts
    }

    /// Drives tasks and services until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut engine_failing = false;
        // Replicas share the tasks: the one holding the lease runs the loop
        // (and keeps it while its database session lives).
        let mut lease: Option<Lease> = None;
        loop {
            if let Some(held) = lease.as_mut()
                && !held.alive().await
            {
                tracing::warn!("task runner: lost its lease");
                lease = None;
            }
            if lease.is_none() {
                match self.inner.registry.lease("runner").await {
                    Ok(Some(held)) => {
                        tracing::info!("task runner: this replica runs the tasks");
                        lease = Some(held);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "task runner: cannot take its lease"),
                }
            }
            self.inner
                .leading
                .store(lease.is_some(), std::sync::atomic::Ordering::Relaxed);
            let outcome = match lease {
                Some(_) => self.tick().await,
                None => Ok(()),
            };
            match outcome {
                Ok(()) => engine_failing = false,
                // Logged when reachability changes (see `note_engine`).
                Err(RunnerError::Engine(engine::EngineError::Unavailable(_))) => {}
                Err(RunnerError::Engine(e)) => {
                    if !engine_failing {
                        tracing::warn!(error = %e, "task runner: the container engine fails");
                    }
                    engine_failing = true;
                }
                Err(e) => tracing::error!(error = %e, "task runner"),
            }
            tokio::select! {
                () = stop.cancelled() => {
                    self.inner.leading.store(false, std::sync::atomic::Ordering::Relaxed);
                    // Agents reconnect to a replica that is still up.
                    for session in self.inner.sessions.all() {
                        session.close();
                    }
                    return;
                }
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(self.inner.settings.poll_interval) => {}
            }
        }
    }

    /// Asks the loop to look again now (after an API call changed something).
    fn wake(&self) {
        self.inner.wake.notify_one();
        self.inner.agents_wake.notify_waiters();
    }

    /// Records whether the engine answered (`error` is `None` or a refusal)
    /// or could not be reached, and logs each change once, not every attempt.
    /// When it is back, tasks waiting after failed attempts are retried now.
    fn note_engine(&self, error: Option<&engine::EngineError>) {
        let reachable = !matches!(error, Some(engine::EngineError::Unavailable(_)));
        let before = self
            .inner
            .engine_reachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(reachable);
        match (before, reachable, error) {
            (Some(true) | None, false, Some(e)) => tracing::warn!(
                error = %e,
                "task runner: the container engine is unreachable; tasks wait and are retried with backoff"
            ),
            (Some(false), true, _) => {
                tracing::info!("task runner: the container engine is reachable again");
                self.inner
                    .retries
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                self.wake();
            }
            _ => {}
        }
    }

    async fn tick(&self) -> Result<()> {
        self.check_embedded().await?;
        self.check_agents().await?;
        let live = self.live_tasks(None).await?;
        self.forget_retries(&live);
        // Tasks on other hosts are supervised where their agent is connected.
        let tasks: Vec<TaskRecord> = live.into_iter().filter(|t| self.on_embedded(t)).collect();
        let engine = self.inner.engine.clone();
        self.supervise(&engine, &tasks, true).await?;
        self.schedule().await?;
        self.prune().await
    }

    /// Refreshes the embedded instances when the engine came or went, the
    /// listeners' ports changed, or every [`EMBEDDED_INTERVAL`].
    async fn check_embedded(&self) -> Result<()> {
        if self.inner.settings.embedded.disabled {
            return Ok(());
        }
        let ping = self.inner.engine.ping().await;
        self.note_engine(ping.as_ref().err());
        let reachable = ping.is_ok();
        // A balancer read that fails keeps the ports last reserved: the
        // tick's other work goes on.
        let last = self
            .inner
            .embedded_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, _, ports)| ports.clone());
        let ports = match self.listener_ports().await {
            Ok(ports) => ports,
            Err(e) => {
                tracing::warn!(error = %e, "listener ports unknown; the last ones stay reserved");
                last.unwrap_or_default()
            }
        };
        let due = {
            let last = self
                .inner
                .embedded_checked
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            last.as_ref().is_none_or(|(at, was, reserved)| {
                *was != reachable || *reserved != ports || at.elapsed() >= EMBEDDED_INTERVAL
            })
        };
        if !due {
            return Ok(());
        }
        self.refresh_embedded(reachable, &ports).await?;
        *self
            .inner
            .embedded_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), reachable, ports));
        Ok(())
    }

    // ARNs.

    fn arn(&self, resource: &str) -> String {
        let s = &self.inner.settings;
        format!("arn:aws:ecs:{}:{}:{resource}", s.region, s.account)
    }

    pub fn cluster_arn(&self, cluster: &str) -> String {
        self.arn(&format!("cluster/{cluster}"))
    }

    pub fn task_arn(&self, cluster: &str, id: &str) -> String {
        self.arn(&format!("task/{cluster}/{id}"))
    }

    pub fn definition_arn(&self, family: &str, revision: i64) -> String {
        self.arn(&format!("task-definition/{family}:{revision}"))
    }

    pub fn service_arn(&self, cluster: &str, name: &str) -> String {
        self.arn(&format!("service/{cluster}/{name}"))
    }

    // Clusters.

    /// The cluster named by `cluster` (name or ARN; default `default`), which must exist.
    pub async fn cluster(&self, cluster: Option<&str>) -> Result<String> {
        let name = cluster_name(cluster);
        let known = self.inner.store.clusters().await?;
        if known.iter().any(|(n, _)| *n == name) {
            Ok(name)
        } else {
            Err(RunnerError::ClusterNotFound)
        }
    }

    pub async fn create_cluster(&self, name: &str) -> Result<(String, i64)> {
        if !definitions::valid_name(name) {
            return Err(RunnerError::InvalidParameter(
                "clusterName: up to 255 letters, numbers, hyphens and underscores".into(),
            ));
        }
        let created = self
            .inner
            .store
            .create_cluster(name, crate::registry::now_ms())
            .await?;
        // Its embedded instance, so RunTask works in it right away.
        self.ensure_embedded(name).await?;
        Ok((name.to_string(), created))
    }

    pub async fn clusters(&self) -> Result<Vec<(String, i64)>> {
        Ok(self.inner.store.clusters().await?)
    }

    pub async fn delete_cluster(&self, cluster: &str) -> Result<String> {
        let name = self.cluster(Some(cluster)).await?;
        let services = self.service_records(Some(&name)).await?;
        if services
            .iter()
            .any(|s| s.service.status != model::ServiceStatus::Inactive)
        {
            return Err(RunnerError::ClusterContainsServices);
        }
        if !self.live_tasks(Some(&name)).await?.is_empty() {
            return Err(RunnerError::ClusterContainsTasks);
        }
        // Registered hosts hold it; the embedded instance goes with it.
        let instances = self.instance_views(&name).await?;
        if instances
            .iter()
            .any(|v| !v.record.embedded && v.record.status != status::InstanceState::Inactive)
        {
            return Err(RunnerError::ClusterContainsInstances);
        }
        match self.inner.store.delete_cluster(&name).await {
            Ok(_) => Ok(name),
            Err(RunnerStoreError::ClusterInUse(_)) => Err(RunnerError::ClusterContainsTasks),
            Err(RunnerStoreError::Store(e)) => Err(e.into()),
        }
    }

    // Stored records.

    async fn task_record(&self, id: &str) -> Result<Option<TaskRecord>> {
        // Task ids are hex; anything else names no task (and PostgreSQL
        // refuses NUL in text, which would be a 500).
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Ok(None);
        }
        self.inner
            .store
            .task(id)
            .await?
            .map(|v| serde_json::from_str(&v.doc).map_err(corrupt))
            .transpose()
    }

    async fn live_tasks(&self, cluster: Option<&str>) -> Result<Vec<TaskRecord>> {
        self.task_records(cluster, true).await
    }

    async fn task_records(
        &self,
        cluster: Option<&str>,
        live_only: bool,
    ) -> Result<Vec<TaskRecord>> {
        self.inner
            .store
            .tasks(cluster, live_only)
            .await?
            .iter()
            .map(|v| serde_json::from_str(&v.doc).map_err(corrupt))
            .collect()
    }

    async fn service_records(&self, cluster: Option<&str>) -> Result<Vec<ServiceRecord>> {
        self.inner
            .store
            .services(cluster)
            .await?
            .iter()
            .map(|v| serde_json::from_str(&v.doc).map_err(corrupt))
            .collect()
    }

    /// Applies `change` to the stored task until it sticks (another writer
    /// may have changed it meanwhile); `change` returns false to leave it as
    /// is. The record as stored afterwards, `None` if there is no such task.
    async fn update_task(
        &self,
        id: &str,
        mut change: impl FnMut(&mut TaskRecord) -> bool,
    ) -> Result<Option<TaskRecord>> {
        loop {
            let Some(stored) = self.inner.store.task(id).await? else {
                return Ok(None);
            };
            let mut record: TaskRecord = serde_json::from_str(&stored.doc).map_err(corrupt)?;
            if !change(&mut record) {
                return Ok(Some(record));
            }
            record.task.version = stored.version + 1;
            let doc = serde_json::to_string(&record).map_err(corrupt)?;
            let pins = task_pins(&record);
            let row = task_row(&record, &doc, &pins);
            if self.inner.store.save_task(&row, stored.version).await? {
                return Ok(Some(record));
            }
        }
    }

    /// The same for a service.
    async fn modify_service(
        &self,
        cluster: &str,
        name: &str,
        mut change: impl FnMut(&mut ServiceRecord) -> Result<bool>,
    ) -> Result<Option<ServiceRecord>> {
        loop {
            let Some(stored) = self.inner.store.service(cluster, name).await? else {
                return Ok(None);
            };
            let mut record: ServiceRecord = serde_json::from_str(&stored.doc).map_err(corrupt)?;
            if !change(&mut record)? {
                return Ok(Some(record));
            }
            let doc = serde_json::to_string(&record).map_err(corrupt)?;
            let active = record.service.status != model::ServiceStatus::Inactive;
            let pins = if active {
                service_pins(&record)
            } else {
                Vec::new()
            };
            if self
                .inner
                .store
                .save_service(cluster, name, stored.version, &doc, active, &pins)
                .await?
            {
                return Ok(Some(record));
            }
        }
    }

    /// A short-lived token with which the Docker Engine pulls `repo` from
    /// Wharf; none while the registry runs open.
    fn pull_token(&self, repo: &str) -> Result<Option<String>> {
        if self.inner.auth.without_credentials().is_some() {
            return Ok(None);
        }
        let access = vec![Access {
            kind: "repository".into(),
            name: repo.to_string(),
            actions: vec!["pull".into()],
        }];
        let issued = self
            .inner
            .auth
            .tokens
            .issue("wharf-runner", access)
            .map_err(|e| RunnerError::Client(format!("cannot mint a pull token: {e}")))?;
        Ok(Some(issued.token))
    }

    /// Forgets tasks stopped longer ago than the retention, and removes their containers.
    async fn prune(&self) -> Result<()> {
        {
            let mut last = self
                .inner
                .pruned_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < PRUNE_INTERVAL) {
                return Ok(());
            }
            *last = Some(std::time::Instant::now());
        }
        // Records go only while the engine answers, or their containers would
        // be left behind (and a registry without Docker has nothing to prune).
        // Agents' hosts remove containers of pruned tasks themselves (their sweep).
        let local = !self.inner.settings.embedded.disabled;
        if local {
            let ping = self.inner.engine.ping().await;
            self.note_engine(ping.as_ref().err());
            if ping.is_err() {
                return Ok(());
            }
        }
        let before =
            crate::registry::now_ms() - self.inner.settings.retain_stopped.as_millis() as i64;
        let pruned = self.inner.store.prune_tasks(before).await?;
        if local {
            for id in pruned {
                for c in self.inner.engine.list(engine::LABEL_TASK, &id).await? {
                    self.inner.engine.remove(&c.id).await?;
                }
            }
        }
        Ok(())
    }
}

/// `name`, an ARN `arn:aws:ecs:...:cluster/name`, or nothing (`default`).
fn cluster_name(cluster: Option<&str>) -> String {
    match cluster {
        None | Some("") => "default".to_string(),
        Some(c) => c.rsplit_once(":cluster/").map_or(c, |(_, n)| n).to_string(),
    }
}

/// The images a live task runs.
fn task_pins(record: &TaskRecord) -> Pins {
    if !record.is_live() {
        return Vec::new();
    }
    record.resolved.values().filter_map(|r| pin_of(r)).collect()
}

fn service_pins(record: &ServiceRecord) -> Pins {
    record
        .service
        .deployments
        .iter()
        .filter_map(|d| record.images.get(&d.id))
        .flat_map(|images| images.values())
        .filter_map(|r| pin_of(r))
        .collect()
}

/// `host/repo@sha256:...` -> (repo, digest).
fn pin_of(reference: &str) -> Option<(crate::oci::RepoName, crate::oci::Digest)> {
    let (name, digest) = reference.split_once('@')?;
    let (_, repo) = name.split_once('/')?;
    Some((repo.parse().ok()?, digest.parse().ok()?))
}

fn task_row<'a>(record: &'a TaskRecord, doc: &'a str, pins: &'a Pins) -> TaskRow<'a> {
    TaskRow {
        id: &record.id,
        cluster: &record.cluster,
        service: record.service.as_deref(),
        client_token: record.client_token.as_deref(),
        live: record.is_live(),
        stopped_at_ms: record.task.stopped_at.map(|s| (s * 1000.0) as i64),
        doc,
        pins,
    }
}
