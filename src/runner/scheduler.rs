//! The service scheduler: keeps each service's running tasks at its desired
//! count, rolls deployments forward within minimumHealthyPercent and
//! maximumPercent, replaces tasks that stopped (with a growing backoff), and
//! trips the deployment circuit breaker instead of crash-looping.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::model::{
    DeploymentStatus, DesiredStatus, HealthStatus, RolloutState, ServiceRecord, ServiceStatus,
    StopCode, TaskRecord, TaskStatus,
};
use super::tasks::{Launched, RunTask};
use super::{Result, Runner, RunnerError, UpdateService};

/// Restarts of a failing service wait 1 s, 2 s, 4 s ... up to this.
const MAX_BACKOFF_SECONDS: i64 = 300;
/// ECS records a repeated "unable to place" event at most every six hours.
const UNPLACED_REPEAT_MS: i64 = 6 * 3600 * 1000;
/// A task counts toward a completed deployment once it has run this long
/// (and is HEALTHY, if it has health checks): a container that crashes right
/// after starting must not complete the rollout and escape the circuit breaker.
const STABLE_AFTER_MS: i64 = 5_000;

/// Whether a task has been running long enough, and healthy (container
/// health checks and, for load-balanced services, its targets), to count
/// as stable.
fn stable(t: &TaskRecord, input: &Pass<'_>) -> bool {
    let now_ms = input.now_ms;
    if input.balanced && !input.serving.contains(&t.id) {
        return false;
    }
    let checked = t
        .plan
        .iter()
        .any(|p| p.essential && p.health_check.is_some());
    t.task.last_status == TaskStatus::Running
        && t.task
            .started_at
            .is_some_and(|s| (s * 1000.0) as i64 + STABLE_AFTER_MS <= now_ms)
        && (!checked || t.task.health_status == HealthStatus::Healthy)
}

/// What one pass decided for a service.
#[derive(Debug, Default)]
struct Decision {
    /// Deployment id, its task definition, pinned images, how many tasks.
    launch: Option<(String, String, BTreeMap<String, String>, i64)>,
    /// Task ids to stop, with the reason.
    stop: Vec<(String, String)>,
    /// Roll back to this task definition (the circuit breaker tripped).
    rollback: Option<String>,
}

/// What a pass knows besides the service and its live tasks.
#[derive(Clone, Copy)]
struct Pass<'a> {
    /// Live tasks on DRAINING hosts: replaced first, then stopped.
    draining: &'a BTreeSet<String>,
    /// Live tasks on hosts that are gone (deregistered, agent lost): stopped
    /// now and replaced.
    gone: &'a BTreeSet<String>,
    /// Tasks of each deployment that failed since the last pass.
    failures: &'a HashMap<String, i64>,
    /// The service's task ids in the order scale-in stops them.
    scale_in: &'a [String],
    /// Whether the service is behind load balancers; then tasks serve only
    /// once in `serving` (every target healthy), and those in `failing`
    /// (an unhealthy target after the grace period) are replaced.
    balanced: bool,
    serving: &'a BTreeSet<String>,
    failing: &'a BTreeSet<String>,
    now_ms: i64,
}

impl Pass<'_> {
    /// Whether `t` runs and takes its share of traffic.
    fn in_service(&self, t: &TaskRecord) -> bool {
        t.task.last_status == TaskStatus::Running
            && (!self.balanced || self.serving.contains(&t.id))
    }
}

/// ECS's circuit breaker threshold: half the desired count, within 3..=200.
pub fn failure_threshold(desired: i64) -> i64 {
    ((desired + 1) / 2).clamp(3, 200)
}

impl Runner {
    pub(super) async fn schedule(&self) -> Result<()> {
        let services = self.service_records(None).await?;
        if services
            .iter()
            .all(|s| s.service.status == ServiceStatus::Inactive)
        {
            return Ok(());
        }
        // One read of the tasks serves every service of this pass.
        let tasks = self.task_records(None, false).await?;
        let (draining, gone) = self.moving_tasks(&tasks).await?;
        let targets = match self.sync_targets(&services, &tasks).await {
            Ok(view) => view,
            Err(e) => {
                // Without target health no load-balanced task counts as serving.
                tracing::warn!(error = %e, "service scheduler: load balancer targets");
                super::targets::TargetView::default()
            }
        };
        for s in services
            .iter()
            .filter(|s| s.service.status != ServiceStatus::Inactive)
        {
            let mine: Vec<&TaskRecord> = tasks
                .iter()
                .filter(|t| {
                    t.cluster == s.cluster && t.service.as_deref() == Some(&s.service.service_name)
                })
                .collect();
            // More tasks than wanted: which go is the placement strategy read backwards.
            let running = mine
                .iter()
                .filter(|t| t.is_live() && t.task.desired_status == DesiredStatus::Running)
                .count() as i64;
            let scale_in = if running > s.service.desired_count {
                self.scale_in_order(
                    &s.cluster,
                    &format!("service:{}", s.service.service_name),
                    &s.service.placement_strategy,
                )
                .await?
            } else {
                Vec::new()
            };
            if let Err(e) = self
                .reconcile(
                    &s.cluster,
                    &s.service.service_name,
                    &mine,
                    (&draining, &gone),
                    &scale_in,
                    &targets,
                )
                .await
            {
                tracing::warn!(service = %s.service.service_name, error = %e, "service scheduler");
            }
        }
        Ok(())
    }

    /// The ids of live tasks to move elsewhere: (those on DRAINING container
    /// instances, replaced before they stop; those on hosts that are gone —
    /// deregistered, or whose agent has been away longer than
    /// `agent_lost_timeout` — stopped at once and replaced, their containers
    /// stopped if the agent comes back).
    async fn moving_tasks(
        &self,
        tasks: &[TaskRecord],
    ) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
        use super::status::InstanceState;
        let now = crate::registry::now_ms();
        let timeout = self.inner.settings.agent_lost_timeout;
        let mut drained: BTreeSet<(String, String)> = BTreeSet::new();
        let mut gone: BTreeSet<(String, String)> = BTreeSet::new();
        for stored in self.inner.store.instances(None).await? {
            let record: super::instances::InstanceRecord =
                serde_json::from_str(&stored.doc).map_err(super::corrupt)?;
            if record.status == InstanceState::Inactive
                || super::agents::lost(&record, now, timeout)
            {
                gone.insert((record.cluster, record.id));
            } else if record.status == InstanceState::Draining {
                drained.insert((record.cluster, record.id));
            }
        }
        let on = |set: &BTreeSet<(String, String)>| -> BTreeSet<String> {
            if set.is_empty() {
                return BTreeSet::new();
            }
            tasks
                .iter()
                .filter(|t| t.is_live())
                .filter(|t| {
                    self.instance_of(t)
                        .is_some_and(|id| set.contains(&(t.cluster.clone(), id)))
                })
                .map(|t| t.id.clone())
                .collect()
        };
        Ok((on(&drained), on(&gone)))
    }

    /// One pass for service `name`, given its tasks (stopped ones included).
    async fn reconcile(
        &self,
        cluster: &str,
        name: &str,
        tasks: &[&TaskRecord],
        (draining, gone): (&BTreeSet<String>, &BTreeSet<String>),
        scale_in: &[String],
        targets: &super::targets::TargetView,
    ) -> Result<()> {
        // Tasks that end on their own count against their deployment, once,
        // as soon as they are bound to stop (before a replacement is launched).
        let mut failures: HashMap<String, i64> = HashMap::new();
        for t in tasks
            .iter()
            .filter(|t| t.task.desired_status == DesiredStatus::Stopped && !t.accounted)
        {
            self.update_task(&t.id, |r| {
                let first = !r.accounted;
                r.accounted = true;
                first
            })
            .await?;
            let failed = t.task.stop_code.is_some_and(StopCode::is_failure);
            if let (true, Some(d)) = (failed, &t.deployment) {
                *failures.entry(d.clone()).or_default() += 1;
            }
        }
        let live: Vec<&TaskRecord> = tasks
            .iter()
            .copied()
            .filter(|t| t.is_live() && t.task.desired_status == DesiredStatus::Running)
            .collect();
        let now = crate::registry::now_ms();
        let mut decision = Decision::default();
        let record = self
            .modify_service(cluster, name, |r| {
                decision = Decision::default();
                let input = Pass {
                    draining,
                    gone,
                    failures: &failures,
                    scale_in,
                    balanced: !r.service.load_balancers.is_empty(),
                    serving: &targets.serving,
                    failing: &targets.failing,
                    now_ms: now,
                };
                Ok(plan(r, &live, &input, &mut decision))
            })
            .await?;
        let Some(record) = record else { return Ok(()) };
        let mut events = Vec::new();
        // ECS's "unable to place" events, kept once per six hours each.
        let mut unplaced: Vec<String> = Vec::new();
        if let Some((deployment, definition, images, count)) = decision.launch {
            let definition = self.definition(&definition).await?;
            if let Some(definition) = definition {
                let launched = self
                    .launch(
                        &definition,
                        RunTask {
                            cluster: cluster.to_string(),
                            count,
                            started_by: Some(deployment.clone()),
                            group: Some(format!("service:{name}")),
                            service: Some(name.to_string()),
                            deployment: Some(deployment),
                            resolved: images,
                            placement_strategy: record.service.placement_strategy.clone(),
                            placement_constraints: record.service.placement_constraints.clone(),
                            ..Default::default()
                        },
                    )
                    .await;
                let launched = match launched {
                    Ok(launched) => launched,
                    // No ACTIVE instance at all: the service waits for one.
                    Err(RunnerError::InvalidParameter(reason)) => {
                        unplaced.push(format!(
                            "service {name} was unable to place a task because no container instance met all of its requirements. Reason: {reason}"
                        ));
                        Launched::default()
                    }
                    Err(e) => return Err(e),
                };
                if let Some(failure) = launched.failures.first() {
                    unplaced.push(super::placing::unable_to_place_event(name, failure));
                }
                let ids: Vec<&str> = launched
                    .tasks
                    .iter()
                    .map(|t| super::tasks::task_id(&t.task_arn))
                    .collect();
                if !ids.is_empty() {
                    events.push(format!(
                        "(service {name}) has started {} tasks: (task {}).",
                        ids.len(),
                        ids.join(") (task ")
                    ));
                }
            }
        }
        if !decision.stop.is_empty() {
            for (id, reason) in &decision.stop {
                self.stop_task(cluster, id, StopCode::ServiceSchedulerInitiated, reason)
                    .await?;
            }
            let ids: Vec<&str> = decision.stop.iter().map(|(id, _)| id.as_str()).collect();
            events.push(format!(
                "(service {name}) has stopped {} running tasks: (task {}).",
                ids.len(),
                ids.join(") (task ")
            ));
        }
        if !events.is_empty() || !unplaced.is_empty() {
            self.modify_service(cluster, name, |r| {
                let mut changed = false;
                for e in &events {
                    r.push_event(now, e.clone());
                    changed = true;
                }
                for e in &unplaced {
                    changed |= r.push_event_once(now, e.clone(), UNPLACED_REPEAT_MS);
                }
                Ok(changed)
            })
            .await?;
        }
        if let Some(previous) = decision.rollback
            && record.service.status == ServiceStatus::Active
        {
            let update = UpdateService {
                task_definition: Some(previous),
                ..Default::default()
            };
            self.update_service(cluster, name, update).await?;
        }
        Ok(())
    }
}

/// Decides one pass for service `r` given its live tasks and new failures;
/// true when `r` changed.
///
/// Tasks in `draining` run on a DRAINING container instance: they are
/// replaced elsewhere (launches within maximumPercent) and each is stopped
/// only once the service's RUNNING tasks elsewhere plus those still on it
/// leave the desired count RUNNING. That is stricter than ECS, which may
/// stop down to minimumHealthyPercent first; it is chosen so that a drain
/// with nowhere to go (the embedded instance alone) keeps the service's
/// tasks, and the scheduler records "unable to place" instead.
fn plan(
    r: &mut ServiceRecord,
    live: &[&TaskRecord],
    input: &Pass<'_>,
    decision: &mut Decision,
) -> bool {
    let Pass {
        draining,
        gone,
        failures,
        scale_in,
        now_ms,
        ..
    } = *input;
    for t in live.iter().filter(|t| gone.contains(&t.id)) {
        decision.stop.push((
            t.id.clone(),
            "Container instance is gone (deregistered, or its agent disconnected)".into(),
        ));
    }
    // Unhealthy tasks are replaced, and count as failures.
    let mut new_failures: HashMap<String, i64> = failures.clone();
    for t in live.iter().filter(|t| !gone.contains(&t.id)) {
        if t.task.last_status == TaskStatus::Running
            && t.task.health_status == HealthStatus::Unhealthy
        {
            decision
                .stop
                .push((t.id.clone(), "Task failed container health checks".into()));
            if let Some(d) = &t.deployment {
                *new_failures.entry(d.clone()).or_default() += 1;
            }
        }
    }
    // Tasks failing their load balancer health checks: replaced first while
    // maximumPercent leaves room (then stopped like tasks on a draining
    // host), else stopped now.
    let desired = r.service.desired_count;
    let max_total = (desired * i64::from(r.service.deployment_configuration.maximum_percent) / 100)
        .max(desired);
    let mut room = max_total - live.len() as i64;
    let mut leaving: BTreeSet<String> = draining.clone();
    let mut unhealthy: BTreeSet<String> = BTreeSet::new();
    for t in live
        .iter()
        .filter(|t| input.failing.contains(&t.id) && !gone.contains(&t.id))
    {
        if decision.stop.iter().any(|(id, _)| id == &t.id) {
            continue;
        }
        unhealthy.insert(t.id.clone());
        if room > 0 && r.service.status != ServiceStatus::Draining {
            room -= 1;
            leaving.insert(t.id.clone());
        } else {
            decision.stop.push((t.id.clone(), unhealthy_reason(r)));
            if let Some(d) = &t.deployment {
                *new_failures.entry(d.clone()).or_default() += 1;
            }
        }
    }
    let draining = &leaving;
    let failed_now = count_failures(r, &new_failures, now_ms);
    let mut changed = failed_now > 0;
    let stopping: Vec<&str> = decision.stop.iter().map(|(id, _)| id.as_str()).collect();
    let live: Vec<&TaskRecord> = live
        .iter()
        .copied()
        .filter(|t| !stopping.contains(&t.id.as_str()))
        .collect();
    if r.service.status == ServiceStatus::Draining {
        drain(r, &live, now_ms, decision);
        return true;
    }
    let desired = r.service.desired_count;
    let Some(primary) = r.service.deployments.first_mut() else {
        return changed;
    };
    primary.desired_count = desired;
    let primary_id = primary.id.clone();
    changed |= trip_breaker(r, now_ms, decision);
    let failed = r
        .service
        .deployments
        .first()
        .is_some_and(|d| d.rollout_state == RolloutState::Failed);
    if !failed {
        launch_missing(r, &live, draining, now_ms, decision);
        stop_replaced(r, &live, input, decision);
    }
    stop_drained(r, &live, draining, &unhealthy, input, decision);
    let in_primary = |t: &&&TaskRecord| {
        t.deployment.as_deref() == Some(primary_id.as_str()) && !draining.contains(&t.id)
    };
    let primary_live = live.iter().filter(in_primary).count() as i64;
    if primary_live > desired {
        let mut extra: Vec<&&TaskRecord> = live.iter().filter(in_primary).collect();
        // Tasks that never got to run go first, then as the strategy says.
        let rank = |id: &str| scale_in.iter().position(|s| s == id).unwrap_or(usize::MAX);
        extra.sort_by_key(|t| (t.task.last_status == TaskStatus::Running, rank(&t.id)));
        let name = &r.service.service_name;
        for t in extra.into_iter().take((primary_live - desired) as usize) {
            decision
                .stop
                .push((t.id.clone(), format!("Service {name} scaled down")));
        }
    }
    changed |= settle(r, &live, failed_now, input);
    changed
}

/// Counts tasks that failed (by deployment) against their deployments and
/// the service's restart backoff; how many there were.
fn count_failures(r: &mut ServiceRecord, failures: &HashMap<String, i64>, now_ms: i64) -> i64 {
    let failed_now: i64 = failures.values().sum();
    if failed_now > 0 {
        for d in &mut r.service.deployments {
            if let Some(n) = failures.get(&d.id) {
                d.failed_tasks += n;
                d.updated_at = super::seconds(now_ms);
            }
        }
        r.consecutive_failures = r
            .consecutive_failures
            .saturating_add(u32::try_from(failed_now).unwrap_or(u32::MAX));
        let backoff = 1i64
            .checked_shl(r.consecutive_failures.saturating_sub(1).min(20))
            .unwrap_or(MAX_BACKOFF_SECONDS)
            .min(MAX_BACKOFF_SECONDS);
        r.launch_after_ms = now_ms + backoff * 1000;
    }
    failed_now
}

/// A deleted service stops its tasks, then is INACTIVE.
fn drain(r: &mut ServiceRecord, live: &[&TaskRecord], now_ms: i64, decision: &mut Decision) {
    let name = r.service.service_name.clone();
    for t in live {
        decision
            .stop
            .push((t.id.clone(), format!("Service {name} is being deleted")));
    }
    if live.is_empty() {
        r.service.status = ServiceStatus::Inactive;
        for d in &mut r.service.deployments {
            d.status = DeploymentStatus::Inactive;
        }
        r.push_event(now_ms, format!("(service {name}) has been deleted."));
    }
}

/// The circuit breaker: a primary deployment in progress with too many
/// failed tasks FAILS (and rolls back if asked to); true when it tripped.
fn trip_breaker(r: &mut ServiceRecord, now_ms: i64, decision: &mut Decision) -> bool {
    let desired = r.service.desired_count;
    let breaker = r
        .service
        .deployment_configuration
        .deployment_circuit_breaker
        .clone();
    let name = r.service.service_name.clone();
    let Some(primary) = r.service.deployments.first_mut() else {
        return false;
    };
    if primary.rollout_state != RolloutState::InProgress
        || !breaker.enable
        || primary.failed_tasks < failure_threshold(desired)
    {
        return false;
    }
    primary.rollout_state = RolloutState::Failed;
    primary.rollout_state_reason = format!(
        "ECS deployment circuit breaker: tasks failed to start ({} failed tasks).",
        primary.failed_tasks
    );
    let message = format!(
        "(service {name}) deployment {} deployment failed: tasks failed to start.",
        primary.id
    );
    if breaker.rollback
        && let Some(previous) = r.last_completed.clone()
        && previous != primary.task_definition
    {
        decision.rollback = Some(previous);
    }
    r.push_event(now_ms, message);
    true
}

/// Drops deployments without tasks, and marks the primary COMPLETED once
/// the service is steady (its tasks alone, all stable); true when `r` changed.
fn settle(r: &mut ServiceRecord, live: &[&TaskRecord], failed_now: i64, input: &Pass<'_>) -> bool {
    let now_ms = input.now_ms;
    let mut changed = false;
    let before = r.service.deployments.len();
    let with_tasks = |id: &str| live.iter().any(|t| t.deployment.as_deref() == Some(id));
    let mut index = 0;
    r.service.deployments.retain(|d| {
        index += 1;
        index == 1 || with_tasks(&d.id)
    });
    if r.service.deployments.len() != before {
        let ids: Vec<String> = r.service.deployments.iter().map(|d| d.id.clone()).collect();
        r.images.retain(|id, _| ids.contains(id));
        changed = true;
    }
    let desired = r.service.desired_count;
    let name = r.service.service_name.clone();
    let alone = r.service.deployments.len() == 1;
    let Some(primary) = r.service.deployments.first_mut() else {
        return changed;
    };
    let primary_stable = live
        .iter()
        .filter(|t| t.deployment.as_deref() == Some(primary.id.as_str()))
        .filter(|t| stable(t, input))
        .count() as i64;
    let steady = alone && primary_stable == desired && live.len() as i64 == desired;
    if steady && primary.rollout_state == RolloutState::InProgress {
        primary.rollout_state = RolloutState::Completed;
        primary.rollout_state_reason = format!("ECS deployment {} completed.", primary.id);
        primary.updated_at = super::seconds(now_ms);
        r.last_completed = Some(primary.task_definition.clone());
        r.push_event(
            now_ms,
            format!("(service {name}) has reached a steady state."),
        );
        changed = true;
    }
    if steady && r.consecutive_failures > 0 && failed_now == 0 {
        r.consecutive_failures = 0;
        r.launch_after_ms = 0;
        changed = true;
    }
    changed
}

#[path = "rollout.rs"]
mod rollout;
use rollout::{launch_missing, stop_drained, stop_replaced, unhealthy_reason};

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
