//! Service tasks' resource use, sampled for service auto scaling (README
//! "Service auto scaling"): every `interval` the [`Sampler`] reads each
//! RUNNING service task's containers through the engine of the host the
//! task is on (the embedded engine, or an agent connected to this process)
//! and keeps, per service, a bounded window of utilization samples in
//! memory. It samples only on the replica holding the runner's lease, where
//! the scaler evaluates them; tasks on agents connected to another replica
//! give no sample. The same figures are exported in `/metrics`.
//!
//! Utilization is ECS's `CPUUtilization`/`MemoryUtilization` of a service
//! (reference §4): 100 × Σ used / Σ reserved over its tasks. A task reserves
//! its task-level `cpu` units, else the sum of its containers' `cpu`, else
//! (no CPU reservation at all) one vCPU, 1024 units; memory its task-level
//! `memory`, else the sum of each container's `memoryReservation` or
//! `memory`; a task reserving no memory gives no memory figure.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::engine::Usage;
use super::model::{TaskRecord, TaskStatus};
use super::{Result, Runner};
use crate::metrics::metrics;

/// Tasks read at once by one sampling pass.
const CONCURRENT_READS: usize = 16;

/// One sample of a service's utilization, in percent of what its tasks reserve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceSample {
    pub at_ms: i64,
    /// `None` until two readings of a container allow a rate.
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
}

/// The most samples kept per service, whatever the retention says.
const MAX_SAMPLES: usize = 4096;

/// The samples of every service, and each container's last reading.
#[derive(Default)]
pub(super) struct Windows {
    inner: Mutex<WindowsInner>,
}

#[derive(Default)]
struct WindowsInner {
    by_service: HashMap<(String, String), VecDeque<ServiceSample>>,
    /// Container runtime id -> its last reading (CPU time is cumulative).
    last: HashMap<String, Usage>,
}

/// What one task used and reserved between two readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskReading {
    /// CPU cores used on average since the previous readings; `None` without them.
    pub cpu_cores: Option<f64>,
    pub reserved_cores: f64,
    pub memory_bytes: u64,
    /// `None`: the task reserves no memory.
    pub reserved_mib: Option<f64>,
}

/// The cores a task reserves (see the module's doc).
pub fn reserved_cores(task: &TaskRecord) -> f64 {
    let units = match task.cpu_units.filter(|u| *u > 0) {
        Some(u) => u,
        None => {
            let sum: i64 = task.plan.iter().map(|c| i64::from(c.cpu.max(0))).sum();
            if sum > 0 { sum } else { 1024 }
        }
    };
    units as f64 / 1024.0
}

/// The MiB a task reserves, if any (see the module's doc).
pub fn reserved_mib(task: &TaskRecord) -> Option<f64> {
    if let Some(m) = task.memory_mib.filter(|m| *m > 0) {
        return Some(m as f64);
    }
    let sum: i64 = task
        .plan
        .iter()
        .filter_map(|c| c.memory_reservation.or(c.memory))
        .map(i64::from)
        .sum();
    (sum > 0).then_some(sum as f64)
}

/// A service's utilization from its tasks' readings: 100 × Σ used / Σ
/// reserved, each over the tasks that have the figure.
pub fn utilization(readings: &[TaskReading]) -> (Option<f64>, Option<f64>) {
    let (mut used, mut reserved) = (0.0, 0.0);
    for r in readings {
        if let Some(cores) = r.cpu_cores {
            used += cores;
            reserved += r.reserved_cores;
        }
    }
    let cpu = (reserved > 0.0).then(|| 100.0 * used / reserved);
    let (mut bytes, mut mib) = (0.0, 0.0);
    for r in readings {
        if let Some(m) = r.reserved_mib {
            bytes += r.memory_bytes as f64;
            mib += m;
        }
    }
    let memory = (mib > 0.0).then(|| 100.0 * bytes / (mib * 1024.0 * 1024.0));
    (cpu, memory)
}

/// Cores used between two readings of one container; `None` when they do
/// not allow a rate (the same instant, or a restarted counter).
pub fn cores_between(before: &Usage, after: &Usage) -> Option<f64> {
    let elapsed_ms = after.at_ms.checked_sub(before.at_ms).filter(|ms| *ms > 0)?;
    let used_ns = after.cpu_ns.checked_sub(before.cpu_ns)?;
    Some(used_ns as f64 / (elapsed_ms as f64 * 1_000_000.0))
}

impl Windows {
    fn lock(&self) -> std::sync::MutexGuard<'_, WindowsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `usage` of container `id`; the cores used since its previous reading.
    fn read(&self, id: &str, usage: Usage) -> Option<f64> {
        let mut inner = self.lock();
        let before = inner.last.insert(id.to_string(), usage);
        before.and_then(|b| cores_between(&b, &usage))
    }

    fn push(&self, cluster: &str, service: &str, sample: ServiceSample, retain_ms: i64) {
        let mut inner = self.lock();
        let window = inner
            .by_service
            .entry((cluster.to_string(), service.to_string()))
            .or_default();
        window.push_back(sample);
        while window.len() > MAX_SAMPLES
            || window
                .front()
                .is_some_and(|s| s.at_ms < sample.at_ms - retain_ms)
        {
            window.pop_front();
        }
    }

    /// Forgets services and containers not seen in the last pass.
    fn keep_only(&self, services: &[(String, String)], containers: &[String]) {
        let mut inner = self.lock();
        inner.by_service.retain(|k, _| services.contains(k));
        inner.last.retain(|k, _| containers.contains(k));
    }

    fn samples(&self, cluster: &str, service: &str) -> Vec<ServiceSample> {
        self.lock()
            .by_service
            .get(&(cluster.to_string(), service.to_string()))
            .map(|w| w.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// The sampling loop; owned by the composition root's background work.
pub struct Sampler {
    runner: Runner,
    interval: Duration,
    /// Samples older than this are dropped.
    retain: Duration,
}

impl Runner {
    /// The sampler of this runner's service tasks, every `interval`, keeping `retain`.
    pub fn sampler(&self, interval: Duration, retain: Duration) -> Sampler {
        Sampler {
            runner: self.clone(),
            interval,
            retain,
        }
    }

    /// A service's utilization samples, oldest first (empty on a replica
    /// that does not sample).
    pub fn service_usage(&self, cluster: &str, service: &str) -> Vec<ServiceSample> {
        self.inner.usage.samples(cluster, service)
    }

    /// Whether this replica holds the runner's lease (runs the scheduler).
    pub fn is_leader(&self) -> bool {
        self.inner
            .leading
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The readings of one task's running containers: what it used and reserved.
    async fn read_task(&self, task: &TaskRecord) -> Result<Option<TaskReading>> {
        let Some(engine) = self.engine_for(task) else {
            return Ok(None);
        };
        let (mut cores, mut bytes, mut read_any) = (Some(0.0), 0u64, false);
        for container in &task.task.containers {
            let Some(id) = container.runtime_id.as_deref() else {
                continue;
            };
            let Some(usage) = engine.stats(id).await? else {
                continue;
            };
            read_any = true;
            bytes = bytes.saturating_add(usage.memory_bytes);
            cores = match (cores, self.inner.usage.read(id, usage)) {
                (Some(total), Some(c)) => Some(total + c),
                _ => None,
            };
        }
        Ok(read_any.then(|| TaskReading {
            cpu_cores: cores,
            reserved_cores: reserved_cores(task),
            memory_bytes: bytes,
            reserved_mib: reserved_mib(task),
        }))
    }
}

impl Sampler {
    /// One pass: reads every RUNNING service task and records one sample
    /// per service with any. Off the lease it forgets what it had.
    pub async fn run_once(&self) -> Result<()> {
        let runner = &self.runner;
        if !runner.is_leader() {
            // Figures of a replica that no longer samples would go stale.
            runner.inner.usage.keep_only(&[], &[]);
            metrics().retain_services(&[]);
            return Ok(());
        }
        let now = crate::registry::now_ms();
        let tasks = runner.live_tasks(None).await?;
        let mut containers = Vec::new();
        let mut sampled = Vec::new();
        for task in &tasks {
            let Some(service) = task.service.as_deref() else {
                continue;
            };
            if task.task.last_status != TaskStatus::Running {
                continue;
            }
            containers.extend(
                task.task
                    .containers
                    .iter()
                    .filter_map(|c| c.runtime_id.clone()),
            );
            sampled.push((task, service));
        }
        // Many at once, in order: a stats reading can take most of a second
        // on a busy host, and a pass must stay well within a period; bounded,
        // so hundreds of tasks do not flood the engines.
        use futures::StreamExt;
        // The futures first: a closure inside the stream would not be Send.
        let reads: Vec<_> = sampled
            .iter()
            .map(|(task, _)| runner.read_task(task))
            .collect();
        let readings: Vec<_> = futures::stream::iter(reads)
            .buffered(CONCURRENT_READS)
            .collect()
            .await;
        let mut by_service: HashMap<(String, String), Vec<TaskReading>> = HashMap::new();
        for ((task, service), reading) in sampled.iter().zip(readings) {
            // One host failing to answer costs its tasks' figures, not the pass.
            match reading {
                Ok(Some(reading)) => by_service
                    .entry((task.cluster.clone(), service.to_string()))
                    .or_default()
                    .push(reading),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(task = %task.id, error = %e, "usage: cannot read a task's containers");
                }
            }
        }
        let retain_ms = i64::try_from(self.retain.as_millis()).unwrap_or(i64::MAX);
        let services: Vec<(String, String)> = by_service.keys().cloned().collect();
        for ((cluster, service), readings) in by_service {
            let (cpu, memory) = utilization(&readings);
            let sample = ServiceSample {
                at_ms: now,
                cpu_percent: cpu,
                memory_percent: memory,
            };
            runner
                .inner
                .usage
                .push(&cluster, &service, sample, retain_ms);
            metrics().service_utilization(&cluster, &service, cpu, memory);
        }
        runner.inner.usage.keep_only(&services, &containers);
        metrics().retain_services(&services);
        Ok(())
    }

    /// Samples every `interval` until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "usage: sampling service tasks");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(cpu_ns: u64, at_ms: i64) -> Usage {
        Usage {
            cpu_ns,
            memory_bytes: 0,
            at_ms,
        }
    }

    #[test]
    fn cores_come_from_two_readings() {
        // Half a second of CPU time in one second: half a core.
        let c = cores_between(&usage(1_000_000_000, 10_000), &usage(1_500_000_000, 11_000));
        assert_eq!(c, Some(0.5));
        assert_eq!(cores_between(&usage(5, 10), &usage(6, 10)), None);
        assert_eq!(
            cores_between(&usage(9, 10), &usage(1, 20)),
            None,
            "a restart"
        );
    }

    #[test]
    fn utilization_is_used_over_reserved_across_tasks() {
        let mib = 1024.0 * 1024.0;
        let readings = [
            TaskReading {
                cpu_cores: Some(0.25),
                reserved_cores: 0.25,
                memory_bytes: (64.0 * mib) as u64,
                reserved_mib: Some(128.0),
            },
            TaskReading {
                cpu_cores: Some(0.0),
                reserved_cores: 0.25,
                memory_bytes: 0,
                reserved_mib: Some(128.0),
            },
            // No rate yet and no memory reserved: counts in neither figure.
            TaskReading {
                cpu_cores: None,
                reserved_cores: 4.0,
                memory_bytes: 1 << 30,
                reserved_mib: None,
            },
        ];
        let (cpu, memory) = utilization(&readings);
        assert_eq!(cpu, Some(50.0));
        assert_eq!(memory, Some(25.0));
        assert_eq!(utilization(&[]), (None, None));
    }

    /// A task of `plan` (container definitions) with task-level `cpu` and `memory`.
    fn task(cpu: Option<i64>, memory: Option<i64>, plan: serde_json::Value) -> TaskRecord {
        serde_json::from_value(serde_json::json!({
            "task": {
                "taskArn": "t", "taskDefinitionArn": "d", "clusterArn": "c",
                "containers": [], "lastStatus": "RUNNING", "desiredStatus": "RUNNING",
                "healthStatus": "UNKNOWN", "launchType": "EC2",
                "overrides": {"containerOverrides": []}, "createdAt": 0.0, "version": 1
            },
            "id": "t", "cluster": "c", "family": "f", "networkMode": "none",
            "cpuUnits": cpu, "memoryMib": memory, "plan": plan
        }))
        .unwrap()
    }

    #[test]
    fn reservations_are_the_tasks_else_its_containers() {
        let plan = serde_json::json!([
            {"name": "a", "image": "i", "cpu": 256, "memory": 128},
            {"name": "b", "image": "i", "cpu": 256, "memory": 512, "memoryReservation": 64},
            {"name": "c", "image": "i"}
        ]);
        let t = task(Some(2048), Some(1024), plan.clone());
        assert_eq!(reserved_cores(&t), 2.0);
        assert_eq!(reserved_mib(&t), Some(1024.0));
        let t = task(None, None, plan);
        assert_eq!(reserved_cores(&t), 0.5);
        assert_eq!(reserved_mib(&t), Some(192.0));
        // Nothing reserved: one vCPU, and no memory figure.
        let t = task(None, None, serde_json::json!([{"name": "a", "image": "i"}]));
        assert_eq!(reserved_cores(&t), 1.0);
        assert_eq!(reserved_mib(&t), None);
    }

    #[test]
    fn a_window_is_bounded_by_age() {
        let windows = Windows::default();
        for at in [0, 1_000, 2_000, 3_000] {
            let sample = ServiceSample {
                at_ms: at,
                cpu_percent: Some(1.0),
                memory_percent: None,
            };
            windows.push("c", "s", sample, 1_500);
        }
        let kept: Vec<i64> = windows.samples("c", "s").iter().map(|s| s.at_ms).collect();
        assert_eq!(kept, vec![2_000, 3_000]);
        windows.keep_only(&[], &[]);
        assert!(windows.samples("c", "s").is_empty());
    }
}
