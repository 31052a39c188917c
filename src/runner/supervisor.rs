//! The task lifecycle: PROVISIONING → PENDING (pull) → ACTIVATING (create
//! and start containers in dependency order) → RUNNING → DEACTIVATING →
//! STOPPING (SIGTERM, SIGKILL after stopTimeout) → DEPROVISIONING → STOPPED.
//!
//! Starting and stopping are jobs spawned per task; while one runs, the loop
//! leaves the task alone. Every step is idempotent (containers are found by
//! name and label), so after a restart a job simply runs again.

use std::collections::HashMap;
use std::time::Duration;

use super::engine::{
    ContainerSpec, ContainerStatus, EngineError, LABEL_CLUSTER, LABEL_CONTAINER, LABEL_INSTANCE,
    LABEL_TASK, LABEL_TASK_ARN, Listed,
};
use super::model::{self, ContainerDefinition, TaskRecord};
use super::tasks::request_stop;
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
    /// One pass over the live tasks: start, stop, or watch each.
    pub(super) async fn supervise(&self, tasks: &[TaskRecord]) -> Result<()> {
        // Waits of tasks that are gone (stopped elsewhere, pruned) go too.
        let live: std::collections::HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        self.inner
            .retries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| live.contains(id.as_str()));
        if tasks.is_empty() {
            return Ok(());
        }
        // One listing serves every running task; if the engine cannot answer,
        // nothing is concluded about containers this time.
        let listed = self
            .inner
            .engine
            .list(LABEL_INSTANCE, &self.inner.instance)
            .await;
        self.note_engine(listed.as_ref().err());
        for task in tasks {
            if self.is_busy(&task.id) {
                continue;
            }
            let stopping = task.task.desired_status == model::STOPPED
                || [model::DEACTIVATING, model::STOPPING, model::DEPROVISIONING]
                    .contains(&task.task.last_status.as_str());
            if stopping {
                self.spawn_job(
                    &task.id,
                    |runner, id| async move { runner.stop_job(&id).await },
                );
            } else if task.task.last_status == model::RUNNING {
                if let Ok(listed) = &listed {
                    self.watch(task, listed).await?;
                }
            } else {
                self.spawn_job(
                    &task.id,
                    |runner, id| async move { runner.start_job(&id).await },
                );
            }
        }
        listed.map(|_| ()).map_err(RunnerError::from)
    }

    /// Watches a RUNNING task: container exits, vanished containers, health.
    async fn watch(&self, task: &TaskRecord, listed: &[Listed]) -> Result<()> {
        let mut statuses: HashMap<String, Option<ContainerStatus>> = HashMap::new();
        for c in &task.task.containers {
            if c.last_status == model::STOPPED {
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
                Some(l) => self.inner.engine.inspect(&l.id).await?,
            };
            statuses.insert(c.name.clone(), status);
        }
        if statuses.is_empty() {
            return Ok(());
        }
        let now = now();
        let updated = self.update_task(&task.id, |r| {
            if r.task.last_status != model::RUNNING {
                return false;
            }
            let mut changed = false;
            let mut essential_exit: Option<String> = None;
            for (name, status) in &statuses {
                let essential = r.plan.iter().any(|p| p.name == *name && p.essential);
                let Some(c) = r.container_mut(name) else { continue };
                match status {
                    Some(s) if s.running => {
                        if c.health_status != s.health {
                            c.health_status = s.health.into();
                            changed = true;
                        }
                    }
                    Some(s) => {
                        c.last_status = model::STOPPED.into();
                        c.exit_code = s.exit_code;
                        if s.oom_killed {
                            c.reason = Some("OutOfMemoryError: Container killed due to memory usage".into());
                        }
                        changed = true;
                        if essential {
                            essential_exit.get_or_insert_with(|| name.clone());
                        }
                    }
                    None => {
                        c.last_status = model::STOPPED.into();
                        c.reason = Some(
                            "The container no longer exists on the Docker Engine (removed while the task ran)".into(),
                        );
                        changed = true;
                        if essential {
                            essential_exit.get_or_insert_with(|| name.clone());
                        }
                    }
                }
            }
            r.task.health_status = task_health(r);
            if let Some(name) = essential_exit {
                request_stop(
                    r,
                    model::ESSENTIAL_CONTAINER_EXITED,
                    &format!("Essential container in task exited: {name}"),
                    now,
                );
            }
            changed
        })
        .await?;
        if updated.is_some_and(|r| r.task.desired_status == model::STOPPED) {
            self.wake();
        }
        Ok(())
    }

    /// Marks the task as failed to start; the stop job then cleans up.
    async fn fail_start(&self, id: &str, container: Option<&str>, reason: String) -> Result<()> {
        let now = now();
        self.update_task(id, |r| {
            if let Some(c) = container.and_then(|c| r.container_mut(c)) {
                c.reason = Some(reason.clone());
            }
            request_stop(r, model::TASK_FAILED_TO_START, &reason, now)
        })
        .await?;
        Ok(())
    }

    /// Sets a task's status if it is still meant to run; the record as
    /// stored then, `None` when it is not meant to run any more.
    async fn advance(
        &self,
        id: &str,
        change: impl Fn(&mut TaskRecord),
    ) -> Result<Option<TaskRecord>> {
        let record = self
            .update_task(id, |r| {
                if r.task.desired_status != model::RUNNING {
                    return false;
                }
                change(r);
                true
            })
            .await?;
        Ok(record.filter(|r| r.task.desired_status == model::RUNNING))
    }

    async fn start_job(&self, id: &str) -> Result<()> {
        let Some(record) = self.task_record(id).await? else {
            return Ok(());
        };
        // The loop's snapshot may be older than a start job that just ended.
        let starting = [model::PROVISIONING, model::PENDING, model::ACTIVATING];
        if record.task.desired_status != model::RUNNING
            || !starting.contains(&record.task.last_status.as_str())
        {
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
        // Resolve tags to digests (ECS's version consistency).
        let mut resolved = record.resolved.clone();
        for c in &record.plan {
            if resolved.contains_key(&c.name) {
                continue;
            }
            let image = match self.inner.hosts.parse(&c.image) {
                Ok(i) => i,
                Err(e) => {
                    return self
                        .fail_start(id, Some(&c.name), format!("CannotPullContainerError: {e}"))
                        .await;
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
                        return self.fail_start(id, Some(&c.name), reason).await;
                    }
                    Err(e) => return Err(RunnerError::Client(e.to_string())),
                },
            };
            resolved.insert(c.name.clone(), image.pinned(&digest).to_string());
        }
        let pull_started = now();
        let go_on = self
            .advance(id, |r| {
                r.task.last_status = model::PENDING.into();
                r.task.pull_started_at.get_or_insert(pull_started);
                r.resolved = resolved.clone();
                for c in &mut r.task.containers {
                    c.image_digest = resolved
                        .get(&c.name)
                        .and_then(|i| i.split_once('@'))
                        .map(|(_, d)| d.to_string());
                }
            })
            .await?;
        if go_on.is_none() {
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
            if let Err(e) = self.inner.engine.pull(reference, token).await {
                return self
                    .engine_failed(id, &c.name, "CannotPullContainerError", e)
                    .await;
            }
            pulled.push(reference);
        }
        let pull_stopped = now();
        let Some(record) = self
            .advance(id, |r| {
                r.task.pull_stopped_at.get_or_insert(pull_stopped);
                r.task.last_status = model::ACTIVATING.into();
            })
            .await?
        else {
            return Ok(());
        };
        // Create every container, then start them as their dependencies allow.
        let mut ids: HashMap<String, String> = HashMap::new();
        for c in &record.plan {
            let spec = self.spec(&record, c);
            match self.inner.engine.create(&spec).await {
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
        let runtime_ids = ids.clone();
        self.advance(id, |r| {
            for c in &mut r.task.containers {
                c.runtime_id = runtime_ids.get(&c.name).cloned();
            }
        })
        .await?;
        let order = start_order(&record.plan);
        for c in order {
            // Started before a restart interrupted this job: never run it twice.
            let started = record
                .task
                .containers
                .iter()
                .any(|k| k.name == c.name && k.last_status != model::PENDING);
            if started {
                continue;
            }
            if let Err(reason) = self.await_dependencies(&record, c, &ids).await? {
                return self.fail_start(id, Some(&c.name), reason).await;
            }
            if self.advance(id, |_| {}).await?.is_none() {
                return Ok(());
            }
            if let Err(e) = self.inner.engine.start(&ids[&c.name]).await {
                return self
                    .engine_failed(id, &c.name, "CannotStartContainerError", e)
                    .await;
            }
            let bindings = self
                .inner
                .engine
                .inspect(&ids[&c.name])
                .await?
                .map(|s| s.bindings)
                .unwrap_or_default();
            let name = c.name.clone();
            self.advance(id, |r| {
                if let Some(container) = r.container_mut(&name) {
                    container.last_status = model::RUNNING.into();
                    container.network_bindings = bindings.clone();
                }
            })
            .await?;
        }
        let started = now();
        self.advance(id, |r| {
            r.task.last_status = model::RUNNING.into();
            r.task.started_at.get_or_insert(started);
        })
        .await?;
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

    /// Waits until `c`'s dependsOn conditions hold; why not, if they never
    /// will. Fails (to be retried) only when the engine cannot be reached.
    async fn await_dependencies(
        &self,
        record: &TaskRecord,
        c: &ContainerDefinition,
        ids: &HashMap<String, String>,
    ) -> Result<std::result::Result<(), String>> {
        let deadline = tokio::time::Instant::now() + DEPENDENCY_TIMEOUT;
        for dep in &c.depends_on {
            let runtime = &ids[&dep.container_name];
            loop {
                let inspected = match self.inner.engine.inspect(runtime).await {
                    Ok(i) => i,
                    Err(e @ EngineError::Unavailable(_)) => return Err(e.into()),
                    Err(EngineError::Failed(m)) => {
                        return Ok(Err(format!("CannotStartContainerError: {m}")));
                    }
                };
                let Some(status) = inspected else {
                    return Ok(Err(format!(
                        "CannotStartContainerError: dependency {} vanished",
                        dep.container_name
                    )));
                };
                let started = status.running || status.exited;
                let met = match dep.condition.as_str() {
                    "START" => started,
                    "COMPLETE" => status.exited,
                    "SUCCESS" if status.exited && status.exit_code != Some(0) => {
                        return Ok(Err(format!(
                            "CannotStartContainerError: dependency {} exited with {:?}, not SUCCESS",
                            dep.container_name, status.exit_code
                        )));
                    }
                    "SUCCESS" => status.exited,
                    "HEALTHY" if status.health == "UNHEALTHY" || status.exited => {
                        return Ok(Err(format!(
                            "CannotStartContainerError: dependency {} did not become HEALTHY",
                            dep.container_name
                        )));
                    }
                    _ => status.health == "HEALTHY",
                };
                if met {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return Ok(Err(format!(
                        "CannotStartContainerError: timed out waiting for {} to reach {} (task {})",
                        dep.container_name, dep.condition, record.id
                    )));
                }
                tokio::time::sleep(DEPENDENCY_POLL).await;
            }
        }
        Ok(Ok(()))
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

    async fn stop_job(&self, id: &str) -> Result<()> {
        let Some(record) = self.task_record(id).await? else {
            return Ok(());
        };
        if !record.is_live() {
            return Ok(());
        }
        let stopping_at = now();
        let step = |status: &'static str| {
            move |r: &mut TaskRecord| {
                r.task.desired_status = model::STOPPED.into();
                r.task.stopping_at.get_or_insert(stopping_at);
                if order(&r.task.last_status) < order(status) {
                    r.task.last_status = status.into();
                }
                true
            }
        };
        self.update_task(id, step(model::DEACTIVATING)).await?;
        self.update_task(id, step(model::STOPPING)).await?;
        let listed = self.inner.engine.list(LABEL_TASK, id).await?;
        let stops = listed.iter().filter(|l| l.running).map(|l| {
            let timeout = record
                .plan
                .iter()
                .find(|p| p.name == l.container)
                .map_or(model::DEFAULT_STOP_TIMEOUT_SECONDS, |p| {
                    p.stop_timeout_seconds()
                });
            self.inner.engine.stop(&l.id, timeout)
        });
        for result in futures::future::join_all(stops).await {
            result?;
        }
        let execution_stopped = now();
        self.update_task(id, step(model::DEPROVISIONING)).await?;
        let mut statuses = HashMap::new();
        for l in &listed {
            statuses.insert(l.container.clone(), self.inner.engine.inspect(&l.id).await?);
        }
        let stopped = now();
        self.update_task(id, |r| {
            for c in &mut r.task.containers {
                if let Some(Some(s)) = statuses.get(&c.name) {
                    if c.exit_code.is_none() && s.exited && c.runtime_id.is_some() {
                        c.exit_code = s.exit_code;
                    }
                    if c.reason.is_none() {
                        c.reason = s.error.clone();
                    }
                }
                c.last_status = model::STOPPED.into();
            }
            r.task.last_status = model::STOPPED.into();
            r.task.desired_status = model::STOPPED.into();
            r.task.execution_stopped_at.get_or_insert(execution_stopped);
            r.task.stopped_at.get_or_insert(stopped);
            true
        })
        .await?;
        tracing::info!(task = %id, "task stopped");
        Ok(())
    }
}

/// Position of a status in the lifecycle.
fn order(status: &str) -> usize {
    [
        model::PROVISIONING,
        model::PENDING,
        model::ACTIVATING,
        model::RUNNING,
        model::DEACTIVATING,
        model::STOPPING,
        model::DEPROVISIONING,
        model::STOPPED,
    ]
    .iter()
    .position(|s| *s == status)
    .unwrap_or(0)
}

/// Containers in an order where each comes after what it depends on.
fn start_order(plan: &[ContainerDefinition]) -> Vec<&ContainerDefinition> {
    let mut ordered: Vec<&ContainerDefinition> = Vec::new();
    while ordered.len() < plan.len() {
        let before = ordered.len();
        for c in plan {
            if ordered.iter().any(|o| o.name == c.name) {
                continue;
            }
            if c.depends_on
                .iter()
                .all(|d| ordered.iter().any(|o| o.name == d.container_name))
            {
                ordered.push(c);
            }
        }
        if ordered.len() == before {
            // A cycle (refused at registration); start the rest as listed.
            let rest: Vec<&ContainerDefinition> = plan
                .iter()
                .filter(|c| !ordered.iter().any(|o| o.name == c.name))
                .collect();
            ordered.extend(rest);
        }
    }
    ordered
}

/// A task's health: UNHEALTHY if an essential container is, HEALTHY if every
/// essential container with a health check is, else UNKNOWN.
fn task_health(r: &TaskRecord) -> String {
    let checked: Vec<&str> = r
        .plan
        .iter()
        .filter(|p| p.essential && p.health_check.is_some())
        .filter_map(|p| r.task.containers.iter().find(|c| c.name == p.name))
        .map(|c| c.health_status.as_str())
        .collect();
    if checked.contains(&"UNHEALTHY") {
        "UNHEALTHY".into()
    } else if !checked.is_empty() && checked.iter().all(|h| *h == "HEALTHY") {
        "HEALTHY".into()
    } else {
        "UNKNOWN".into()
    }
}
