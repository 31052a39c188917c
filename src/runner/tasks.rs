//! Tasks as the API sees them: launching (RunTask and the scheduler),
//! stopping, describing, listing, and reading their containers' logs.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::engine::{EngineError, LABEL_TASK};
use super::model::{
    Container, ContainerDefinition, ContainerOverride, ContainerState, DesiredStatus, HealthStatus,
    PlacementConstraint, PlacementStrategy, StopCode, Task, TaskDefinition, TaskOverride,
    TaskRecord, TaskStatus,
};
use super::placing::{PlacementFailure, demand, parse_rules};
use super::{Result, Runner, RunnerError, corrupt, seconds, task_pins, task_row};

/// ECS allows at most this many tasks per RunTask.
const MAX_COUNT: i64 = 10;

/// What to launch.
#[derive(Debug, Clone, Default)]
pub struct RunTask {
    pub cluster: String,
    pub count: i64,
    pub started_by: Option<String>,
    pub group: Option<String>,
    pub overrides: TaskOverride,
    pub client_token: Option<String>,
    /// Set by the scheduler: the service and deployment the tasks belong to,
    /// and the images the deployment pinned.
    pub service: Option<String>,
    pub deployment: Option<String>,
    pub resolved: BTreeMap<String, String>,
    /// `placementStrategy` and `placementConstraints` (a service's default
    /// strategy applies when it gives none).
    pub placement_strategy: Vec<PlacementStrategy>,
    pub placement_constraints: Vec<PlacementConstraint>,
    /// StartTask: one task on each of these instances (ids or ARNs), no
    /// placement rules; `count` is ignored.
    pub instances: Option<Vec<String>>,
}

/// What a launch did: the tasks recorded, and one failure per task that
/// could not be placed.
#[derive(Debug, Clone, Default)]
pub struct Launched {
    pub tasks: Vec<Task>,
    pub failures: Vec<PlacementFailure>,
}

/// ListTasks filters.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub family: Option<String>,
    pub service: Option<String>,
    pub started_by: Option<String>,
    /// RUNNING (default), PENDING or STOPPED.
    pub desired_status: Option<String>,
}

fn apply(definition: &ContainerDefinition, o: Option<&ContainerOverride>) -> ContainerDefinition {
    let mut c = definition.clone();
    let Some(o) = o else { return c };
    if let Some(command) = &o.command {
        c.command = command.clone();
    }
    for kv in &o.environment {
        c.environment.retain(|e| e.name != kv.name);
        c.environment.push(kv.clone());
    }
    if let Some(cpu) = o.cpu {
        c.cpu = cpu;
    }
    if o.memory.is_some() {
        c.memory = o.memory;
    }
    if o.memory_reservation.is_some() {
        c.memory_reservation = o.memory_reservation;
    }
    c
}

/// The definition's containers with `overrides` applied, in definition
/// order; an override must name one of them.
fn plan_of(
    definition: &TaskDefinition,
    overrides: &TaskOverride,
) -> Result<Vec<ContainerDefinition>> {
    for o in &overrides.container_overrides {
        if !definition
            .container_definitions
            .iter()
            .any(|c| c.name == o.name)
        {
            return Err(RunnerError::InvalidParameter(format!(
                "Override for container named {} is not a container in the TaskDefinition.",
                o.name
            )));
        }
    }
    Ok(definition
        .container_definitions
        .iter()
        .map(|c| {
            let o = overrides
                .container_overrides
                .iter()
                .find(|o| o.name == c.name);
            apply(c, o)
        })
        .collect())
}

/// The task group: RunTask's `group`, else `family:FAMILY`.
fn group_of(definition: &TaskDefinition, run: &RunTask) -> String {
    run.group
        .clone()
        .unwrap_or_else(|| format!("family:{}", definition.family))
}

/// The task id of `task` (an id or an ARN `.../task/cluster/id`).
pub(crate) fn task_id(task: &str) -> &str {
    task.rsplit('/').next().unwrap_or(task)
}

impl Runner {
    /// Places `count` new tasks of `definition` and records those placed
    /// (PROVISIONING); the loop starts them.
    pub async fn launch(&self, definition: &TaskDefinition, run: RunTask) -> Result<Launched> {
        let count = run.instances.as_ref().map_or(run.count, |i| i.len() as i64);
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(RunnerError::InvalidParameter(format!(
                "count must be between 1 and {MAX_COUNT}"
            )));
        }
        if let Some(token) = &run.client_token {
            // A retry is the same request: tasks of another definition under the
            // same token (someone else's, perhaps) are not its answer.
            let earlier = self
                .inner
                .store
                .tasks_by_client_token(&run.cluster, token)
                .await?
                .iter()
                .map(|v| {
                    serde_json::from_str::<TaskRecord>(&v.doc)
                        .map(|r| r.task)
                        .map_err(corrupt)
                })
                .collect::<Result<Vec<Task>>>()?;
            let earlier: Vec<Task> = earlier
                .into_iter()
                .filter(|t| t.task_definition_arn == definition.task_definition_arn)
                .collect();
            if !earlier.is_empty() {
                return Ok(Launched {
                    tasks: earlier,
                    failures: Vec::new(),
                });
            }
        }
        let plan = plan_of(definition, &run.overrides)?;
        let rules = parse_rules(&run.placement_strategy, &run.placement_constraints)?;
        let group = group_of(definition, &run);
        let demand = demand(definition, &plan, &group);
        let (placed, failures) = match &run.instances {
            Some(instances) => self.place_on(&run.cluster, &demand, instances).await?,
            None => {
                self.place(
                    &run.cluster,
                    &demand,
                    run.count as usize,
                    &rules,
                    run.service.is_some(),
                )
                .await?
            }
        };
        let now = seconds(crate::registry::now_ms());
        let records: Vec<TaskRecord> = placed
            .into_iter()
            .map(|instance| self.new_record(definition, &run, &plan, now, instance))
            .collect();
        if records.is_empty() {
            return Ok(Launched {
                tasks: Vec::new(),
                failures,
            });
        }
        let docs = records
            .iter()
            .map(|r| serde_json::to_string(r).map_err(corrupt))
            .collect::<Result<Vec<_>>>()?;
        let pins: Vec<_> = records.iter().map(task_pins).collect();
        let rows: Vec<_> = records
            .iter()
            .zip(&docs)
            .zip(&pins)
            .map(|((r, d), p)| task_row(r, d, p))
            .collect();
        self.inner.store.insert_tasks(&rows).await?;
        self.wake();
        Ok(Launched {
            tasks: records.into_iter().map(|r| r.task).collect(),
            failures,
        })
    }

    /// A new task of `definition` (PROVISIONING, meant to run) as `run` asks.
    fn new_record(
        &self,
        definition: &TaskDefinition,
        run: &RunTask,
        plan: &[ContainerDefinition],
        now: f64,
        container_instance_arn: String,
    ) -> TaskRecord {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let task_arn = self.task_arn(&run.cluster, &id);
        let containers = plan
            .iter()
            .map(|c| Container {
                container_arn: self.arn(&format!(
                    "container/{}/{id}/{}",
                    run.cluster,
                    uuid::Uuid::new_v4()
                )),
                task_arn: task_arn.clone(),
                name: c.name.clone(),
                image: c.image.clone(),
                image_digest: run
                    .resolved
                    .get(&c.name)
                    .and_then(|r| r.split_once('@'))
                    .map(|(_, d)| d.to_string()),
                runtime_id: None,
                last_status: ContainerState::Pending,
                exit_code: None,
                reason: None,
                network_bindings: Vec::new(),
                health_status: HealthStatus::Unknown,
                cpu: Some(c.cpu.to_string()),
                memory: c.memory.map(|m| m.to_string()),
                memory_reservation: c.memory_reservation.map(|m| m.to_string()),
            })
            .collect();
        let task = Task {
            task_arn,
            task_definition_arn: definition.task_definition_arn.clone(),
            cluster_arn: self.cluster_arn(&run.cluster),
            container_instance_arn: Some(container_instance_arn),
            containers,
            last_status: TaskStatus::Provisioning,
            desired_status: DesiredStatus::Running,
            health_status: HealthStatus::Unknown,
            launch_type: "EC2".into(),
            cpu: definition.cpu.clone(),
            memory: definition.memory.clone(),
            overrides: run.overrides.clone(),
            created_at: now,
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            stopping_at: None,
            execution_stopped_at: None,
            stopped_at: None,
            started_by: run.started_by.clone(),
            group: Some(group_of(definition, run)),
            stop_code: None,
            stopped_reason: None,
            version: 1,
        };
        TaskRecord {
            task,
            id,
            cluster: run.cluster.clone(),
            family: definition.family.clone(),
            network_mode: definition.network_mode.clone(),
            cpu_units: definition
                .cpu
                .as_deref()
                .and_then(|c| super::definitions::units(c, "vCPU", 1024.0)),
            memory_mib: definition
                .memory
                .as_deref()
                .and_then(|m| super::definitions::units(m, "GB", 1024.0)),
            plan: plan.to_vec(),
            resolved: run.resolved.clone(),
            service: run.service.clone(),
            deployment: run.deployment.clone(),
            client_token: run.client_token.clone(),
            accounted: false,
        }
    }

    /// Asks a task to stop (SIGTERM, then SIGKILL after its stopTimeout).
    pub async fn stop_task(
        &self,
        cluster: &str,
        task: &str,
        stop_code: StopCode,
        reason: &str,
    ) -> Result<Task> {
        let id = task_id(task);
        let now = seconds(crate::registry::now_ms());
        let record = self
            .update_task(id, |r| {
                if r.cluster != cluster {
                    return false;
                }
                super::lifecycle::request_stop(r, stop_code, reason, now)
            })
            .await?
            .filter(|r| r.cluster == cluster)
            .ok_or_else(|| {
                RunnerError::InvalidParameter("The referenced task was not found.".into())
            })?;
        self.wake();
        Ok(record.task)
    }

    /// A task (an id or an ARN), in `cluster` when one is given.
    pub async fn task(&self, cluster: Option<&str>, task: &str) -> Result<Option<Task>> {
        Ok(self
            .task_record(task_id(task))
            .await?
            .filter(|r| cluster.is_none_or(|c| r.cluster == c))
            .map(|r| r.task))
    }

    /// The cluster's tasks that pass `filter`.
    pub async fn list_tasks(&self, cluster: &str, filter: &TaskFilter) -> Result<Vec<Task>> {
        let desired = match filter.desired_status.as_deref() {
            None => DesiredStatus::Running,
            Some(d) => DesiredStatus::parse(d).ok_or_else(|| {
                RunnerError::InvalidParameter(format!(
                    "desiredStatus {d:?}: RUNNING, PENDING or STOPPED"
                ))
            })?,
        };
        let records = self
            .task_records(Some(cluster), desired != DesiredStatus::Stopped)
            .await?;
        Ok(records
            .into_iter()
            .filter(|r| match desired {
                // ECS lists tasks not yet running under PENDING.
                DesiredStatus::Pending => {
                    r.task.desired_status == DesiredStatus::Running
                        && r.task.last_status.is_starting()
                }
                d => r.task.desired_status == d,
            })
            .filter(|r| filter.family.as_ref().is_none_or(|f| *f == r.family))
            .filter(|r| {
                filter
                    .service
                    .as_ref()
                    .is_none_or(|s| r.service.as_ref() == Some(s))
            })
            .filter(|r| {
                filter
                    .started_by
                    .as_ref()
                    .is_none_or(|s| r.task.started_by.as_ref() == Some(s))
            })
            .map(|r| r.task)
            .collect())
    }

    /// The logs of a task's containers (one, or all with a header each).
    pub async fn logs(
        &self,
        task: &str,
        container: Option<&str>,
        tail: Option<usize>,
    ) -> Result<BoxStream<'static, std::result::Result<Bytes, EngineError>>> {
        let id = task_id(task);
        let record = self.task_record(id).await?.ok_or_else(|| {
            RunnerError::InvalidParameter("The referenced task was not found.".into())
        })?;
        let engine = self.engine_for(&record).ok_or_else(|| {
            EngineError::Unavailable("the container instance's agent is not connected".into())
        })?;
        let listed = engine.list(LABEL_TASK, id).await?;
        task_logs(engine.as_ref(), &record.plan, listed, container, tail)
    }
}

/// Logs of the listed containers of a task, in definition order.
pub fn task_logs(
    engine: &dyn super::engine::ContainerEngine,
    plan: &[ContainerDefinition],
    listed: Vec<super::engine::Listed>,
    container: Option<&str>,
    tail: Option<usize>,
) -> Result<BoxStream<'static, std::result::Result<Bytes, EngineError>>> {
    let mut names: Vec<&str> = plan.iter().map(|c| c.name.as_str()).collect();
    if plan.is_empty() {
        names = listed.iter().map(|l| l.container.as_str()).collect();
    }
    if let Some(c) = container {
        if !names.contains(&c) {
            return Err(RunnerError::InvalidParameter(format!(
                "the task has no container {c:?}"
            )));
        }
        names = vec![c];
    }
    let several = names.len() > 1;
    let mut streams = Vec::new();
    for name in names {
        let Some(found) = listed.iter().find(|l| l.container == name) else {
            continue;
        };
        if several {
            let header = Bytes::from(format!("==> {name} <==\n"));
            streams.push(futures::stream::once(async move { Ok(header) }).boxed());
        }
        streams.push(engine.logs(&found.id, tail));
    }
    if streams.is_empty() {
        return Err(RunnerError::InvalidParameter(
            "the task's containers no longer exist on the container engine".into(),
        ));
    }
    Ok(futures::stream::iter(streams).flatten().boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_to_the_containers_they_name() {
        let definition: TaskDefinition = serde_json::from_value(serde_json::json!({
            "taskDefinitionArn": "arn:td/web:1", "family": "web", "revision": 1,
            "status": "ACTIVE", "networkMode": "bridge", "requiresCompatibilities": [],
            "compatibilities": ["EC2"], "registeredAt": 1.0,
            "containerDefinitions": [
                {"name": "app", "image": "h/a", "memory": 64, "command": ["serve"],
                 "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "side", "image": "h/s", "memory": 32}
            ]
        }))
        .unwrap();
        let overrides: TaskOverride = serde_json::from_value(serde_json::json!({
            "containerOverrides": [{"name": "app", "command": ["migrate"], "memory": 128,
                "environment": [{"name": "B", "value": "3"}]}]
        }))
        .unwrap();
        let plan = plan_of(&definition, &overrides).unwrap();
        assert_eq!(plan[0].command, ["migrate"]);
        assert_eq!(plan[0].memory, Some(128));
        let env: Vec<(&str, &str)> = plan[0]
            .environment
            .iter()
            .map(|kv| (kv.name.as_str(), kv.value.as_str()))
            .collect();
        assert_eq!(env, [("A", "1"), ("B", "3")]);
        assert_eq!(plan[1], definition.container_definitions[1]);
        let stranger: TaskOverride =
            serde_json::from_value(serde_json::json!({"containerOverrides": [{"name": "ghost"}]}))
                .unwrap();
        assert!(matches!(
            plan_of(&definition, &stranger),
            Err(RunnerError::InvalidParameter(_))
        ));
    }
}
