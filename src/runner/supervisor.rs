//! Drives tasks through their lifecycle (`lifecycle` decides, this module
//! talks to the engine, the registry and the store).
//!
//! Starting and stopping are jobs spawned per task; while one runs, the loop
//! leaves the task alone. Every step is idempotent (containers are found by
//! name and label), so after a restart a job simply runs again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::engine::{
    ContainerEngine, ContainerSpec, EngineError, LABEL_CLUSTER, LABEL_CONTAINER, LABEL_INSTANCE,
    LABEL_TASK, LABEL_TASK_ARN, Listed,
};
use super::lifecycle::{self, Gate, Seen, Step};
use super::model::{self, ContainerDefinition, ContainerState, TaskRecord, TaskStatus};
use super::{Result, Runner, RunnerError, seconds};
use crate::oci::Reference;
use crate::registry::{RegistryError, now_ms};

/// How long a container may wait for its dependencies' conditions.
const DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(300);
const DEPENDENCY_POLL: Duration = Duration::from_millis(250);

fn now() -> f64 {
    seconds(now_ms())
}

/// The Docker name of a task's container.
fn container_name(task_id: &str, container: &str) -> String {
    format!("wharf-{task_id}-{container}")
}

impl Runner {
    /// One pass over the live tasks on one host: start, stop, or watch
    /// each with `engine`, the host's. `local`: the embedded engine, whose
    /// reachability the runner reports.
    pub(super) async fn supervise(
        &self,
        engine: &Arc<dyn ContainerEngine>,
        tasks: &[TaskRecord],
        local: bool,
    ) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        // One listing serves every running task; if the engine cannot answer,
        // nothing is concluded about containers this time.
        let listed = engine.list(LABEL_INSTANCE, &self.inner.instance).await;
        if local {
            self.note_engine(listed.as_ref().err());
        }
        for task in tasks {
            if self.is_busy(&task.id) {
                continue;
            }
            match lifecycle::step(task) {
                Step::Stop => {
                    let engine = engine.clone();
                    self.spawn_job(&task.id, local, |runner, id| async move {
                        runner.stop_job(engine.as_ref(), &id).await
                    })
                }
                Step::Watch => {
                    if let Ok(listed) = &listed {
                        self.watch(engine.as_ref(), task, listed).await?;
                    }
                }
                Step::Start => {
                    let engine = engine.clone();
                    self.spawn_job(&task.id, local, |runner, id| async move {
                        runner.start_job(engine.as_ref(), &id).await
                    })
                }
            }
        }
        listed.map(|_| ()).map_err(RunnerError::from)
    }

    /// Watches a RUNNING task: container exits, vanished containers, health.
    async fn watch(
        &self,
        engine: &dyn ContainerEngine,
        task: &TaskRecord,
        listed: &[Listed],
    ) -> Result<()> {
        let seen = look(engine, task, listed).await?;
        if seen.is_empty() {
            return Ok(());
        }
        let now = now();
        let updated = self
            .update_task(&task.id, |r| lifecycle::observe(r, &seen, now).changed)
            .await?;
        // Stopping now (this observation or another writer asked): the stop job starts at once.
        if updated.is_some_and(|r| r.task.desired_status == model::DesiredStatus::Stopped) {
            self.wake();
        }
        Ok(())
    }

    /// Marks the task as failed to start; the stop job then cleans up.
    async fn fail_start(&self, id: &str, container: Option<&str>, reason: String) -> Result<()> {
        let now = now();
        self.update_task(id, |r| lifecycle::fail_start(r, container, &reason, now))
            .await?;
        Ok(())
    }

    /// Applies `change` to the task if it is still meant to run; the record
    /// as stored then, `None` when it is not meant to run any more.
    async fn advance(
        &self,
        id: &str,
        change: impl Fn(&mut TaskRecord),
    ) -> Result<Option<TaskRecord>> {
        let running = |r: &TaskRecord| r.task.desired_status == model::DesiredStatus::Running;
        let record = self
            .update_task(id, |r| {
                if !running(r) {
                    return false;
                }
                change(r);
                true
            })
            .await?;
        Ok(record.filter(running))
    }

    async fn start_job(&self, engine: &dyn ContainerEngine, id: &str) -> Result<()> {
        let Some(record) = self.task_record(id).await? else {
            return Ok(());
        };
        if !lifecycle::wants_start(&record) {
            return Ok(());
        }
        // Registered (or queued) before the operator's settings changed.
        if let Err(reason) = self
            .inner
            .settings
            .safety
            .check(&record.network_mode, &record.plan)
        {
            return self
                .fail_start(id, None, format!("CannotStartContainerError: {reason}"))
                .await;
        }
        let resolved = match self.resolve_images(&record).await? {
            Ok(resolved) => resolved,
            Err((container, reason)) => return self.fail_start(id, Some(&container), reason).await,
        };
        let pull_started = now();
        if self
            .advance(id, |r| lifecycle::pulling(r, &resolved, pull_started))
            .await?
            .is_none()
        {
            return Ok(());
        }
        let mut pulled: Vec<&String> = Vec::new();
        for c in &record.plan {
            let Some(reference) = resolved.get(&c.name) else {
                continue;
            };
            if pulled.contains(&reference) {
                continue;
            }
            let repo = super::pin_of(reference)
                .map(|(r, _)| r.to_string())
                .unwrap_or_default();
            let token = self.pull_token(&repo)?;
            if let Err(e) = engine.pull(reference, token).await {
                return self
                    .engine_failed(id, &c.name, "CannotPullContainerError", e)
                    .await;
            }
            pulled.push(reference);
        }
        let pull_stopped = now();
        let Some(record) = self
            .advance(id, |r| lifecycle::activating(r, pull_stopped))
            .await?
        else {
            return Ok(());
        };
        self.activate(engine, &record).await
    }

    /// Pins each container's image to its digest (ECS's version
    /// consistency); `Err((container, reason))` when one cannot be resolved.
    async fn resolve_images(
        &self,
        record: &TaskRecord,
    ) -> Result<std::result::Result<BTreeMap<String, String>, (String, String)>> {
        let mut resolved = record.resolved.clone();
        for c in &record.plan {
            if resolved.contains_key(&c.name) {
                continue;
            }
            let image = match self.inner.hosts.parse(&c.image) {
                Ok(i) => i,
                Err(e) => {
                    return Ok(Err((
                        c.name.clone(),
                        format!("CannotPullContainerError: {e}"),
                    )));
                }
            };
            let digest = match &image.reference {
                Reference::Digest(d) => d.clone(),
                reference => match self
                    .inner
                    .registry
                    .stat_manifest(&image.repo, reference)
                    .await
                {
                    Ok(m) => m.digest,
                    Err(RegistryError::ManifestUnknown(_) | RegistryError::NameUnknown(_)) => {
                        let reason = format!(
                            "CannotPullContainerError: pull image manifest has been retried 0 time(s): failed to resolve ref {image}: {image}: not found"
                        );
                        return Ok(Err((c.name.clone(), reason)));
                    }
                    Err(e) => return Err(RunnerError::Client(e.to_string())),
                },
            };
            resolved.insert(c.name.clone(), image.pinned(&digest).to_string());
        }
        Ok(Ok(resolved))
    }

    /// Creates every container of an ACTIVATING task, then starts them as
    /// their dependencies allow; RUNNING when all have started.
    async fn activate(&self, engine: &dyn ContainerEngine, record: &TaskRecord) -> Result<()> {
        let id = record.id.as_str();
        let mut ids: HashMap<String, String> = HashMap::new();
        for c in &record.plan {
            let spec = self.spec(record, c);
            match engine.create(&spec).await {
                Ok(runtime) => {
                    ids.insert(c.name.clone(), runtime);
                }
                Err(e) => {
                    return self
                        .engine_failed(id, &c.name, "CannotCreateContainerError", e)
                        .await;
                }
            }
        }
        self.advance(id, |r| lifecycle::created(r, &ids)).await?;
        for c in lifecycle::start_order(&record.plan) {
            if lifecycle::already_started(record, &c.name) {
                continue;
            }
            let waited =
                await_dependencies(engine, id, c, &ids, DEPENDENCY_TIMEOUT, DEPENDENCY_POLL).await;
            match waited {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return self.fail_start(id, Some(&c.name), reason).await,
                Err(e) => return Err(e.into()),
            }
            if self.advance(id, |_| {}).await?.is_none() {
                return Ok(());
            }
            let Some(runtime) = ids.get(&c.name) else {
                let reason = format!("CannotStartContainerError: {} was not created", c.name);
                return self.fail_start(id, Some(&c.name), reason).await;
            };
            if let Err(e) = engine.start(runtime).await {
                return self
                    .engine_failed(id, &c.name, "CannotStartContainerError", e)
                    .await;
            }
            let bindings = engine
                .inspect(runtime)
                .await?
                .map(|s| s.bindings)
                .unwrap_or_default();
            self.advance(id, |r| lifecycle::container_started(r, &c.name, &bindings))
                .await?;
        }
        let started = now();
        self.advance(id, |r| lifecycle::running(r, started)).await?;
        tracing::info!(task = %id, "task running");
        Ok(())
    }

    /// A step the engine refused fails the task's start; one it could not be
    /// asked (the engine is unreachable) is retried later, the task waiting.
    async fn engine_failed(
        &self,
        id: &str,
        container: &str,
        kind: &str,
        e: EngineError,
    ) -> Result<()> {
        match e {
            EngineError::Unavailable(_) => Err(e.into()),
            EngineError::Failed(m) => {
                self.fail_start(id, Some(container), format!("{kind}: {m}"))
                    .await
            }
        }
    }

    fn spec(&self, record: &TaskRecord, c: &ContainerDefinition) -> ContainerSpec {
        let mut labels: HashMap<String, String> = c.docker_labels.clone().into_iter().collect();
        labels.insert(LABEL_INSTANCE.into(), self.inner.instance.clone());
        labels.insert(LABEL_TASK.into(), record.id.clone());
        labels.insert(LABEL_CONTAINER.into(), c.name.clone());
        labels.insert(LABEL_CLUSTER.into(), record.cluster.clone());
        labels.insert(LABEL_TASK_ARN.into(), record.task.task_arn.clone());
        const MIB: i64 = 1024 * 1024;
        // The task's memory is each container's ceiling when it names none.
        let memory = c.memory.map(i64::from).or(record.memory_mib);
        ContainerSpec {
            name: container_name(&record.id, &c.name),
            image: record
                .resolved
                .get(&c.name)
                .cloned()
                .unwrap_or_else(|| c.image.clone()),
            labels,
            entrypoint: (!c.entry_point.is_empty()).then(|| c.entry_point.clone()),
            cmd: (!c.command.is_empty()).then(|| c.command.clone()),
            env: c
                .environment
                .iter()
                .map(|kv| format!("{}={}", kv.name, kv.value))
                .collect(),
            working_dir: c.working_directory.clone(),
            user: c.user.clone(),
            // The kernel's minimum is 2 shares; 0 leaves Docker's default.
            cpu_shares: (c.cpu > 0).then(|| i64::from(c.cpu.max(2))),
            nano_cpus: record.cpu_units.map(|u| u * 1_000_000_000 / 1024),
            memory_bytes: memory.map(|m| m * MIB),
            memory_reservation_bytes: c.memory_reservation.map(|m| i64::from(m) * MIB),
            network_mode: record.network_mode.clone(),
            ports: c.port_mappings.clone(),
            publish_address: self.inner.settings.safety.publish_address.to_string(),
            cap_add: super::safety::added_capabilities(c),
            health: c
                .health_check
                .clone()
                .filter(|h| h.command.first().map(String::as_str) != Some("NONE")),
            stop_timeout: c.stop_timeout_seconds(),
        }
    }

    async fn stop_job(&self, engine: &dyn ContainerEngine, id: &str) -> Result<()> {
        let Some(record) = self.task_record(id).await? else {
            return Ok(());
        };
        if !record.is_live() {
            return Ok(());
        }
        let stopping_at = now();
        let step = |status: TaskStatus| {
            move |r: &mut TaskRecord| {
                lifecycle::stopping(r, status, stopping_at);
                true
            }
        };
        self.update_task(id, step(TaskStatus::Deactivating)).await?;
        // Out of its load balancers first: no request reaches a stopping task.
        // A load balancer that cannot be read must not keep the task from stopping.
        if let Err(e) = self.drain_targets(id).await {
            tracing::warn!(task = %id, error = %e, "task stops without draining its targets");
        }
        self.update_task(id, step(TaskStatus::Stopping)).await?;
        let listed = engine.list(LABEL_TASK, id).await?;
        let stops = listed.iter().filter(|l| l.running).map(|l| {
            let timeout = record
                .plan
                .iter()
                .find(|p| p.name == l.container)
                .map_or(model::DEFAULT_STOP_TIMEOUT_SECONDS, |p| {
                    p.stop_timeout_seconds()
                });
            engine.stop(&l.id, timeout)
        });
        for result in futures::future::join_all(stops).await {
            result?;
        }
        let execution_stopped = now();
        self.update_task(id, step(TaskStatus::Deprovisioning))
            .await?;
        let mut inspected = HashMap::new();
        for l in &listed {
            inspected.insert(l.container.clone(), engine.inspect(&l.id).await?);
        }
        let stopped = now();
        self.update_task(id, |r| {
            lifecycle::stopped(r, &inspected, execution_stopped, stopped);
            true
        })
        .await?;
        tracing::info!(task = %id, "task stopped");
        Ok(())
    }
}

/// What the engine shows of a RUNNING task's containers that may have
/// changed: each not yet STOPPED, except running ones without a health check
/// (nothing to learn from inspecting them). `listed`: the engine's listing.
pub(super) async fn look(
    engine: &dyn ContainerEngine,
    task: &TaskRecord,
    listed: &[Listed],
) -> std::result::Result<HashMap<String, Seen>, EngineError> {
    let mut seen = HashMap::new();
    for c in &task.task.containers {
        if c.last_status == ContainerState::Stopped {
            continue;
        }
        let found = listed
            .iter()
            .find(|l| l.task == task.id && l.container == c.name);
        let has_health = task
            .plan
            .iter()
            .any(|p| p.name == c.name && p.health_check.is_some());
        let status = match found {
            None => None,
            Some(l) if l.running && !has_health => continue,
            Some(l) => engine.inspect(&l.id).await?,
        };
        seen.insert(c.name.clone(), Seen::of(status.as_ref()));
    }
    Ok(seen)
}

/// Waits until `c`'s dependsOn conditions hold (`ids`: engine ids of task
/// `task`'s containers by name), up to `timeout`; why not, if they never
/// will. Fails only when the engine cannot be reached (the job is retried).
pub(super) async fn await_dependencies(
    engine: &dyn ContainerEngine,
    task: &str,
    c: &ContainerDefinition,
    ids: &HashMap<String, String>,
    timeout: Duration,
    poll: Duration,
) -> std::result::Result<std::result::Result<(), String>, EngineError> {
    let deadline = tokio::time::Instant::now() + timeout;
    for dep in &c.depends_on {
        let name = &dep.container_name;
        // Checked at registration; a record that names no container of its task fails it.
        let Some(runtime) = ids.get(name) else {
            return Ok(Err(format!(
                "CannotStartContainerError: dependsOn names {name}, not a container of the task"
            )));
        };
        loop {
            let inspected = match engine.inspect(runtime).await {
                Ok(i) => i,
                Err(e @ EngineError::Unavailable(_)) => return Err(e),
                Err(EngineError::Failed(m)) => {
                    return Ok(Err(format!("CannotStartContainerError: {m}")));
                }
            };
            match lifecycle::gate(name, dep.condition, inspected.as_ref()) {
                Gate::Met => break,
                Gate::Never(reason) => return Ok(Err(reason)),
                Gate::Wait => {}
            }
            if tokio::time::Instant::now() > deadline {
                return Ok(Err(format!(
                    "CannotStartContainerError: timed out waiting for {name} to reach {} (task {task})",
                    dep.condition
                )));
            }
            tokio::time::sleep(poll).await;
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
