//! Registering and deregistering targets, and their health as
//! DescribeTargetHealth reports it. Registration starts a target at
//! `initial` (or `unavailable` when the group checks nothing); the health
//! checks move it on. Deregistration starts draining; the health loop
//! removes a draining target once the group's deregistration delay passed.

use std::net::IpAddr;

use super::model::{Target, TargetGroup, TargetState};
use super::{Balancer, BalancerError, Result, TargetSpec, now_ms};

/// At most this many targets in one group (ELB's quota per target group).
pub const MAX_TARGETS: usize = 1000;

pub const REASON_REGISTRATION: &str = "Elb.RegistrationInProgress";
pub const REASON_DEREGISTRATION: &str = "Target.DeregistrationInProgress";
pub const REASON_NOT_REGISTERED: &str = "Target.NotRegistered";
pub const REASON_CHECKS_DISABLED: &str = "Target.HealthCheckDisabled";

/// A target's health as DescribeTargetHealth answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    pub id: String,
    pub port: u16,
    pub availability_zone: Option<String>,
    /// `traffic-port` resolved to the target's port.
    pub health_check_port: String,
    pub state: TargetState,
    pub reason: Option<String>,
    pub description: Option<String>,
}

/// Starts a target over: at `initial` when the group checks health, else
/// `unavailable`.
pub(super) fn restart(target: &mut Target, checks_enabled: bool) {
    let (state, reason, description) = if checks_enabled {
        (
            TargetState::Initial,
            REASON_REGISTRATION,
            "Target registration is in progress",
        )
    } else {
        (
            TargetState::Unavailable,
            REASON_CHECKS_DISABLED,
            "Health checks are disabled for the target group",
        )
    };
    target.state = state;
    target.reason = Some(reason.into());
    target.description = Some(description.into());
    target.draining_since_ms = None;
    target.passes = 0;
    target.failures = 0;
    target.checked_ms = None;
    target.healthy_since_ms = None;
}

/// The port a spec names, or the group's.
fn port_of(group: &TargetGroup, spec: &TargetSpec) -> u16 {
    spec.port.unwrap_or(group.port)
}

/// Checks a spec against the group and resolves its address: an `ip`
/// group's target is its own address; an `instance` group's was resolved by
/// the caller.
fn resolve(group: &TargetGroup, spec: &TargetSpec) -> Result<(u16, String)> {
    let invalid = |why: &str| {
        BalancerError::InvalidTarget(format!(
            "The following targets are not valid: {}: {why}",
            spec.id
        ))
    };
    if spec.port == Some(0) {
        return Err(invalid("the port must be between 1 and 65535"));
    }
    let address = match group.target_type.as_str() {
        "ip" => {
            let ip: IpAddr = spec
                .id
                .parse()
                .map_err(|_| invalid("an ip target group's target ids are IP addresses"))?;
            spec.address.clone().unwrap_or_else(|| ip.to_string())
        }
        _ => spec
            .address
            .clone()
            .ok_or_else(|| invalid("no container instance has this id"))?,
    };
    Ok((port_of(group, spec), address))
}

impl Balancer {
    /// RegisterTargets: adds each target at `initial` (the same id may be
    /// registered at several ports); one already registered stays as it is,
    /// unless it is draining, which starts it over. Called by the API with
    /// addresses resolved from container instance ids, and by the runner.
    pub async fn register_targets(&self, group_arn: &str, targets: &[TargetSpec]) -> Result<()> {
        if targets.is_empty() {
            return Err(BalancerError::Validation(
                "At least one target must be specified".into(),
            ));
        }
        let now = now_ms();
        self.modify_group(group_arn, |group| {
            let resolved: Vec<(u16, String)> = targets
                .iter()
                .map(|spec| resolve(group, spec))
                .collect::<Result<_>>()?;
            let enabled = group.health_check.enabled;
            let mut changed = false;
            for (spec, (port, address)) in targets.iter().zip(resolved) {
                match group
                    .targets
                    .iter_mut()
                    .find(|t| t.id == spec.id && t.port == port)
                {
                    Some(existing) => {
                        if existing.state == TargetState::Draining {
                            restart(existing, enabled);
                            existing.address = address;
                            existing.registered_ms = now;
                            changed = true;
                        }
                    }
                    None => {
                        if group.targets.len() >= MAX_TARGETS {
                            return Err(BalancerError::TooMany(
                                "TooManyTargets",
                                format!("A target group holds at most {MAX_TARGETS} targets"),
                            ));
                        }
                        let mut target = Target {
                            id: spec.id.clone(),
                            port,
                            availability_zone: spec.availability_zone.clone(),
                            address,
                            state: TargetState::Initial,
                            reason: None,
                            description: None,
                            registered_ms: now,
                            draining_since_ms: None,
                            passes: 0,
                            failures: 0,
                            checked_ms: None,
                            healthy_since_ms: None,
                            task: None,
                        };
                        restart(&mut target, enabled);
                        group.targets.push(target);
                        changed = true;
                    }
                }
            }
            Ok(changed)
        })
        .await?;
        Ok(())
    }

    /// DeregisterTargets: each registered target starts draining; targets
    /// not registered (or already draining) are ignored, as in ELB.
    pub async fn deregister_targets(&self, group_arn: &str, targets: &[TargetSpec]) -> Result<()> {
        if targets.is_empty() {
            return Err(BalancerError::Validation(
                "At least one target must be specified".into(),
            ));
        }
        let now = now_ms();
        self.modify_group(group_arn, |group| {
            let mut changed = false;
            for spec in targets {
                let port = port_of(group, spec);
                for target in &mut group.targets {
                    if target.id == spec.id
                        && target.port == port
                        && target.state != TargetState::Draining
                    {
                        target.state = TargetState::Draining;
                        target.reason = Some(REASON_DEREGISTRATION.into());
                        target.description = Some("Target deregistration is in progress".into());
                        target.draining_since_ms = Some(now);
                        changed = true;
                    }
                }
            }
            Ok(changed)
        })
        .await?;
        Ok(())
    }

    /// DescribeTargetHealth: every target of the group, or those asked for
    /// (an id without a port: each registration of it); one not registered
    /// is `unused` with `Target.NotRegistered`.
    pub async fn target_health(
        &self,
        group_arn: &str,
        asked: &[TargetSpec],
    ) -> Result<Vec<TargetHealth>> {
        let group = self.target_group(group_arn).await?;
        let view = |t: &Target| TargetHealth {
            id: t.id.clone(),
            port: t.port,
            availability_zone: t.availability_zone.clone(),
            health_check_port: health_check_port(&group, t.port),
            state: t.state,
            reason: t.reason.clone(),
            description: t.description.clone(),
        };
        if asked.is_empty() {
            return Ok(group.targets.iter().map(view).collect());
        }
        let mut out = Vec::new();
        for spec in asked {
            let found: Vec<TargetHealth> = group
                .targets
                .iter()
                .filter(|t| t.id == spec.id && spec.port.is_none_or(|p| p == t.port))
                .map(view)
                .collect();
            if found.is_empty() {
                let port = port_of(&group, spec);
                out.push(TargetHealth {
                    id: spec.id.clone(),
                    port,
                    availability_zone: spec.availability_zone.clone(),
                    health_check_port: health_check_port(&group, port),
                    state: TargetState::Unused,
                    reason: Some(REASON_NOT_REGISTERED.into()),
                    description: Some("Target is not registered to the target group".into()),
                });
            }
            out.extend(found);
        }
        Ok(out)
    }
}

/// The port health checks reach a target at.
fn health_check_port(group: &TargetGroup, port: u16) -> String {
    match group.health_check.port.as_str() {
        "traffic-port" => port.to_string(),
        p => p.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::balancer::BalancerSettings;
    use crate::balancer::groups::{HealthCheckChange, NewTargetGroup};
    use crate::balancer::model::Protocol;
    use crate::storage::{Database, SqlMetadata};

    async fn balancer(dir: &tempfile::TempDir) -> Balancer {
        let store = SqlMetadata::open(&Database::Sqlite {
            path: dir.path().join("metadata.db"),
            readers: 1,
        })
        .await
        .unwrap();
        let settings = BalancerSettings {
            region: "us-east-1".into(),
            account: "123456789012".into(),
            reserved_ports: vec![5000],
        };
        Balancer::new(Arc::new(store), settings)
    }

    fn ip(id: &str, port: Option<u16>) -> TargetSpec {
        TargetSpec {
            id: id.into(),
            port,
            availability_zone: None,
            address: None,
        }
    }

    async fn group(b: &Balancer, name: &str, target_type: &str) -> String {
        b.create_target_group(NewTargetGroup {
            name: name.into(),
            protocol: Some(Protocol::Http),
            port: Some(80),
            target_type: Some(target_type.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .arn
    }

    fn states(group: &TargetGroup) -> Vec<(String, u16, TargetState, Option<String>)> {
        group
            .targets
            .iter()
            .map(|t| (t.id.clone(), t.port, t.state, t.reason.clone()))
            .collect()
    }

    #[tokio::test]
    async fn register_drain_and_register_again() {
        let dir = tempfile::tempdir().unwrap();
        let b = balancer(&dir).await;
        let arn = group(&b, "web", "ip").await;
        b.register_targets(&arn, &[ip("10.0.0.1", None), ip("10.0.0.1", Some(81))])
            .await
            .unwrap();
        let g = b.target_group(&arn).await.unwrap();
        let initial = Some(REASON_REGISTRATION.to_string());
        assert_eq!(
            states(&g),
            [
                ("10.0.0.1".into(), 80, TargetState::Initial, initial.clone()),
                ("10.0.0.1".into(), 81, TargetState::Initial, initial.clone()),
            ]
        );
        assert_eq!(g.targets[0].address, "10.0.0.1");

        b.deregister_targets(&arn, &[ip("10.0.0.1", Some(81)), ip("10.9.9.9", None)])
            .await
            .unwrap();
        let g = b.target_group(&arn).await.unwrap();
        assert_eq!(g.targets[1].state, TargetState::Draining);
        assert!(g.targets[1].draining_since_ms.is_some());
        assert_eq!(g.targets[0].state, TargetState::Initial);

        b.register_targets(&arn, &[ip("10.0.0.1", Some(81))])
            .await
            .unwrap();
        let g = b.target_group(&arn).await.unwrap();
        assert_eq!(g.targets[1].state, TargetState::Initial);
        assert_eq!(g.targets[1].draining_since_ms, None);

        // An ip group's ids are addresses; an instance group's need one resolved.
        let bad = b.register_targets(&arn, &[ip("web-1", None)]).await;
        assert!(
            matches!(bad, Err(BalancerError::InvalidTarget(_))),
            "{bad:?}"
        );
        let instances = group(&b, "by-instance", "instance").await;
        let bad = b.register_targets(&instances, &[ip("ci-1", None)]).await;
        assert!(
            matches!(bad, Err(BalancerError::InvalidTarget(_))),
            "{bad:?}"
        );
        let resolved = TargetSpec {
            address: Some("127.0.0.1".into()),
            ..ip("ci-1", Some(8080))
        };
        b.register_targets(&instances, &[resolved]).await.unwrap();
        let g = b.target_group(&instances).await.unwrap();
        assert_eq!(g.targets[0].address, "127.0.0.1");
    }

    #[tokio::test]
    async fn checks_off_means_unavailable_and_groups_hold_1000_targets() {
        let dir = tempfile::tempdir().unwrap();
        let b = balancer(&dir).await;
        let arn = group(&b, "web", "ip").await;
        b.register_targets(&arn, &[ip("10.0.0.1", None)])
            .await
            .unwrap();
        let off = HealthCheckChange {
            enabled: Some(false),
            ..Default::default()
        };
        b.modify_target_group(&arn, &off).await.unwrap();
        b.register_targets(&arn, &[ip("10.0.0.2", None)])
            .await
            .unwrap();
        let g = b.target_group(&arn).await.unwrap();
        let unavailable = Some(REASON_CHECKS_DISABLED.to_string());
        assert_eq!(
            states(&g),
            [
                (
                    "10.0.0.1".into(),
                    80,
                    TargetState::Unavailable,
                    unavailable.clone()
                ),
                ("10.0.0.2".into(), 80, TargetState::Unavailable, unavailable),
            ]
        );

        let many: Vec<TargetSpec> = (0..998u16)
            .map(|i| ip(&format!("10.1.{}.{}", i / 256, i % 256), None))
            .collect();
        b.register_targets(&arn, &many).await.unwrap();
        assert_eq!(
            b.target_group(&arn).await.unwrap().targets.len(),
            MAX_TARGETS
        );
        let full = b.register_targets(&arn, &[ip("10.2.0.1", None)]).await;
        assert!(
            matches!(full, Err(BalancerError::TooMany("TooManyTargets", _))),
            "{full:?}"
        );
        // Registering one already there is no new target.
        b.register_targets(&arn, &[ip("10.0.0.1", None)])
            .await
            .unwrap();
    }
}
