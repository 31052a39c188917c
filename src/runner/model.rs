//! The ECS shapes the runner keeps and answers with: task definitions, tasks,
//! services, deployments. Field names are the wire names (camelCase), so a
//! stored record is also what DescribeTasks and friends return.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::status::{
    ContainerState, DefinitionStatus, DependencyCondition, DeploymentStatus, DesiredStatus,
    HealthStatus, RolloutState, ServiceStatus, StopCode, TaskStatus,
};

pub const DEFAULT_STOP_TIMEOUT_SECONDS: i32 = 30;

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValuePair {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    pub container_port: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i32>,
    #[serde(default = "tcp")]
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    pub command: Vec<String>,
    #[serde(default = "health_interval")]
    pub interval: i32,
    #[serde(default = "health_timeout")]
    pub timeout: i32,
    #[serde(default = "health_retries")]
    pub retries: i32,
    #[serde(default)]
    pub start_period: i32,
}

fn health_interval() -> i32 {
    30
}
fn health_timeout() -> i32 {
    5
}
fn health_retries() -> i32 {
    3
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDependency {
    pub container_name: String,
    pub condition: DependencyCondition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub cpu: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i32>,
    #[serde(default = "yes")]
    pub essential: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_point: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default)]
    pub environment: Vec<KeyValuePair>,
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ContainerDependency>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub docker_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux_parameters: Option<LinuxParameters>,
}

/// ECS's `linuxParameters`: only `capabilities` can be honoured here; the
/// other fields (devices, tmpfs, sharedMemorySize, ...) are refused by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinuxParameters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<KernelCapabilities>,
}

/// Capabilities to add back (every container starts with none) or drop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KernelCapabilities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

fn yes() -> bool {
    true
}

impl ContainerDefinition {
    pub fn stop_timeout_seconds(&self) -> i32 {
        self.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT_SECONDS)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinition {
    pub task_definition_arn: String,
    pub family: String,
    pub revision: i64,
    pub status: DefinitionStatus,
    pub container_definitions: Vec<ContainerDefinition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    pub network_mode: String,
    pub requires_compatibilities: Vec<String>,
    pub compatibilities: Vec<String>,
    pub registered_at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deregistered_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkBinding {
    #[serde(rename = "bindIP")]
    pub bind_ip: String,
    pub container_port: i32,
    pub host_port: i32,
    pub protocol: String,
}

/// One container of a task, as DescribeTasks shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub container_arn: String,
    pub task_arn: String,
    pub name: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    pub last_status: ContainerState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub network_bindings: Vec<NetworkBinding>,
    pub health_status: HealthStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerOverride {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<KeyValuePair>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOverride {
    #[serde(default)]
    pub container_overrides: Vec<ContainerOverride>,
}

/// A task, as DescribeTasks shows it. Timestamps are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub task_arn: String,
    pub task_definition_arn: String,
    pub cluster_arn: String,
    /// The container instance it was placed on (none in records older than
    /// placement: those ran on the embedded instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    pub containers: Vec<Container>,
    pub last_status: TaskStatus,
    pub desired_status: DesiredStatus,
    pub health_status: HealthStatus,
    pub launch_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    pub overrides: TaskOverride,
    pub created_at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopping_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_stopped_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<StopCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    pub version: i64,
}

/// What the runner keeps about a task beyond its ECS shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    pub task: Task,
    pub id: String,
    pub cluster: String,
    pub family: String,
    pub network_mode: String,
    /// Task-level limits (CPU units, MiB), applied to each container as a ceiling.
    pub cpu_units: Option<i64>,
    pub memory_mib: Option<i64>,
    /// The container definitions with the overrides applied, in definition order.
    pub plan: Vec<ContainerDefinition>,
    /// Image references pinned to digests (`host/repo@sha256:...`), per container, once resolved.
    #[serde(default)]
    pub resolved: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// A stopped service task whose end the scheduler has counted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub accounted: bool,
}

impl TaskRecord {
    pub fn is_live(&self) -> bool {
        !self.task.last_status.is_final()
    }

    pub fn container_mut(&mut self, name: &str) -> Option<&mut Container> {
        self.task.containers.iter_mut().find(|c| c.name == name)
    }
}

/// One rule of `placementStrategy`, as requests give it and services keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementStrategy {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// One entry of `placementConstraints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementConstraint {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    pub maximum_percent: i32,
    pub minimum_healthy_percent: i32,
    pub deployment_circuit_breaker: CircuitBreaker,
}

impl Default for DeploymentConfiguration {
    /// ECS's defaults, except that the circuit breaker is on: a service whose
    /// tasks cannot start stops retrying instead of crash-looping forever.
    fn default() -> Self {
        DeploymentConfiguration {
            maximum_percent: 200,
            minimum_healthy_percent: 100,
            deployment_circuit_breaker: CircuitBreaker {
                enable: true,
                rollback: false,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    pub status: DeploymentStatus,
    pub task_definition: String,
    pub desired_count: i64,
    pub pending_count: i64,
    pub running_count: i64,
    pub failed_tasks: i64,
    pub created_at: f64,
    pub updated_at: f64,
    pub launch_type: String,
    pub rollout_state: RolloutState,
    pub rollout_state_reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEvent {
    pub id: String,
    pub created_at: f64,
    pub message: String,
}

/// One entry of a service's `loadBalancers`: its tasks' `containerName`
/// port `containerPort` are targets of `targetGroupArn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLoadBalancer {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub service_arn: String,
    pub service_name: String,
    pub cluster_arn: String,
    pub task_definition: String,
    pub desired_count: i64,
    pub running_count: i64,
    pub pending_count: i64,
    pub status: ServiceStatus,
    pub launch_type: String,
    pub scheduling_strategy: String,
    pub deployment_configuration: DeploymentConfiguration,
    pub deployments: Vec<Deployment>,
    pub events: Vec<ServiceEvent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_strategy: Vec<PlacementStrategy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_constraints: Vec<PlacementConstraint>,
    pub created_at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancers: Vec<ServiceLoadBalancer>,
    /// Unhealthy targets are ignored this long after a task starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_grace_period_seconds: Option<i32>,
}

/// What the scheduler keeps about a service beyond its ECS shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRecord {
    pub service: Service,
    pub cluster: String,
    /// Image references per deployment id and container, pinned to digests
    /// when the deployment was created (ECS's version consistency).
    #[serde(default)]
    pub images: BTreeMap<String, BTreeMap<String, String>>,
    /// Tasks that stopped on their own since the service last was steady.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// No task is launched before this time (Unix ms): the restart backoff.
    #[serde(default)]
    pub launch_after_ms: i64,
    /// The task definition of the last deployment that completed (for rollbacks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_completed: Option<String>,
}

impl ServiceRecord {
    /// Records `message` unless the same was recorded within `within_ms`
    /// (ECS suppresses repeated events); whether it was recorded.
    pub fn push_event_once(&mut self, now_ms: i64, message: String, within_ms: i64) -> bool {
        let since = super::seconds(now_ms - within_ms);
        if self
            .service
            .events
            .iter()
            .any(|e| e.message == message && e.created_at >= since)
        {
            return false;
        }
        self.push_event(now_ms, message);
        true
    }

    pub fn push_event(&mut self, now_ms: i64, message: String) {
        const KEEP: usize = 100;
        self.service.events.insert(
            0,
            ServiceEvent {
                id: uuid::Uuid::new_v4().to_string(),
                created_at: super::seconds(now_ms),
                message,
            },
        );
        self.service.events.truncate(KEEP);
    }
}
