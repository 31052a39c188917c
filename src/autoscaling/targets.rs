//! RegisterScalableTarget, DeregisterScalableTarget, DescribeScalableTargets.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{AutoScalingError, Call, page};
use crate::scaling::model::SuspendedState;
use crate::scaling::{Register, check_dimension};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterInput {
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
    min_capacity: Option<i64>,
    max_capacity: Option<i64>,
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
    suspended_state: Option<SuspendedState>,
}

pub async fn register(call: &Call<'_>) -> Result<Value, AutoScalingError> {
    let input: RegisterInput = call.input()?;
    check_dimension(&input.service_namespace, Some(&input.scalable_dimension))?;
    // A service the caller may not see answers as a missing one.
    call.scaling.service(&input.resource_id).await?;
    if !call.may_see(&input.resource_id).await? {
        return Err(AutoScalingError::Validation(format!(
            "ECS service doesn't exist: {}",
            input.resource_id
        )));
    }
    let arn = call
        .scaling
        .register(Register {
            resource_id: input.resource_id,
            min_capacity: input.min_capacity,
            max_capacity: input.max_capacity,
            role_arn: input.role_arn,
            suspended_state: input.suspended_state,
        })
        .await?;
    Ok(json!({ "ScalableTargetARN": arn }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeregisterInput {
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
}

pub async fn deregister(call: &Call<'_>) -> Result<Value, AutoScalingError> {
    let input: DeregisterInput = call.input()?;
    check_dimension(&input.service_namespace, Some(&input.scalable_dimension))?;
    crate::scaling::parse_resource_id(&input.resource_id)?;
    if !call.may_see(&input.resource_id).await? {
        return Err(AutoScalingError::ObjectNotFound(format!(
            "No scalable target registered for service namespace: ecs, resource ID: {}, scalable dimension: {}",
            input.resource_id, input.scalable_dimension
        )));
    }
    call.scaling.deregister(&input.resource_id).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeInput {
    service_namespace: String,
    #[serde(default)]
    resource_ids: Vec<String>,
    scalable_dimension: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub async fn describe(call: &Call<'_>) -> Result<Value, AutoScalingError> {
    let input: DescribeInput = call.input()?;
    check_dimension(
        &input.service_namespace,
        input.scalable_dimension.as_deref(),
    )?;
    if input.resource_ids.len() > 50 {
        return Err(AutoScalingError::Validation(
            "ResourceIds: at most 50".into(),
        ));
    }
    let mut targets = Vec::new();
    for record in call.scaling.targets().await? {
        let target = record.target;
        if !input.resource_ids.is_empty() && !input.resource_ids.contains(&target.resource_id) {
            continue;
        }
        if call.may_see(&target.resource_id).await? {
            targets.push(target);
        }
    }
    let (targets, next) = page(&targets, input.max_results, input.next_token.as_deref())?;
    Ok(json!({ "ScalableTargets": targets, "NextToken": next }))
}
