//! The target tracking loop: every period, on the replica holding the
//! runner's lease (where the utilization samples are taken), each scalable
//! target's policies are evaluated (`evaluate::decide`) over the metric's
//! per-period averages, and a decision is carried out as UpdateService with
//! only `desiredCount`, then recorded as an activity.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::evaluate::{self, Decision, Direction, PolicyView, Rules, TargetView};
use super::model::{self, Activity, ScalingPolicy, TargetRecord};
use super::{RequestCounts, Result, Scaling, parse_resource_id, target_group_of};
use crate::runner::UpdateService;
use crate::runner::model::{RolloutState, Service, ServiceStatus};
use crate::runner::usage::ServiceSample;

/// Request counter readings kept per target group.
const MAX_COUNTS: usize = 1024;

pub struct Scaler {
    scaling: Scaling,
    requests: Option<Arc<dyn RequestCounts>>,
    /// Per target group ARN: the counter at each pass (ms, total), newest last.
    counts: Mutex<HashMap<String, VecDeque<(i64, u64)>>>,
}

/// The average of `figure` over the samples of each period, newest first:
/// period `k` spans (now − (k+1)·period, now − k·period].
pub fn per_period(
    samples: &[ServiceSample],
    figure: impl Fn(&ServiceSample) -> Option<f64>,
    now_ms: i64,
    period_ms: i64,
    periods: usize,
) -> Vec<Option<f64>> {
    (0..periods as i64)
        .map(|k| {
            let (from, to) = (now_ms - (k + 1) * period_ms, now_ms - k * period_ms);
            let values: Vec<f64> = samples
                .iter()
                .filter(|s| s.at_ms > from && s.at_ms <= to)
                .filter_map(&figure)
                .collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        })
        .collect()
}

/// Requests per running task in each period between counter readings, newest
/// first, scaled to `period_ms`.
pub fn request_rates(
    counts: &VecDeque<(i64, u64)>,
    running: i64,
    period_ms: i64,
    periods: usize,
) -> Vec<Option<f64>> {
    let readings: Vec<&(i64, u64)> = counts.iter().rev().collect();
    (0..periods)
        .map(|k| {
            let (newer, older) = (readings.get(k)?, readings.get(k + 1)?);
            let elapsed = newer.0 - older.0;
            let count = newer.1.checked_sub(older.1)?;
            (elapsed > 0 && running > 0)
                .then(|| count as f64 * period_ms as f64 / elapsed as f64 / running as f64)
        })
        .collect()
}

impl Scaling {
    /// The scaler over this service; `requests` feeds `ALBRequestCountPerTarget`.
    pub fn scaler(&self, requests: Option<Arc<dyn RequestCounts>>) -> Scaler {
        Scaler {
            scaling: self.clone(),
            requests,
            counts: Mutex::default(),
        }
    }
}

impl Scaler {
    fn period_ms(&self) -> i64 {
        i64::try_from(self.scaling.settings().period.as_millis()).unwrap_or(i64::MAX)
    }

    fn rules(&self) -> Rules {
        let s = self.scaling.settings();
        Rules {
            scale_out_periods: s.scale_out_periods as usize,
            scale_in_periods: s.scale_in_periods as usize,
        }
    }

    fn target_group_arn(&self, label: &str) -> Option<String> {
        let s = self.scaling.settings();
        Some(format!(
            "arn:aws:elasticloadbalancing:{}:{}:{}",
            s.region,
            s.account,
            target_group_of(label)?
        ))
    }

    /// Reads every request counter the policies name, once per pass.
    fn read_counters(&self, policies: &[ScalingPolicy], now_ms: i64) {
        let Some(requests) = &self.requests else {
            return;
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = Vec::new();
        for p in policies {
            let spec = &p
                .target_tracking_scaling_policy_configuration
                .predefined_metric_specification;
            let Some(arn) = spec
                .resource_label
                .as_deref()
                .and_then(|l| self.target_group_arn(l))
            else {
                continue;
            };
            if seen.contains(&arn) {
                continue;
            }
            if let Some(total) = requests.requests_total(&arn) {
                let list = counts.entry(arn.clone()).or_default();
                list.push_back((now_ms, total));
                while list.len() > MAX_COUNTS {
                    list.pop_front();
                }
            }
            seen.push(arn);
        }
        counts.retain(|arn, _| seen.contains(arn));
    }

    /// A policy's metric per period, newest first.
    fn periods(
        &self,
        policy: &ScalingPolicy,
        service: &Service,
        samples: &[ServiceSample],
        now_ms: i64,
    ) -> Vec<Option<f64>> {
        let rules = self.rules();
        let n = rules.scale_out_periods.max(rules.scale_in_periods);
        let spec = &policy
            .target_tracking_scaling_policy_configuration
            .predefined_metric_specification;
        match spec.predefined_metric_type.as_str() {
            model::CPU => per_period(samples, |s| s.cpu_percent, now_ms, self.period_ms(), n),
            model::MEMORY => per_period(samples, |s| s.memory_percent, now_ms, self.period_ms(), n),
            _ => {
                let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
                match spec
                    .resource_label
                    .as_deref()
                    .and_then(|l| self.target_group_arn(l))
                    .and_then(|arn| counts.get(&arn))
                {
                    Some(c) => request_rates(c, service.running_count, self.period_ms(), n),
                    None => vec![None; n],
                }
            }
        }
    }

    /// One pass over every scalable target; nothing off the lease.
    pub async fn run_once(&self) -> Result<()> {
        let runner = self.scaling.runner();
        if !runner.is_leader() {
            return Ok(());
        }
        let now = crate::registry::now_ms();
        let policies = self.scaling.policies(None).await?;
        self.read_counters(&policies, now);
        for record in self.scaling.targets().await? {
            let resource_id = record.target.resource_id.clone();
            let mine: Vec<&ScalingPolicy> = policies
                .iter()
                .filter(|p| p.resource_id == resource_id)
                .collect();
            if mine.is_empty() {
                continue;
            }
            if let Err(e) = self.evaluate(&record, &mine, now).await {
                tracing::warn!(resource = %resource_id, error = %e, "auto scaling: evaluating a target");
            }
        }
        Ok(())
    }

    async fn evaluate(
        &self,
        record: &TargetRecord,
        policies: &[&ScalingPolicy],
        now: i64,
    ) -> Result<()> {
        let target = &record.target;
        let service = match self.scaling.service(&target.resource_id).await {
            Ok(s) if s.status == ServiceStatus::Active => s,
            // A service gone or draining is not scaled; its target stays until deregistered.
            Ok(_) | Err(super::ScalingError::Validation(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let (cluster, name) = parse_resource_id(&target.resource_id)?;
        let samples = self.scaling.runner().service_usage(&cluster, &name);
        let series: Vec<Vec<Option<f64>>> = policies
            .iter()
            .map(|p| self.periods(p, &service, &samples, now))
            .collect();
        let views: Vec<PolicyView<'_>> = policies
            .iter()
            .zip(&series)
            .map(|(p, periods)| {
                let c = &p.target_tracking_scaling_policy_configuration;
                PolicyView {
                    name: &p.policy_name,
                    target: c.target_value,
                    periods,
                    disable_scale_in: c.disable_scale_in,
                    scale_out_cooldown_ms: c.scale_out_cooldown.saturating_mul(1000),
                    scale_in_cooldown_ms: c.scale_in_cooldown.saturating_mul(1000),
                    alarm_high: p.alarm_high(),
                    alarm_low: p.alarm_low(),
                }
            })
            .collect();
        let view = TargetView {
            min: target.min_capacity,
            max: target.max_capacity,
            current: service.desired_count,
            scale_in_suspended: target.suspended_state.dynamic_scaling_in_suspended,
            scale_out_suspended: target.suspended_state.dynamic_scaling_out_suspended,
            deploying: service
                .deployments
                .iter()
                .any(|d| d.rollout_state == RolloutState::InProgress),
            last_scale_out: record.state.last_scale_out,
            last_scale_in_ms: record.state.last_scale_in_ms,
        };
        let Decision::Scale {
            to,
            direction,
            cause,
        } = evaluate::decide(now, self.rules(), &view, &views)
        else {
            return Ok(());
        };
        self.act(&target.resource_id, &cluster, &name, to, direction, cause)
            .await
    }

    /// Sets the desired count and records the activity (failed, too).
    async fn act(
        &self,
        resource_id: &str,
        cluster: &str,
        service: &str,
        to: i64,
        direction: Direction,
        cause: String,
    ) -> Result<()> {
        let started = crate::registry::now_ms();
        let update = UpdateService {
            desired_count: Some(to),
            ..Default::default()
        };
        let outcome = self
            .scaling
            .runner()
            .update_service(cluster, service, update)
            .await;
        let ended = crate::registry::now_ms();
        let (status, message) = match &outcome {
            Ok(_) => ("Successful", None),
            Err(e) => (
                "Failed",
                Some(format!("Failed to set desired count to {to}: {e}")),
            ),
        };
        tracing::info!(resource = %resource_id, desired_count = to, status, "auto scaling: {cause}");
        if outcome.is_ok() {
            self.scaling
                .modify_target(resource_id, |r| match direction {
                    Direction::Out => r.state.last_scale_out = Some((ended, to)),
                    Direction::In => r.state.last_scale_in_ms = Some(ended),
                })
                .await?;
        }
        self.scaling
            .record(Activity {
                activity_id: uuid::Uuid::new_v4().to_string(),
                service_namespace: model::NAMESPACE.into(),
                resource_id: resource_id.to_string(),
                scalable_dimension: model::DIMENSION.into(),
                description: format!("Setting desired count to {to}."),
                cause,
                start_time: super::seconds(started),
                end_time: Some(super::seconds(ended)),
                status_code: status.into(),
                status_message: message,
            })
            .await
    }

    /// Evaluates every period until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.scaling.settings().period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "auto scaling: a pass failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: i64, cpu: Option<f64>) -> ServiceSample {
        ServiceSample {
            at_ms,
            cpu_percent: cpu,
            memory_percent: None,
        }
    }

    #[test]
    fn samples_average_per_period_newest_first() {
        let samples = [
            sample(1_000, Some(10.0)),
            sample(59_000, Some(20.0)),
            sample(61_000, Some(30.0)),
            sample(119_000, Some(50.0)),
            sample(120_000, None),
        ];
        let got = per_period(&samples, |s| s.cpu_percent, 120_000, 60_000, 3);
        assert_eq!(got, vec![Some(40.0), Some(15.0), None]);
    }

    #[test]
    fn request_rates_are_per_task_and_period() {
        let counts: VecDeque<(i64, u64)> = [(0, 100), (60_000, 700), (90_000, 1000)].into();
        // 300 requests in half a period: 600 per period, over 2 tasks.
        let got = request_rates(&counts, 2, 60_000, 3);
        assert_eq!(got, vec![Some(300.0), Some(300.0), None]);
        assert_eq!(request_rates(&counts, 0, 60_000, 1), vec![None]);
    }
}
