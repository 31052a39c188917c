//! Placement applied (reference §2): what a task reserves, read from its
//! definition or record; the strategies and constraints a request gives,
//! checked against ECS's limits; and where new tasks go, decided by the pure
//! [`placement::place`] over the cluster's instances.
//!
//! Choices: a standalone RunTask without strategies places at random among
//! the candidates; services default to spreading over
//! `attribute:ecs.availability-zone` then `instanceId`. The embedded
//! instance takes placements even while the Docker Engine does not answer
//! (its tasks wait for the engine and are retried, as they always have;
//! its `agentConnected` still says the engine is away): an `AGENT` failure
//! is for remote instances, whose agent is a separate process.

use serde::Serialize;

use super::instances::InstanceView;
use super::model::{
    ContainerDefinition, PlacementConstraint, PlacementStrategy, TaskDefinition, TaskRecord,
};
use super::placement::{
    self, Constraint, ConstraintSpec, ContainerShape, FailureReason, NetworkMode, PortShape,
    Protocol, RuleError, Strategy, StrategySpec, TaskDemand, TaskShape,
};
use super::{Result, Runner, RunnerError};

/// One task RunTask could not place (`failures[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacementFailure {
    /// The closest matching container instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub reason: String,
}

/// Strategies and constraints, parsed.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub strategies: Vec<Strategy>,
    pub constraints: Vec<Constraint>,
}

impl From<RuleError> for RunnerError {
    fn from(e: RuleError) -> Self {
        match e.exception() {
            "ClientException" => RunnerError::Client(e.to_string()),
            _ => RunnerError::InvalidParameter(e.to_string()),
        }
    }
}

/// Parses a request's rules with ECS's limits (task definitions carry no
/// constraints here: registration refuses the field).
pub fn parse_rules(
    strategies: &[PlacementStrategy],
    constraints: &[PlacementConstraint],
) -> Result<Rules> {
    let strategy_specs: Vec<StrategySpec<'_>> = strategies
        .iter()
        .map(|s| StrategySpec {
            kind: &s.kind,
            field: s.field.as_deref(),
        })
        .collect();
    let constraint_specs: Vec<ConstraintSpec<'_>> = constraints
        .iter()
        .map(|c| ConstraintSpec {
            kind: &c.kind,
            expression: c.expression.as_deref(),
        })
        .collect();
    Ok(Rules {
        strategies: placement::parse_strategies(&strategy_specs)?,
        constraints: placement::parse_constraints(&constraint_specs, &[])?,
    })
}

fn network_mode(mode: &str) -> NetworkMode {
    match mode {
        "host" => NetworkMode::Host,
        "awsvpc" => NetworkMode::Awsvpc,
        "none" => NetworkMode::None,
        _ => NetworkMode::Bridge,
    }
}

fn shape(
    mode: &str,
    cpu: Option<i64>,
    memory: Option<i64>,
    plan: &[ContainerDefinition],
) -> TaskShape {
    let units = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    let mib = |v: i32| u32::try_from(v.max(0)).unwrap_or(0);
    TaskShape {
        cpu: cpu.map(units),
        memory_mib: memory.map(units),
        network_mode: network_mode(mode),
        containers: plan
            .iter()
            .map(|c| ContainerShape {
                cpu: mib(c.cpu),
                memory_mib: c.memory.map(mib),
                memory_reservation_mib: c.memory_reservation.map(mib),
                port_mappings: c
                    .port_mappings
                    .iter()
                    .filter_map(|p| {
                        Some(PortShape {
                            container_port: u16::try_from(p.container_port).ok()?,
                            host_port: p.host_port.and_then(|h| u16::try_from(h).ok()),
                            protocol: if p.protocol == "udp" {
                                Protocol::Udp
                            } else {
                                Protocol::Tcp
                            },
                        })
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// What a stored task reserves where it was placed.
pub fn demand_of(task: &TaskRecord) -> TaskDemand {
    TaskDemand::from_shape(
        &shape(
            &task.network_mode,
            task.cpu_units,
            task.memory_mib,
            &task.plan,
        ),
        task.task.group.clone().unwrap_or_default(),
    )
}

/// What a new task of `definition` running `plan` reserves.
pub fn demand(
    definition: &TaskDefinition,
    plan: &[ContainerDefinition],
    group: &str,
) -> TaskDemand {
    let cpu = definition
        .cpu
        .as_deref()
        .and_then(|c| super::definitions::units(c, "vCPU", 1024.0));
    let memory = definition
        .memory
        .as_deref()
        .and_then(|m| super::definitions::units(m, "GB", 1024.0));
    TaskDemand::from_shape(&shape(&definition.network_mode, cpu, memory, plan), group)
}

/// The placement view of `views` with the embedded instance counted as
/// connected (see the module doc).
fn candidates(views: &[InstanceView]) -> Vec<placement::Instance> {
    views
        .iter()
        .map(|v| {
            let mut instance = v.placement.clone();
            instance.agent_connected |= v.record.embedded;
            instance
        })
        .collect()
}

impl Runner {
    /// Where `count` tasks of `demand` go in `cluster`: an instance ARN per
    /// placed task, and a failure per task that fits nowhere. No ACTIVE
    /// instance at all is ECS's `InvalidParameterException`.
    pub(super) async fn place(
        &self,
        cluster: &str,
        demand: &TaskDemand,
        count: usize,
        rules: &Rules,
        service: bool,
    ) -> Result<(Vec<String>, Vec<PlacementFailure>)> {
        let views = self.instance_views(cluster).await?;
        let instances = candidates(&views);
        let default_strategies;
        let strategies = if rules.strategies.is_empty() && service {
            default_strategies = Strategy::service_default();
            &default_strategies
        } else {
            &rules.strategies
        };
        let outcome = {
            let mut rng = rand::rng();
            placement::place(
                &instances,
                demand,
                count,
                strategies,
                &rules.constraints,
                &mut rng,
            )
        };
        if outcome.placed.is_empty()
            && outcome
                .failures
                .iter()
                .all(|f| f.reason == FailureReason::NoContainerInstances)
        {
            return Err(RunnerError::InvalidParameter(
                FailureReason::NoContainerInstances.as_str().into(),
            ));
        }
        let placed = outcome
            .placed
            .iter()
            .map(|id| self.container_instance_arn(cluster, id))
            .collect();
        let failures = outcome
            .failures
            .iter()
            .map(|f| PlacementFailure {
                arn: f
                    .instance
                    .as_ref()
                    .map(|id| self.container_instance_arn(cluster, id)),
                reason: f.reason.as_str().to_string(),
            })
            .collect();
        Ok((placed, failures))
    }
}

impl Runner {
    /// StartTask: one task of `demand` on each instance `references` names,
    /// as long as it is registered (`MISSING`), not INACTIVE (`INACTIVE`),
    /// and has the room and attributes (the placement reasons). No strategy
    /// or constraint applies: the caller chose.
    pub(super) async fn place_on(
        &self,
        cluster: &str,
        demand: &TaskDemand,
        references: &[String],
    ) -> Result<(Vec<String>, Vec<PlacementFailure>)> {
        let views = self.instance_views(cluster).await?;
        let mut instances = candidates(&views);
        let mut placed = Vec::new();
        let mut failures = Vec::new();
        for reference in references {
            let arn = self.reference_arn(cluster, reference);
            let failure = |reason: &str| PlacementFailure {
                arn: Some(arn.clone()),
                reason: reason.to_string(),
            };
            let found = super::instances::instance_id(reference)
                .and_then(|id| views.iter().position(|v| v.record.id == id));
            let Some(index) = found else {
                failures.push(failure("MISSING"));
                continue;
            };
            if views[index].record.status == super::status::InstanceState::Inactive {
                failures.push(failure("INACTIVE"));
                continue;
            }
            let outcome = {
                let mut rng = rand::rng();
                placement::place(&instances[index..=index], demand, 1, &[], &[], &mut rng)
            };
            match outcome.failures.first() {
                None => {
                    // A second task on the same instance sees this one's reservation.
                    instances[index].tasks.push(placement::RunningTask {
                        id: format!("starting-{}", placed.len()),
                        group: demand.group.clone(),
                        reserved: demand.resources.clone(),
                    });
                    placed.push(self.container_instance_arn(cluster, &views[index].record.id));
                }
                Some(f) => failures.push(failure(f.reason.as_str())),
            }
        }
        Ok((placed, failures))
    }
}

/// The service event ECS records when a task cannot be placed.
pub fn unable_to_place_event(service: &str, failure: &PlacementFailure) -> String {
    let instance = failure
        .arn
        .as_deref()
        .and_then(super::instances::instance_id)
        .unwrap_or("none");
    let why = match failure.reason.as_str() {
        "RESOURCE:CPU" => "has insufficient CPU units available".to_string(),
        "RESOURCE:MEMORY" => "has insufficient memory available".to_string(),
        "RESOURCE:PORTS" | "RESOURCE:PORTS_UDP" => {
            "is already using a port required by your task".to_string()
        }
        other => format!("encountered error \"{other}\""),
    };
    format!(
        "service {service} was unable to place a task because no container instance met all of its requirements. The closest matching container-instance {instance} {why}."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(kind: &str, field: Option<&str>) -> PlacementStrategy {
        PlacementStrategy {
            kind: kind.into(),
            field: field.map(String::from),
        }
    }

    fn constraint(kind: &str, expression: Option<&str>) -> PlacementConstraint {
        PlacementConstraint {
            kind: kind.into(),
            expression: expression.map(String::from),
        }
    }

    #[test]
    fn rules_are_checked_with_ecs_limits() {
        let ok = parse_rules(
            &[strategy("binpack", Some("memory"))],
            &[constraint(
                "memberOf",
                Some("attribute:ecs.os-type == linux"),
            )],
        )
        .unwrap();
        assert_eq!(ok.strategies.len(), 1);
        assert_eq!(ok.constraints.len(), 1);
        let six = vec![strategy("random", None); 6];
        assert!(matches!(
            parse_rules(&six, &[]),
            Err(RunnerError::InvalidParameter(_))
        ));
        let eleven = vec![constraint("distinctInstance", None); 11];
        assert!(matches!(
            parse_rules(&[], &eleven),
            Err(RunnerError::InvalidParameter(_))
        ));
        assert!(matches!(
            parse_rules(&[strategy("pack", None)], &[]),
            Err(RunnerError::InvalidParameter(_))
        ));
        assert!(matches!(
            parse_rules(&[], &[constraint("memberOf", Some("attribute:x =="))]),
            Err(RunnerError::InvalidParameter(_))
        ));
    }

    #[test]
    fn reservations_follow_the_definition() {
        let plan: Vec<ContainerDefinition> = serde_json::from_value(serde_json::json!([
            {"name": "a", "image": "h/a:1", "cpu": 256, "memory": 512, "memoryReservation": 128,
             "portMappings": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "hostPort": 53, "protocol": "udp"}]},
            {"name": "b", "image": "h/b:1", "memory": 64,
             "portMappings": [{"containerPort": 9000}]}
        ]))
        .unwrap();
        let definition: TaskDefinition = serde_json::from_value(serde_json::json!({
            "taskDefinitionArn": "arn", "family": "web", "revision": 1, "status": "ACTIVE",
            "containerDefinitions": plan, "networkMode": "bridge",
            "requiresCompatibilities": [], "compatibilities": [], "registeredAt": 0.0
        }))
        .unwrap();
        let d = demand(&definition, &plan, "family:web");
        assert_eq!(d.resources.cpu, 256);
        assert_eq!(d.resources.memory_mib, 128 + 64);
        assert_eq!(
            d.resources.ports_tcp.iter().copied().collect::<Vec<_>>(),
            [8080]
        );
        assert_eq!(
            d.resources.ports_udp.iter().copied().collect::<Vec<_>>(),
            [53]
        );
        let mut sized = definition.clone();
        sized.memory = Some("1 GB".into());
        sized.cpu = Some("1 vCPU".into());
        let d = demand(&sized, &plan, "g");
        assert_eq!((d.resources.cpu, d.resources.memory_mib), (1024, 1024));
    }

    #[test]
    fn the_service_event_names_the_closest_instance() {
        let failure = PlacementFailure {
            arn: Some("arn:aws:ecs:r:1:container-instance/default/abc".into()),
            reason: "RESOURCE:MEMORY".into(),
        };
        assert_eq!(
            unable_to_place_event("web", &failure),
            "service web was unable to place a task because no container instance met all of its requirements. The closest matching container-instance abc has insufficient memory available."
        );
        let failure = PlacementFailure {
            arn: None,
            reason: "DistinctInstance placement constraint unsatisfied".into(),
        };
        assert!(unable_to_place_event("web", &failure).ends_with(
            "container-instance none encountered error \"DistinctInstance placement constraint unsatisfied\"."
        ));
    }
}
