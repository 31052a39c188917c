//! CreateTargetGroup, DescribeTargetGroups, DeleteTargetGroup,
//! ModifyTargetGroup and the target group attributes.

use crate::aws::xml::Xml;
use crate::balancer::groups::load_balancers_of;
use crate::balancer::groups::{GroupFilter, HealthCheckChange, NewTargetGroup, attributes};
use crate::balancer::model::{Listener, TargetGroup};

use super::query::Input;
use super::{Call, ElbError};

/// The health check settings a request gives.
fn health_check(input: &Input<'_>) -> Result<HealthCheckChange, ElbError> {
    Ok(HealthCheckChange {
        enabled: input.bool("HealthCheckEnabled")?,
        protocol: input.protocol("HealthCheckProtocol")?,
        port: input.get("HealthCheckPort").map(str::to_string),
        path: input.get("HealthCheckPath").map(str::to_string),
        interval_seconds: input.u32("HealthCheckIntervalSeconds")?,
        timeout_seconds: input.u32("HealthCheckTimeoutSeconds")?,
        healthy_threshold: input.u32("HealthyThresholdCount")?,
        unhealthy_threshold: input.u32("UnhealthyThresholdCount")?,
        matcher: input.get("Matcher.HttpCode").map(str::to_string),
    })
}

/// A `TargetGroup` member.
fn write_group(x: &mut Xml, group: &TargetGroup, listeners: &[Listener]) {
    let hc = &group.health_check;
    x.leaf("TargetGroupArn", &group.arn)
        .leaf("TargetGroupName", &group.name)
        .leaf("Protocol", group.protocol.as_str())
        .leaf("Port", group.port)
        .leaf_opt("VpcId", group.vpc_id.as_deref())
        .leaf("HealthCheckProtocol", hc.protocol.as_str())
        .leaf("HealthCheckPort", &hc.port)
        .leaf("HealthCheckEnabled", hc.enabled)
        .leaf("HealthCheckIntervalSeconds", hc.interval_seconds)
        .leaf("HealthCheckTimeoutSeconds", hc.timeout_seconds)
        .leaf("HealthyThresholdCount", hc.healthy_threshold)
        .leaf("UnhealthyThresholdCount", hc.unhealthy_threshold)
        .leaf_opt("HealthCheckPath", (!hc.path.is_empty()).then_some(&hc.path));
    if !hc.matcher.is_empty() {
        x.element("Matcher", |x| {
            x.leaf("HttpCode", &hc.matcher);
        });
    }
    x.members(
        "LoadBalancerArns",
        load_balancers_of(listeners, &group.arn),
        |x, arn| {
            x.text(&arn);
        },
    )
    .leaf("TargetType", &group.target_type)
    .leaf("IpAddressType", "ipv4");
}

fn write_groups(x: &mut Xml, groups: &[TargetGroup], listeners: &[Listener]) {
    x.members("TargetGroups", groups, |x, g| write_group(x, g, listeners));
}

pub async fn create(call: &Call<'_>) -> Result<Xml, ElbError> {
    let input = call.input();
    let new = NewTargetGroup {
        name: input.required("Name")?.to_string(),
        protocol: input.protocol("Protocol")?,
        port: input.port("Port")?,
        target_type: input.get("TargetType").map(str::to_string),
        vpc_id: input.get("VpcId").map(str::to_string),
        health_check: health_check(&input)?,
        tags: input.tags()?,
    };
    let group = call.balancer.create_target_group(new).await?;
    let listeners = call.balancer.listeners().await?;
    let mut x = Xml::new();
    write_groups(&mut x, &[group], &listeners);
    Ok(x)
}

pub async fn describe(call: &Call<'_>) -> Result<Xml, ElbError> {
    let input = call.input();
    let filter = GroupFilter {
        arns: input
            .list("TargetGroupArns")
            .into_iter()
            .map(str::to_string)
            .collect(),
        names: input
            .list("Names")
            .into_iter()
            .map(str::to_string)
            .collect(),
        load_balancer_arn: input.get("LoadBalancerArn").map(str::to_string),
    };
    let groups = call.balancer.describe_target_groups(&filter).await?;
    let (page, next) = input.page(groups)?;
    let listeners = call.balancer.listeners().await?;
    let mut x = Xml::new();
    write_groups(&mut x, &page, &listeners);
    x.leaf_opt("NextMarker", next);
    Ok(x)
}

pub async fn delete(call: &Call<'_>) -> Result<Xml, ElbError> {
    let arn = call.input().required("TargetGroupArn")?;
    call.balancer.delete_target_group(arn).await?;
    Ok(Xml::new())
}

pub async fn modify(call: &Call<'_>) -> Result<Xml, ElbError> {
    let input = call.input();
    let arn = input.required("TargetGroupArn")?;
    let group = call
        .balancer
        .modify_target_group(arn, &health_check(&input)?)
        .await?;
    let listeners = call.balancer.listeners().await?;
    let mut x = Xml::new();
    write_groups(&mut x, &[group], &listeners);
    Ok(x)
}

fn write_attributes(group: &TargetGroup) -> Xml {
    let mut x = Xml::new();
    x.members("Attributes", attributes(group), |x, (key, value)| {
        x.leaf("Key", key).leaf("Value", value);
    });
    x
}

pub async fn modify_attributes(call: &Call<'_>) -> Result<Xml, ElbError> {
    let input = call.input();
    let arn = input.required("TargetGroupArn")?;
    let changes = input
        .structs("Attributes")
        .into_iter()
        .map(|a| {
            let key = a.get("Key").copied().unwrap_or_default();
            let value = a.get("Value").copied().unwrap_or_default();
            (key.to_string(), value.to_string())
        })
        .collect::<Vec<_>>();
    if changes.is_empty() {
        return Err(ElbError::Validation(
            "The parameter Attributes is required".into(),
        ));
    }
    let group = call
        .balancer
        .modify_target_group_attributes(arn, &changes)
        .await?;
    Ok(write_attributes(&group))
}

pub async fn describe_attributes(call: &Call<'_>) -> Result<Xml, ElbError> {
    let arn = call.input().required("TargetGroupArn")?;
    let group = call.balancer.target_group(arn).await?;
    Ok(write_attributes(&group))
}
