//! Targets the task runner registers for service tasks: each carries the
//! task's id, so a stopping task's targets are found and drained before its
//! containers are stopped.

use super::model::{Target, TargetState};
use super::targets::MAX_TARGETS;
use super::{Balancer, BalancerError, Result};

impl Balancer {
    /// Registers port `port` of container instance `instance` (reached at
    /// `address`) for `task` in group `arn`, unless it is there. A target
    /// left at the same place by an earlier task is replaced.
    pub async fn register_task(
        &self,
        arn: &str,
        task: &str,
        instance: &str,
        address: &str,
        port: u16,
    ) -> Result<()> {
        let now = crate::registry::now_ms();
        self.modify_group(arn, |g| {
            if g.targets
                .iter()
                .any(|t| t.task.as_deref() == Some(task) && t.port == port)
            {
                return Ok(false);
            }
            g.targets.retain(|t| !(t.id == instance && t.port == port));
            if g.targets.len() >= MAX_TARGETS {
                return Err(BalancerError::TooMany(
                    "TooManyTargets",
                    format!("A target group holds at most {MAX_TARGETS} targets"),
                ));
            }
            let (state, reason) = if g.health_check.enabled {
                (TargetState::Initial, "Elb.RegistrationInProgress")
            } else {
                (TargetState::Unavailable, "Target.HealthCheckDisabled")
            };
            g.targets.push(Target {
                id: instance.to_string(),
                port,
                availability_zone: None,
                address: address.to_string(),
                state,
                reason: Some(reason.into()),
                description: None,
                registered_ms: now,
                draining_since_ms: None,
                passes: 0,
                failures: 0,
                checked_ms: None,
                healthy_since_ms: None,
                task: Some(task.to_string()),
            });
            tracing::info!(target_group = %g.name, target = %instance, port, task, "target registered");
            Ok(true)
        })
        .await?;
        Ok(())
    }

    /// Starts draining every target of `task` in every group; while any of
    /// its targets is still in a group (draining until the group's
    /// deregistration delay has passed), the longest such delay in seconds.
    pub async fn deregister_task(&self, task: &str) -> Result<Option<u32>> {
        let now = crate::registry::now_ms();
        let mut remaining: Option<u32> = None;
        for group in self.target_groups().await? {
            if !group
                .targets
                .iter()
                .any(|t| t.task.as_deref() == Some(task))
            {
                continue;
            }
            remaining = Some(
                remaining
                    .unwrap_or(0)
                    .max(group.deregistration_delay_seconds),
            );
            self.modify_group(&group.arn, |g| {
                let mut changed = false;
                for t in g
                    .targets
                    .iter_mut()
                    .filter(|t| t.task.as_deref() == Some(task))
                {
                    if t.state != TargetState::Draining {
                        t.state = TargetState::Draining;
                        t.reason = Some("Target.DeregistrationInProgress".into());
                        t.description = Some("Target deregistration is in progress".into());
                        t.draining_since_ms = Some(now);
                        changed = true;
                    }
                }
                Ok(changed)
            })
            .await?;
        }
        Ok(remaining)
    }
}
