//! The runner's vocabulary as enums: task and container states, desired
//! status, health, dependency conditions and stop codes. Each serialises to
//! ECS's exact wire string, so the JSON the API answers with and the records
//! earlier versions stored (which held these strings) stay byte-identical.
//! Pure data; depends on serde only.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines an enum whose variants serialise to the given wire strings, with
/// `as_str`, `Display` and `ALL` (in declaration order).
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }

            /// The value of a wire string.
            pub fn parse(wire: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == wire)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// A task's `lastStatus`, declared in lifecycle order (so `<` means
    /// "earlier in the lifecycle").
    TaskStatus {
        Provisioning = "PROVISIONING",
        Pending = "PENDING",
        Activating = "ACTIVATING",
        Running = "RUNNING",
        Deactivating = "DEACTIVATING",
        Stopping = "STOPPING",
        Deprovisioning = "DEPROVISIONING",
        Stopped = "STOPPED",
        /// ECS's state after STOPPED; this runner never sets it (it prunes records instead).
        Deleted = "DELETED",
    }
}

wire_enum! {
    /// A container instance's `status` (reference §1). This runner goes
    /// straight to ACTIVE on registration and to INACTIVE on deregistration.
    InstanceState {
        Registering = "REGISTERING",
        RegistrationFailed = "REGISTRATION_FAILED",
        Active = "ACTIVE",
        Draining = "DRAINING",
        Deregistering = "DEREGISTERING",
        Inactive = "INACTIVE",
    }
}

impl InstanceState {
    /// The same status as placement sees it.
    pub fn placement(self) -> super::placement::InstanceStatus {
        use super::placement::InstanceStatus as P;
        match self {
            InstanceState::Registering => P::Registering,
            InstanceState::RegistrationFailed => P::RegistrationFailed,
            InstanceState::Active => P::Active,
            InstanceState::Draining => P::Draining,
            InstanceState::Deregistering => P::Deregistering,
            InstanceState::Inactive => P::Inactive,
        }
    }
}

impl TaskStatus {
    /// Not yet RUNNING, and not on the way down.
    pub fn is_starting(self) -> bool {
        self < TaskStatus::Running
    }

    /// On the way down, not yet STOPPED.
    pub fn is_stopping(self) -> bool {
        TaskStatus::Running < self && self < TaskStatus::Stopped
    }

    /// Whether the task has ended.
    pub fn is_final(self) -> bool {
        self >= TaskStatus::Stopped
    }
}

wire_enum! {
    /// A task's `desiredStatus`.
    DesiredStatus {
        /// ECS lists tasks not yet running under PENDING; no record holds it.
        Pending = "PENDING",
        Running = "RUNNING",
        Stopped = "STOPPED",
    }
}

wire_enum! {
    /// A container's `lastStatus`.
    ContainerState {
        Pending = "PENDING",
        Running = "RUNNING",
        Stopped = "STOPPED",
    }
}

wire_enum! {
    /// A container's or task's `healthStatus`.
    HealthStatus {
        Healthy = "HEALTHY",
        Unhealthy = "UNHEALTHY",
        Unknown = "UNKNOWN",
    }
}

wire_enum! {
    /// `dependsOn[].condition`: what a container waits for of another.
    DependencyCondition {
        /// It has started.
        Start = "START",
        /// It has exited, however.
        Complete = "COMPLETE",
        /// It has exited with 0.
        Success = "SUCCESS",
        /// Its health check passes.
        Healthy = "HEALTHY",
    }
}

wire_enum! {
    /// A task's `stopCode`.
    StopCode {
        TaskFailedToStart = "TaskFailedToStart",
        EssentialContainerExited = "EssentialContainerExited",
        UserInitiated = "UserInitiated",
        ServiceSchedulerInitiated = "ServiceSchedulerInitiated",
        /// ECS's codes for reclaimed capacity; this runner does not set them.
        SpotInterruption = "SpotInterruption",
        TerminationNotice = "TerminationNotice",
    }
}

impl StopCode {
    /// The task ended on its own (it failed), as opposed to being stopped.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            StopCode::TaskFailedToStart | StopCode::EssentialContainerExited
        )
    }
}

wire_enum! {
    /// A service's `status`.
    ServiceStatus {
        Active = "ACTIVE",
        /// Deleted; its tasks are being stopped.
        Draining = "DRAINING",
        /// Deleted, its tasks gone.
        Inactive = "INACTIVE",
    }
}

wire_enum! {
    /// A deployment's `status`: the newest is PRIMARY, older ones with tasks ACTIVE.
    DeploymentStatus {
        Primary = "PRIMARY",
        Active = "ACTIVE",
        Inactive = "INACTIVE",
    }
}

wire_enum! {
    /// A deployment's `rolloutState`.
    RolloutState {
        InProgress = "IN_PROGRESS",
        Completed = "COMPLETED",
        /// The circuit breaker tripped.
        Failed = "FAILED",
    }
}

wire_enum! {
    /// A task definition revision's `status`.
    DefinitionStatus {
        Active = "ACTIVE",
        Inactive = "INACTIVE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T>(all: &[T])
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug + fmt::Display + Copy,
    {
        for v in all {
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{v}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), *v);
        }
    }

    #[test]
    fn wire_strings_are_ecs_strings() {
        round_trip(TaskStatus::ALL);
        round_trip(DesiredStatus::ALL);
        round_trip(ContainerState::ALL);
        round_trip(HealthStatus::ALL);
        round_trip(DependencyCondition::ALL);
        round_trip(StopCode::ALL);
        round_trip(ServiceStatus::ALL);
        round_trip(DeploymentStatus::ALL);
        round_trip(RolloutState::ALL);
        round_trip(DefinitionStatus::ALL);
        let names: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "PROVISIONING",
                "PENDING",
                "ACTIVATING",
                "RUNNING",
                "DEACTIVATING",
                "STOPPING",
                "DEPROVISIONING",
                "STOPPED",
                "DELETED"
            ]
        );
        assert_eq!(
            serde_json::to_string(&StopCode::EssentialContainerExited).unwrap(),
            "\"EssentialContainerExited\""
        );
        assert!(serde_json::from_str::<DependencyCondition>("\"start\"").is_err());
    }

    #[test]
    fn lifecycle_order() {
        assert!(TaskStatus::Provisioning.is_starting());
        assert!(TaskStatus::Activating.is_starting());
        assert!(!TaskStatus::Running.is_starting());
        assert!(!TaskStatus::Running.is_stopping());
        assert!(TaskStatus::Deactivating.is_stopping());
        assert!(TaskStatus::Deprovisioning.is_stopping());
        assert!(!TaskStatus::Stopped.is_stopping());
        assert!(TaskStatus::Stopped.is_final() && TaskStatus::Deleted.is_final());
        assert_eq!(TaskStatus::parse("STOPPING"), Some(TaskStatus::Stopping));
        assert_eq!(TaskStatus::parse("stopping"), None);
    }
}
