//! RegisterTargets, DeregisterTargets and DescribeTargetHealth. An
//! `instance` group's target ids are container instance ids, resolved to
//! addresses through the runner; an `ip` group's are their own addresses.

use crate::aws::xml::Xml;
use crate::balancer::BalancerError;
use crate::balancer::TargetSpec;

use super::addresses::InstanceAddresses;
use super::query::Input;
use super::{Call, ElbError};

/// The `Targets.member.N` of a request (`Id`, `Port`, `AvailabilityZone`).
fn specs(input: &Input<'_>, required: bool) -> Result<Vec<TargetSpec>, ElbError> {
    let targets = input.structs("Targets");
    if required && targets.is_empty() {
        return Err(ElbError::Validation(
            "The parameter Targets is required".into(),
        ));
    }
    // A group holds no more; each instance id is looked up once per request.
    if targets.len() > crate::balancer::targets::MAX_TARGETS {
        return Err(ElbError::Validation(format!(
            "At most {} targets per request",
            crate::balancer::targets::MAX_TARGETS
        )));
    }
    targets
        .into_iter()
        .map(|t| {
            let id = t
                .get("Id")
                .filter(|id| !id.is_empty())
                .ok_or_else(|| ElbError::Validation("Every target needs an Id".into()))?;
            let port = t
                .get("Port")
                .map(|p| {
                    p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                        ElbError::Validation(format!(
                            "A target's Port must be between 1 and 65535, got '{p}'"
                        ))
                    })
                })
                .transpose()?;
            Ok(TargetSpec {
                id: id.to_string(),
                port,
                availability_zone: t.get("AvailabilityZone").map(|z| z.to_string()),
                address: None,
            })
        })
        .collect()
}

pub async fn register(call: &Call<'_>) -> Result<Xml, ElbError> {
    let input = call.input();
    let arn = input.required("TargetGroupArn")?;
    let mut specs = specs(&input, true)?;
    let group = call.balancer.target_group(arn).await?;
    if group.target_type == "instance" {
        for spec in &mut specs {
            spec.address = call.runner.instance_address(&spec.id).await?;
            if spec.address.is_none() {
                return Err(BalancerError::InvalidTarget(format!(
                    "The following targets are not valid: {}: no container instance has this id",
                    spec.id
                ))
                .into());
            }
        }
    }
    call.balancer.register_targets(arn, &specs).await?;
    Ok(Xml::new())
}

pub async fn deregister(call: &Call<'_>) -> Result<Xml, ElbError> {
    let input = call.input();
    let arn = input.required("TargetGroupArn")?;
    call.balancer
        .deregister_targets(arn, &specs(&input, true)?)
        .await?;
    Ok(Xml::new())
}

pub async fn health(call: &Call<'_>) -> Result<Xml, ElbError> {
    let input = call.input();
    let arn = input.required("TargetGroupArn")?;
    let health = call
        .balancer
        .target_health(arn, &specs(&input, false)?)
        .await?;
    let mut x = Xml::new();
    x.members("TargetHealthDescriptions", health, |x, h| {
        x.element("Target", |x| {
            x.leaf("Id", &h.id)
                .leaf("Port", h.port)
                .leaf_opt("AvailabilityZone", h.availability_zone.as_deref());
        })
        .leaf("HealthCheckPort", &h.health_check_port)
        .element("TargetHealth", |x| {
            x.leaf("State", h.state.as_str())
                .leaf_opt("Reason", h.reason.as_deref())
                .leaf_opt("Description", h.description.as_deref());
        });
    });
    Ok(x)
}
