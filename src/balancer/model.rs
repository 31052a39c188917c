//! The load balancer's records as the store keeps them (JSON documents of
//! kinds [`KIND_TARGET_GROUP`], [`KIND_LOAD_BALANCER`], [`KIND_LISTENER`],
//! keyed by ARN) and the target health state machine's states. ELB's
//! defaults and ranges are in `../shared/REFERENCE-ECS-CLUSTER.md` §3.

use serde::{Deserialize, Serialize};

pub const KIND_TARGET_GROUP: &str = "elb.target-group";
pub const KIND_LOAD_BALANCER: &str = "elb.load-balancer";
pub const KIND_LISTENER: &str = "elb.listener";
/// A port's claim, keyed by port number: the ARN (a JSON string) of the one
/// listener bound to it (see `load_balancers`).
pub const KIND_LISTENER_PORT: &str = "elb.listener-port";

/// What a listener accepts and a target group speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Http,
    Tcp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Tcp => "TCP",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "HTTP" => Some(Protocol::Http),
            "TCP" => Some(Protocol::Tcp),
            _ => None,
        }
    }
}

/// How a target group checks its targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub enabled: bool,
    pub protocol: Protocol,
    /// `traffic-port` (the target's own port) or a port number.
    pub port: String,
    /// HTTP only.
    pub path: String,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// HTTP codes that pass: `200`, `200,202`, `200-299` (HTTP only).
    pub matcher: String,
}

/// The health states of ELB's `TargetHealth.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetState {
    Initial,
    Healthy,
    Unhealthy,
    /// Deregistered: no new requests; removed once the delay has passed.
    Draining,
    Unused,
    /// Health checks are disabled for the group.
    Unavailable,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Initial => "initial",
            TargetState::Healthy => "healthy",
            TargetState::Unhealthy => "unhealthy",
            TargetState::Draining => "draining",
            TargetState::Unused => "unused",
            TargetState::Unavailable => "unavailable",
        }
    }
}

/// One registered target (a target group may hold the same id at several
/// ports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// A container instance id (type `instance`) or an IP address (`ip`).
    pub id: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Where the data plane and the health checks reach it, resolved from
    /// `id` at registration.
    pub address: String,
    pub state: TargetState,
    /// ELB's reason code (`Elb.InitialHealthChecking`, `Target.Timeout`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub registered_ms: i64,
    /// When deregistration started (state `draining`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining_since_ms: Option<i64>,
    /// Consecutive passing and failing checks.
    #[serde(default)]
    pub passes: u32,
    #[serde(default)]
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_ms: Option<i64>,
    /// When it last turned healthy (slow start counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since_ms: Option<i64>,
    /// The task runner's task that registered it (service tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

impl Target {
    /// Whether the data plane may send it new requests (healthy; or, when
    /// no target of the group is, any that is not draining: fail open).
    pub fn routable(&self) -> bool {
        matches!(self.state, TargetState::Healthy | TargetState::Unavailable)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    /// `instance` or `ip`.
    pub target_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    pub health_check: HealthCheck,
    /// `deregistration_delay.timeout_seconds` (0..=3600, default 300).
    pub deregistration_delay_seconds: u32,
    /// `slow_start.duration_seconds` (0 or 30..=900).
    pub slow_start_seconds: u32,
    /// `load_balancing.algorithm.type`: `round_robin` or
    /// `least_outstanding_requests`.
    pub algorithm: String,
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    /// `application` or `network`.
    pub kind: String,
    pub scheme: String,
    pub dns_name: String,
    pub created_ms: i64,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A listener's default action: forward to one target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub arn: String,
    pub load_balancer_arn: String,
    pub port: u16,
    pub protocol: Protocol,
    pub target_group_arn: String,
    pub created_ms: i64,
}

/// Records for unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn target(id: &str, port: u16, state: TargetState) -> Target {
        Target {
            id: id.into(),
            port,
            availability_zone: None,
            address: "192.0.2.2".into(),
            state,
            reason: None,
            description: None,
            registered_ms: 0,
            draining_since_ms: None,
            passes: 0,
            failures: 0,
            checked_ms: None,
            healthy_since_ms: None,
            task: None,
        }
    }

    pub fn group(targets: Vec<Target>) -> TargetGroup {
        TargetGroup {
            arn: "arn:aws:elasticloadbalancing:r:1:targetgroup/web/0123456789abcdef".into(),
            name: "web".into(),
            protocol: Protocol::Http,
            port: 80,
            target_type: "instance".into(),
            vpc_id: None,
            health_check: HealthCheck {
                enabled: true,
                protocol: Protocol::Http,
                port: "traffic-port".into(),
                path: "/".into(),
                interval_seconds: 5,
                timeout_seconds: 2,
                healthy_threshold: 2,
                unhealthy_threshold: 2,
                matcher: "200".into(),
            },
            deregistration_delay_seconds: 300,
            slow_start_seconds: 0,
            algorithm: "round_robin".into(),
            targets,
            tags: vec![],
            created_ms: 0,
        }
    }
}
