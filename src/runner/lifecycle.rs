//! The task state machine as pure functions: what to do with a task on a
//! pass, how what the engine shows of its containers changes the stored
//! record, when a dependency's condition is met, and each step of starting
//! and stopping. No engine, registry or store calls here: the supervisor
//! does those and applies these functions to the record it stores.
//!
//! PROVISIONING → PENDING (pull) → ACTIVATING (create, start in dependency
//! order) → RUNNING → DEACTIVATING → STOPPING → DEPROVISIONING → STOPPED.

use std::collections::HashMap;

use super::engine::ContainerStatus;
use super::model::{
    ContainerDefinition, ContainerState, DependencyCondition, DesiredStatus, HealthStatus,
    NetworkBinding, StopCode, TaskRecord, TaskStatus,
};

/// What the supervisor does with a live task on a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Run (or resume) the start job: the task is before RUNNING and meant to run.
    Start,
    /// Compare its containers with the engine's.
    Watch,
    /// Run (or resume) the stop job: a stop was asked for, or one is under way.
    Stop,
}

/// The step for a live task.
pub fn step(record: &TaskRecord) -> Step {
    let t = &record.task;
    if t.desired_status == DesiredStatus::Stopped || t.last_status.is_stopping() {
        Step::Stop
    } else if t.last_status == TaskStatus::Running {
        Step::Watch
    } else {
        Step::Start
    }
}

/// Whether a start job has anything to do (the loop's snapshot may be older
/// than a start job that just ended).
pub fn wants_start(record: &TaskRecord) -> bool {
    record.task.desired_status == DesiredStatus::Running && record.task.last_status.is_starting()
}

/// What the engine shows of one container of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Running; UNKNOWN health without a health check (or while it starts).
    Running(HealthStatus),
    /// Not running: it ended (or never ran).
    Ended {
        exit_code: Option<i32>,
        oom_killed: bool,
    },
    /// The engine has no such container.
    Missing,
}

impl Seen {
    pub fn of(status: Option<&ContainerStatus>) -> Seen {
        match status {
            None => Seen::Missing,
            Some(s) if s.running => Seen::Running(s.health),
            Some(s) => Seen::Ended {
                exit_code: s.exit_code,
                oom_killed: s.oom_killed,
            },
        }
    }
}

/// How an observation changed a record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transition {
    /// The record changed and must be stored.
    pub changed: bool,
    /// A stop was asked for: the stop job should run now.
    pub stop: bool,
}

pub const OOM_REASON: &str = "OutOfMemoryError: Container killed due to memory usage";
pub const VANISHED_REASON: &str =
    "The container no longer exists on the Docker Engine (removed while the task ran)";

/// Applies what the engine shows (`seen`, by container name; containers not
/// in it are unchanged) to a RUNNING task: health changes, exits, vanished
/// containers. An essential container that ended stops the task
/// (EssentialContainerExited, naming the first in definition order).
pub fn observe(r: &mut TaskRecord, seen: &HashMap<String, Seen>, now: f64) -> Transition {
    if r.task.last_status != TaskStatus::Running {
        return Transition::default();
    }
    let mut changed = false;
    let mut essential_exit: Option<String> = None;
    let plan = &r.plan;
    for c in &mut r.task.containers {
        let Some(seen) = seen.get(&c.name) else {
            continue;
        };
        let essential = plan.iter().any(|p| p.name == c.name && p.essential);
        match seen {
            Seen::Running(health) => {
                if c.health_status != *health {
                    c.health_status = *health;
                    changed = true;
                }
                continue;
            }
            Seen::Ended {
                exit_code,
                oom_killed,
            } => {
                c.last_status = ContainerState::Stopped;
                c.exit_code = *exit_code;
                if *oom_killed {
                    c.reason = Some(OOM_REASON.into());
                }
            }
            Seen::Missing => {
                c.last_status = ContainerState::Stopped;
                c.reason = Some(VANISHED_REASON.into());
            }
        }
        changed = true;
        if essential {
            essential_exit.get_or_insert_with(|| c.name.clone());
        }
    }
    r.task.health_status = task_health(r);
    let stop = essential_exit.is_some_and(|name| {
        request_stop(
            r,
            StopCode::EssentialContainerExited,
            &format!("Essential container in task exited: {name}"),
            now,
        )
    });
    Transition { changed, stop }
}

/// Marks a live task to be stopped; false when it already was.
pub fn request_stop(r: &mut TaskRecord, code: StopCode, reason: &str, now: f64) -> bool {
    if !r.is_live() || r.task.desired_status == DesiredStatus::Stopped {
        return false;
    }
    r.task.desired_status = DesiredStatus::Stopped;
    r.task.stop_code = Some(code);
    r.task.stopped_reason = Some(reason.into());
    r.task.stopping_at.get_or_insert(now);
    true
}

/// A task that cannot start: the reason goes on the container at fault (if
/// named) and the task is bound to stop (TaskFailedToStart).
pub fn fail_start(r: &mut TaskRecord, container: Option<&str>, reason: &str, now: f64) -> bool {
    if let Some(c) = container.and_then(|c| r.container_mut(c)) {
        c.reason = Some(reason.to_string());
    }
    request_stop(r, StopCode::TaskFailedToStart, reason, now)
}

/// Images resolved: PENDING (pulling), each container showing its digest.
pub fn pulling(
    r: &mut TaskRecord,
    resolved: &std::collections::BTreeMap<String, String>,
    now: f64,
) {
    r.task.last_status = TaskStatus::Pending;
    r.task.pull_started_at.get_or_insert(now);
    r.resolved = resolved.clone();
    for c in &mut r.task.containers {
        c.image_digest = resolved
            .get(&c.name)
            .and_then(|i| i.split_once('@'))
            .map(|(_, d)| d.to_string());
    }
}

/// Images pulled: ACTIVATING (containers are created and started).
pub fn activating(r: &mut TaskRecord, now: f64) {
    r.task.pull_stopped_at.get_or_insert(now);
    r.task.last_status = TaskStatus::Activating;
}

/// Containers created: each records its engine id.
pub fn created(r: &mut TaskRecord, runtime_ids: &HashMap<String, String>) {
    for c in &mut r.task.containers {
        c.runtime_id = runtime_ids.get(&c.name).cloned();
    }
}

/// Whether container `name` was started by an earlier attempt (a restart
/// interrupted the job): it must never run twice.
pub fn already_started(r: &TaskRecord, name: &str) -> bool {
    r.task
        .containers
        .iter()
        .any(|k| k.name == name && k.last_status != ContainerState::Pending)
}

/// One container started, with its ports as the engine bound them.
pub fn container_started(r: &mut TaskRecord, name: &str, bindings: &[NetworkBinding]) {
    if let Some(c) = r.container_mut(name) {
        c.last_status = ContainerState::Running;
        c.network_bindings = bindings.to_vec();
    }
}

/// Every container started: the task is RUNNING.
pub fn running(r: &mut TaskRecord, now: f64) {
    r.task.last_status = TaskStatus::Running;
    r.task.started_at.get_or_insert(now);
}

/// A step of the stop job: the task is meant to stop and is at least at
/// `status` (never moved back).
pub fn stopping(r: &mut TaskRecord, status: TaskStatus, now: f64) {
    r.task.desired_status = DesiredStatus::Stopped;
    r.task.stopping_at.get_or_insert(now);
    if r.task.last_status < status {
        r.task.last_status = status;
    }
}

/// The stop job's end: every container STOPPED with what the engine last
/// showed of it (`inspected`, by container name), the task STOPPED.
pub fn stopped(
    r: &mut TaskRecord,
    inspected: &HashMap<String, Option<ContainerStatus>>,
    execution_stopped: f64,
    now: f64,
) {
    for c in &mut r.task.containers {
        if let Some(Some(s)) = inspected.get(&c.name) {
            // A container never started has no exit code, whatever the engine says.
            if c.exit_code.is_none() && s.exited && c.runtime_id.is_some() {
                c.exit_code = s.exit_code;
            }
            if c.reason.is_none() {
                c.reason = s.error.clone();
            }
        }
        c.last_status = ContainerState::Stopped;
    }
    r.task.last_status = TaskStatus::Stopped;
    r.task.desired_status = DesiredStatus::Stopped;
    r.task.execution_stopped_at.get_or_insert(execution_stopped);
    r.task.stopped_at.get_or_insert(now);
}

/// Where a container's dependency stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Met,
    /// Not yet: look again.
    Wait,
    /// It never will be; why (the task fails to start).
    Never(String),
}

/// Whether dependency `name`'s `condition` holds, given what the engine shows of it.
pub fn gate(name: &str, condition: DependencyCondition, status: Option<&ContainerStatus>) -> Gate {
    let Some(s) = status else {
        return Gate::Never(format!(
            "CannotStartContainerError: dependency {name} vanished"
        ));
    };
    let met = match condition {
        DependencyCondition::Start => s.running || s.exited,
        DependencyCondition::Complete => s.exited,
        DependencyCondition::Success if s.exited && s.exit_code != Some(0) => {
            return Gate::Never(format!(
                "CannotStartContainerError: dependency {name} exited with {:?}, not SUCCESS",
                s.exit_code
            ));
        }
        DependencyCondition::Success => s.exited,
        DependencyCondition::Healthy if s.health == HealthStatus::Unhealthy || s.exited => {
            return Gate::Never(format!(
                "CannotStartContainerError: dependency {name} did not become HEALTHY"
            ));
        }
        DependencyCondition::Healthy => s.health == HealthStatus::Healthy,
    };
    if met { Gate::Met } else { Gate::Wait }
}

/// Containers in an order where each comes after what it depends on.
pub fn start_order(plan: &[ContainerDefinition]) -> Vec<&ContainerDefinition> {
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
            // A cycle or an unknown name (refused at registration); start the rest as listed.
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
pub fn task_health(r: &TaskRecord) -> HealthStatus {
    let checked: Vec<HealthStatus> = r
        .plan
        .iter()
        .filter(|p| p.essential && p.health_check.is_some())
        .filter_map(|p| r.task.containers.iter().find(|c| c.name == p.name))
        .map(|c| c.health_status)
        .collect();
    if checked.contains(&HealthStatus::Unhealthy) {
        HealthStatus::Unhealthy
    } else if !checked.is_empty() && checked.iter().all(|h| *h == HealthStatus::Healthy) {
        HealthStatus::Healthy
    } else {
        HealthStatus::Unknown
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
