//! Task placement over a cluster of container instances, as pure functions:
//! what a task reserves ([`TaskDemand`]), the rules a caller may ask for
//! ([`Strategy`], [`Constraint`]), the cluster query language ([`Expression`],
//! also the `filter` of ListContainerInstances), where tasks go ([`place`])
//! and which tasks a service stops when it shrinks ([`scale_in`]).
//!
//! `placing` applies it to the stored container instances (RunTask and the
//! service scheduler); `instances` uses the query language for
//! ListContainerInstances. It depends on no other part of the crate (no store, no HTTP, no Docker),
//! so every rule is tested here without a daemon. The facts come from
//! `REFERENCE-ECS-CLUSTER.md` §1 and §2; choices AWS does not document are
//! marked "inferred" where they are made.

mod demand;
mod engine;
mod query;
mod rules;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

pub use demand::{ContainerShape, NetworkMode, PortShape, Protocol, TaskDemand, TaskShape};
pub use engine::{Failure, FailureReason, Placement, place, scale_in};
pub use query::{Comparison, Expression, Pattern, QueryError, Subject, Term, Test, Value};
pub use rules::{
    BinpackField, Constraint, ConstraintSpec, RuleError, SpreadField, Strategy, StrategySpec,
    parse_constraints, parse_strategies,
};

/// A container instance's status (ECS `ContainerInstance.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceStatus {
    Registering,
    RegistrationFailed,
    Active,
    Draining,
    Deregistering,
    Inactive,
}

impl InstanceStatus {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registering => "REGISTERING",
            Self::RegistrationFailed => "REGISTRATION_FAILED",
            Self::Active => "ACTIVE",
            Self::Draining => "DRAINING",
            Self::Deregistering => "DEREGISTERING",
            Self::Inactive => "INACTIVE",
        }
    }
}

/// An amount of the placement resources: registered capacity, a task's
/// reservation, or what remains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU units (1024 per core).
    pub cpu: u32,
    pub memory_mib: u32,
    /// Host TCP ports held (for an instance: the agent-reserved ones).
    pub ports_tcp: BTreeSet<u16>,
    pub ports_udp: BTreeSet<u16>,
}

/// A task on an instance that holds a reservation there: its desired status
/// is RUNNING (these make `runningTasksCount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningTask {
    pub id: String,
    /// `service:NAME` or `family:NAME` or the caller's RunTask `group`.
    pub group: String,
    pub reserved: Resources,
}

/// A container instance as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The container instance id (the last part of its ARN).
    pub id: String,
    pub ec2_instance_id: Option<String>,
    pub status: InstanceStatus,
    pub agent_connected: bool,
    pub agent_version: Option<String>,
    pub registered_at: OffsetDateTime,
    /// What the agent registered, including its reserved ports.
    pub registered: Resources,
    /// Built-in (`ecs.*`) and custom attributes; a name without a value maps
    /// to the empty string.
    pub attributes: BTreeMap<String, String>,
    pub tasks: Vec<RunningTask>,
}

impl Instance {
    /// ECS `remainingResources`: CPU and memory less the tasks' reservations;
    /// ports are the agent's reserved ones and every static port a task holds.
    pub fn remaining(&self) -> Resources {
        let mut left = self.registered.clone();
        for task in &self.tasks {
            left.cpu = left.cpu.saturating_sub(task.reserved.cpu);
            left.memory_mib = left.memory_mib.saturating_sub(task.reserved.memory_mib);
            left.ports_tcp.extend(&task.reserved.ports_tcp);
            left.ports_udp.extend(&task.reserved.ports_udp);
        }
        left
    }

    /// How many of its tasks belong to `group`.
    pub fn group_count(&self, group: &str) -> usize {
        self.tasks.iter().filter(|t| t.group == group).count()
    }
}
