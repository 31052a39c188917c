//! The task runner's part of the configuration: `[runner]`, `[balancer]`
//! and `[scaling]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The ECS-style task runner (containers on a Docker Engine).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnerConfig {
    /// Whether this server runs tasks and services (and answers the ECS API).
    pub enabled: bool,
    /// The Docker Engine socket: `unix:///var/run/docker.sock`;
    /// empty: `DOCKER_HOST`, else the default socket.
    pub docker_host: String,
    /// Milliseconds between passes over tasks and services.
    pub poll_interval_ms: u64,
    /// Stopped tasks stay visible (and their containers' logs readable) this long.
    pub retain_stopped_seconds: u64,
    // Runner safety settings (README "Runner safety settings"): every
    // container runs with no-new-privileges and no capabilities; these let
    // task definitions ask for more.
    /// Host address published container ports bind to.
    pub publish_address: std::net::IpAddr,
    /// Capabilities a container may add back (`linuxParameters.capabilities.add`).
    pub allowed_capabilities: Vec<String>,
    /// Whether `networkMode: host` may be used.
    pub allow_host_network: bool,
    /// Whether a container's `user` may name root (`0`, `root`, `0:...`).
    pub allow_root_user: bool,
    /// Whether host ports below 1024 may be taken.
    pub allow_privileged_ports: bool,
    // End of the runner safety settings.
    // Limits of the ECS API (issue 14, item 2).
    /// The most tasks a service may ask for (CreateService/UpdateService `desiredCount`).
    pub max_desired_count: u32,
    // The embedded container instance (README "Container instances").
    /// Whether this server's own Docker Engine is a container instance of
    /// every cluster; false when only `wharf agent` hosts run tasks.
    pub embedded_instance: bool,
    /// CPU units it registers; unset: the engine's CPUs × 1024.
    pub cpu: Option<u32>,
    /// MiB it registers; unset: the engine's memory.
    pub memory_mib: Option<u32>,
    /// Its `ecs.availability-zone` attribute; empty: `<ecr.region>a`.
    pub availability_zone: String,
    /// Host TCP ports no task may take (besides Wharf's own `listen` port).
    pub reserved_ports: Vec<u16>,
    /// Seconds an agent may be disconnected before its service tasks are
    /// replaced on other instances (README "Agents").
    pub agent_lost_seconds: u64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        let safety = crate::runner::Safety::default();
        Self {
            enabled: true,
            docker_host: String::new(),
            poll_interval_ms: 1_000,
            retain_stopped_seconds: 3_600,
            agent_lost_seconds: 300,
            embedded_instance: true,
            publish_address: safety.publish_address,
            allowed_capabilities: safety.allowed_capabilities.into_iter().collect(),
            allow_host_network: safety.allow_host_network,
            allow_root_user: safety.allow_root_user,
            allow_privileged_ports: safety.allow_privileged_ports,
            max_desired_count: 100,
            cpu: None,
            memory_mib: None,
            availability_zone: String::new(),
            reserved_ports: vec![22, 2375, 2376],
        }
    }
}

impl RunnerConfig {
    /// The runner safety settings as the runner applies them.
    pub fn safety(&self) -> crate::runner::Safety {
        crate::runner::Safety {
            publish_address: self.publish_address,
            allowed_capabilities: self.allowed_capabilities.iter().cloned().collect(),
            allow_host_network: self.allow_host_network,
            allow_root_user: self.allow_root_user,
            allow_privileged_ports: self.allow_privileged_ports,
        }
    }
}

/// Service auto scaling (README "Service auto scaling"): how often tasks
/// are sampled and how the target tracking alarms count periods.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScalingConfig {
    /// Seconds in one alarm period (CloudWatch's one minute).
    pub period_seconds: u64,
    /// Consecutive periods above the target before a scale-out (AlarmHigh).
    pub scale_out_periods: u32,
    /// Consecutive periods below 90 % of the target before a scale-in (AlarmLow).
    pub scale_in_periods: u32,
    /// Seconds between samples of the service tasks' CPU and memory use.
    pub sample_seconds: u64,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        Self {
            period_seconds: 60,
            scale_out_periods: 3,
            scale_in_periods: 15,
            sample_seconds: 20,
        }
    }
}

/// The built-in load balancer (README "Load balancing"): listeners served
/// by HAProxy, which this server runs and drives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalancerConfig {
    /// Whether services may sit behind target groups and listeners are served
    /// (needs the task runner).
    pub enabled: bool,
    /// The address every listener binds.
    pub address: std::net::IpAddr,
    /// The HAProxy program (Debian's `haproxy`, 2.4 or later).
    pub haproxy: PathBuf,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            address: std::net::IpAddr::from([0, 0, 0, 0]),
            haproxy: PathBuf::from("haproxy"),
        }
    }
}
