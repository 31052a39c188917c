//! PutScalingPolicy, DescribeScalingPolicies, DeleteScalingPolicy: target
//! tracking only.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{AutoScalingError, Call, page};
use crate::scaling::model::{PredefinedMetricSpecification, TARGET_TRACKING};
use crate::scaling::{PutPolicy, check_dimension};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TargetTrackingInput {
    target_value: Option<f64>,
    predefined_metric_specification: Option<PredefinedMetricSpecification>,
    customized_metric_specification: Option<Value>,
    scale_out_cooldown: Option<i64>,
    scale_in_cooldown: Option<i64>,
    #[serde(default)]
    disable_scale_in: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutInput {
    policy_name: String,
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
    policy_type: Option<String>,
    target_tracking_scaling_policy_configuration: Option<TargetTrackingInput>,
}

fn not_found(resource_id: &str, dimension: &str) -> AutoScalingError {
    AutoScalingError::ObjectNotFound(format!(
        "No scalable target registered for service namespace: ecs, resource ID: {resource_id}, scalable dimension: {dimension}"
    ))
}

pub async fn put(call: &Call<'_>) -> Result<Value, AutoScalingError> {
    let input: PutInput = call.input()?;
    check_dimension(&input.service_namespace, Some(&input.scalable_dimension))?;
    crate::scaling::parse_resource_id(&input.resource_id)?;
    // AWS's default PolicyType is StepScaling, which is not offered.
    match input.policy_type.as_deref() {
        Some(TARGET_TRACKING) => {}
        other => {
            return Err(AutoScalingError::Validation(format!(
                "PolicyType {}: only TargetTrackingScaling is supported by this server",
                other.unwrap_or("StepScaling (the default)")
            )));
        }
    }
    let configuration = input
        .target_tracking_scaling_policy_configuration
        .ok_or_else(|| {
            AutoScalingError::Validation(
                "TargetTrackingScalingPolicyConfiguration is required for TargetTrackingScaling"
                    .into(),
            )
        })?;
    if configuration.customized_metric_specification.is_some() {
        return Err(AutoScalingError::Validation(
            "CustomizedMetricSpecification is not supported by this server: use a PredefinedMetricSpecification".into(),
        ));
    }
    let metric = configuration
        .predefined_metric_specification
        .ok_or_else(|| {
            AutoScalingError::Validation("PredefinedMetricSpecification is required".into())
        })?;
    let target_value = configuration
        .target_value
        .ok_or_else(|| AutoScalingError::Validation("TargetValue is required".into()))?;
    if !call.may_see(&input.resource_id).await? {
        return Err(not_found(&input.resource_id, &input.scalable_dimension));
    }
    let policy = call
        .scaling
        .put_policy(PutPolicy {
            resource_id: input.resource_id,
            name: input.policy_name,
            target_value,
            metric,
            scale_out_cooldown: configuration.scale_out_cooldown,
            scale_in_cooldown: configuration.scale_in_cooldown,
            disable_scale_in: configuration.disable_scale_in,
        })
        .await?;
    Ok(json!({ "PolicyARN": policy.policy_arn, "Alarms": policy.alarms }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeInput {
    service_namespace: String,
    #[serde(default)]
    policy_names: Vec<String>,
    resource_id: Option<String>,
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
    let mut policies = Vec::new();
    for policy in call.scaling.policies(input.resource_id.as_deref()).await? {
        if !input.policy_names.is_empty() && !input.policy_names.contains(&policy.policy_name) {
            continue;
        }
        if call.may_see(&policy.resource_id).await? {
            policies.push(policy);
        }
    }
    let (policies, next) = page(&policies, input.max_results, input.next_token.as_deref())?;
    Ok(json!({ "ScalingPolicies": policies, "NextToken": next }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteInput {
    policy_name: String,
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
}

pub async fn delete(call: &Call<'_>) -> Result<Value, AutoScalingError> {
    let input: DeleteInput = call.input()?;
    check_dimension(&input.service_namespace, Some(&input.scalable_dimension))?;
    crate::scaling::parse_resource_id(&input.resource_id)?;
    if !call.may_see(&input.resource_id).await? {
        return Err(AutoScalingError::ObjectNotFound(format!(
            "No scaling policy found for service namespace: ecs, resource ID: {}, scalable dimension: {}, policy name: {}",
            input.resource_id, input.scalable_dimension, input.policy_name
        )));
    }
    call.scaling
        .delete_policy(&input.resource_id, &input.policy_name)
        .await?;
    Ok(json!({}))
}
