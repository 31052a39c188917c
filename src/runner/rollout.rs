//! The rolling part of a scheduler pass: launching what the primary
//! deployment lacks, stopping what it replaces, and moving tasks off
//! draining hosts or failing targets, within minimumHealthyPercent and
//! maximumPercent.

use std::collections::BTreeSet;

use super::super::model::{ServiceRecord, TaskRecord, TaskStatus};
use super::{Decision, Pass};

/// ECS's reason for stopping a task whose target failed its checks.
pub(super) fn unhealthy_reason(r: &ServiceRecord) -> String {
    let groups: Vec<&str> = r
        .service
        .load_balancers
        .iter()
        .map(|l| l.target_group_arn.as_str())
        .collect();
    format!(
        "Task failed ELB health checks in (target-group {})",
        groups.join(", ")
    )
}

/// Stops tasks on draining instances whose replacements run elsewhere
/// (see [`super::plan`]).
pub(super) fn stop_drained(
    r: &ServiceRecord,
    live: &[&TaskRecord],
    draining: &BTreeSet<String>,
    unhealthy: &BTreeSet<String>,
    input: &Pass<'_>,
    decision: &mut Decision,
) {
    let already: Vec<String> = decision.stop.iter().map(|(id, _)| id.clone()).collect();
    let leaving: Vec<&&TaskRecord> = live
        .iter()
        .filter(|t| draining.contains(&t.id) && !already.contains(&t.id))
        .collect();
    if leaving.is_empty() {
        return;
    }
    let running_elsewhere = live
        .iter()
        .filter(|t| !draining.contains(&t.id) && input.in_service(t))
        .count() as i64;
    let desired = r.service.desired_count;
    let mut stoppable = running_elsewhere + leaving.len() as i64 - desired;
    let mut leaving = leaving;
    // Tasks that never got to run go first.
    leaving.sort_by_key(|t| t.task.last_status == TaskStatus::Running);
    for t in leaving {
        if stoppable <= 0 {
            break;
        }
        stoppable -= 1;
        let reason = if unhealthy.contains(&t.id) {
            unhealthy_reason(r)
        } else {
            "Container instance is being drained".to_string()
        };
        decision.stop.push((t.id.clone(), reason));
    }
}

/// Launches what the primary deployment lacks, within maximumPercent (and
/// not before the restart backoff ends); tasks on draining instances do
/// not count as there.
pub(super) fn launch_missing(
    r: &ServiceRecord,
    live: &[&TaskRecord],
    draining: &BTreeSet<String>,
    now_ms: i64,
    decision: &mut Decision,
) {
    let Some(primary) = r.service.deployments.first() else {
        return;
    };
    let desired = r.service.desired_count;
    let max_total = (desired * i64::from(r.service.deployment_configuration.maximum_percent) / 100)
        .max(desired);
    let primary_live = live
        .iter()
        .filter(|t| t.deployment.as_deref() == Some(primary.id.as_str()))
        .filter(|t| !draining.contains(&t.id))
        .count() as i64;
    let total_live = live.len() as i64;
    if now_ms >= r.launch_after_ms && primary_live < desired {
        let n = (desired - primary_live).min(max_total - total_live).min(10);
        if n > 0 {
            let images = r.images.get(&primary.id).cloned().unwrap_or_default();
            let definition = primary.task_definition.clone();
            decision.launch = Some((primary.id.clone(), definition, images, n));
        }
    }
}

/// Stops older deployments' tasks: those that never got to run at once,
/// running ones while minimumHealthyPercent allows.
pub(super) fn stop_replaced(
    r: &ServiceRecord,
    live: &[&TaskRecord],
    input: &Pass<'_>,
    decision: &mut Decision,
) {
    let Some(primary) = r.service.deployments.first() else {
        return;
    };
    let desired = r.service.desired_count;
    let min_percent = i64::from(r.service.deployment_configuration.minimum_healthy_percent);
    // Behind a load balancer, a task counts as healthy once its targets are.
    let running = live.iter().filter(|t| input.in_service(t)).count() as i64;
    let min_healthy = (desired * min_percent + 99) / 100;
    let mut stoppable = running - min_healthy;
    let mut old: Vec<&&TaskRecord> = live
        .iter()
        .filter(|t| t.deployment.as_deref() != Some(primary.id.as_str()))
        .collect();
    // Tasks that never got to run go first.
    old.sort_by_key(|t| t.task.last_status == TaskStatus::Running);
    for t in old {
        // A running task goes only while the budget allows (none when
        // target health is unknown); it spends the budget if it serves.
        let running = t.task.last_status == TaskStatus::Running;
        if running && stoppable <= 0 {
            continue;
        }
        if input.in_service(t) {
            stoppable -= 1;
        }
        decision.stop.push((
            t.id.clone(),
            format!("Deployment {} replaces this task", primary.id),
        ));
    }
}
