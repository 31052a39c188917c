//! Service tasks behind load balancers: a running task's mapped ports are
//! registered as targets of the service's target groups; their health
//! tells the scheduler which tasks serve (a deployment counts a task only
//! once its targets are healthy) and which fail (replaced after the grace
//! period); a task that stops is first deregistered and keeps running while
//! its targets drain.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::instances::InstanceRecord;
use super::model::{DesiredStatus, ServiceRecord, ServiceStatus, TaskRecord, TaskStatus};
use super::{Result, Runner, RunnerError, corrupt};
use crate::balancer::model::{TargetGroup, TargetState};

/// What the targets say of service tasks, for one scheduler pass.
#[derive(Debug, Default)]
pub(super) struct TargetView {
    /// Tasks whose every target is healthy.
    pub serving: BTreeSet<String>,
    /// Tasks with an unhealthy target, past their grace period.
    pub failing: BTreeSet<String>,
}

/// A stopping task waits for its targets at most their delay and this.
const DRAIN_SLACK: Duration = Duration::from_secs(30);

pub(super) fn balancer_error(e: crate::balancer::BalancerError) -> RunnerError {
    RunnerError::Balancer(e.to_string())
}

/// The host port `container`'s `port` is published on: its network
/// binding, or with host networking the mapped port itself.
fn host_port(task: &TaskRecord, container: &str, port: i32) -> Option<u16> {
    let bound = task
        .task
        .containers
        .iter()
        .find(|c| c.name == container)?
        .network_bindings
        .iter()
        .find(|b| b.container_port == port)
        .map(|b| b.host_port);
    let host = || {
        (task.network_mode == "host"
            && task.plan.iter().any(|c| {
                c.name == container && c.port_mappings.iter().any(|p| p.container_port == port)
            }))
        .then_some(port)
    };
    bound.or_else(host).and_then(|p| u16::try_from(p).ok())
}

impl Runner {
    /// Registers the running tasks of load-balanced services, drains the
    /// targets of tasks that no longer run, and reads their health.
    pub(super) async fn sync_targets(
        &self,
        services: &[ServiceRecord],
        tasks: &[TaskRecord],
    ) -> Result<TargetView> {
        let mut view = TargetView::default();
        let Some(balancer) = self.balancer() else {
            return Ok(view);
        };
        let groups: HashMap<String, TargetGroup> = balancer
            .target_groups()
            .await
            .map_err(balancer_error)?
            .into_iter()
            .map(|g| (g.arn.clone(), g))
            .collect();
        let running: BTreeSet<&str> = tasks
            .iter()
            .filter(|t| t.is_live() && t.task.desired_status == DesiredStatus::Running)
            .map(|t| t.id.as_str())
            .collect();
        // Targets of tasks that stopped on their own, or whose service let go.
        let mut orphans: BTreeSet<&str> = BTreeSet::new();
        for g in groups.values() {
            for t in &g.targets {
                if let Some(task) = t.task.as_deref()
                    && t.state != TargetState::Draining
                    && !running.contains(task)
                {
                    orphans.insert(task);
                }
            }
        }
        for task in orphans {
            balancer
                .deregister_task(task)
                .await
                .map_err(balancer_error)?;
        }
        let balanced: Vec<&ServiceRecord> = services
            .iter()
            .filter(|s| s.service.status == ServiceStatus::Active)
            .filter(|s| !s.service.load_balancers.is_empty())
            .collect();
        if balanced.is_empty() {
            return Ok(view);
        }
        let mut addresses: HashMap<(String, String), Option<String>> = HashMap::new();
        for stored in self.inner.store.instances(None).await? {
            let record: InstanceRecord = serde_json::from_str(&stored.doc).map_err(corrupt)?;
            let address = self.address_of(&record);
            addresses.insert((record.cluster, record.id), address);
        }
        let now = crate::registry::now_ms();
        for s in balanced {
            if let Err(e) = self
                .sync_service_targets(s, tasks, &groups, &addresses, now, &mut view)
                .await
            {
                tracing::warn!(service = %s.service.service_name, error = %e, "load balancer targets of a service");
            }
        }
        Ok(view)
    }

    /// [`Runner::sync_targets`] for one service: its primary deployment's
    /// running tasks are registered with its current load balancers (older
    /// deployments' tasks keep the targets they have); each task's targets
    /// say whether it serves or fails.
    async fn sync_service_targets(
        &self,
        s: &ServiceRecord,
        tasks: &[TaskRecord],
        groups: &HashMap<String, TargetGroup>,
        addresses: &HashMap<(String, String), Option<String>>,
        now: i64,
        view: &mut TargetView,
    ) -> Result<()> {
        let Some(balancer) = self.balancer() else {
            return Ok(());
        };
        let primary = s.service.deployments.first().map(|d| d.id.as_str());
        let grace_ms = i64::from(s.service.health_check_grace_period_seconds.unwrap_or(0)) * 1000;
        for t in tasks.iter().filter(|t| {
            t.cluster == s.cluster
                && t.service.as_deref() == Some(&s.service.service_name)
                && t.is_live()
                && t.task.desired_status == DesiredStatus::Running
                && t.task.last_status == TaskStatus::Running
        }) {
            let Some(instance) = self.instance_of(t) else {
                continue;
            };
            let Some(Some(address)) = addresses.get(&(t.cluster.clone(), instance.clone())) else {
                continue;
            };
            // Targets of the service's current load balancers are
            // registered; a task serves once it has targets and every one
            // is healthy (an older deployment's tasks keep the targets
            // they were registered with).
            let mut registered_now = false;
            let lbs = if t.deployment.as_deref() == primary {
                s.service.load_balancers.as_slice()
            } else {
                &[]
            };
            for lb in lbs {
                let Some(port) = host_port(t, &lb.container_name, lb.container_port) else {
                    continue;
                };
                let Some(group) = groups.get(&lb.target_group_arn) else {
                    continue;
                };
                if !group
                    .targets
                    .iter()
                    .any(|x| x.task.as_deref() == Some(&t.id) && x.port == port)
                {
                    balancer
                        .register_task(&group.arn, &t.id, &instance, address, port)
                        .await
                        .map_err(balancer_error)?;
                    registered_now = true;
                }
            }
            let mine: Vec<&crate::balancer::model::Target> = groups
                .values()
                .flat_map(|g| &g.targets)
                .filter(|x| x.task.as_deref() == Some(&t.id))
                .collect();
            let serving = !registered_now
                && !mine.is_empty()
                && mine
                    .iter()
                    .all(|x| matches!(x.state, TargetState::Healthy | TargetState::Unavailable));
            let started_ms = t.task.started_at.map_or(now, |s| (s * 1000.0) as i64);
            let failing = started_ms + grace_ms <= now
                && mine.iter().any(|x| x.state == TargetState::Unhealthy);
            if serving {
                view.serving.insert(t.id.clone());
            }
            if failing {
                view.failing.insert(t.id.clone());
            }
        }
        Ok(())
    }

    /// Deregisters task `id`'s targets and waits while they drain (the
    /// group's deregistration delay, at most that and [`DRAIN_SLACK`]).
    pub(super) async fn drain_targets(&self, id: &str) -> Result<()> {
        let Some(balancer) = self.balancer() else {
            return Ok(());
        };
        let started = Instant::now();
        let mut logged = false;
        loop {
            let Some(delay) = balancer.deregister_task(id).await.map_err(balancer_error)? else {
                return Ok(());
            };
            if !logged {
                tracing::info!(task = %id, delay_seconds = delay, "task draining from its target groups");
                logged = true;
            }
            if started.elapsed() > Duration::from_secs(u64::from(delay)) + DRAIN_SLACK {
                tracing::warn!(task = %id, "task targets still draining after the delay; stopping it anyway");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
