//! PutAttributes, DeleteAttributes, ListAttributes, and the agent-facing
//! RegisterContainerInstance and DeregisterContainerInstance (reference §1).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, EcsError, page};
use crate::runner::attributes::{Registration, ResourceInput, TARGET_TYPE, TargetAttribute};
use crate::runner::instances::VersionInfo;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttributesInput {
    cluster: Option<String>,
    attributes: Vec<TargetAttribute>,
}

pub async fn put(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: AttributesInput = call.input()?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let attributes = call
        .runner
        .put_attributes(&cluster, &input.attributes)
        .await?;
    Ok(json!({ "attributes": attributes }))
}

pub async fn delete(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: AttributesInput = call.input()?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let attributes = call
        .runner
        .delete_attributes(&cluster, &input.attributes)
        .await?;
    Ok(json!({ "attributes": attributes }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    cluster: Option<String>,
    target_type: String,
    attribute_name: Option<String>,
    attribute_value: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub async fn list(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: ListInput = call.input()?;
    if input.target_type != TARGET_TYPE {
        return Err(EcsError::InvalidParameter(format!(
            "targetType must be {TARGET_TYPE}"
        )));
    }
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let attributes = call
        .runner
        .list_attributes(
            &cluster,
            input.attribute_name.as_deref(),
            input.attribute_value.as_deref(),
        )
        .await?;
    let (attributes, next) = page(
        &attributes,
        input.max_results,
        input.next_token.as_deref(),
        100,
        100,
    )?;
    Ok(json!({ "attributes": attributes, "nextToken": next }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterInput {
    cluster: Option<String>,
    container_instance_arn: Option<String>,
    #[serde(default)]
    total_resources: Vec<ResourceInput>,
    #[serde(default)]
    attributes: Vec<TargetAttribute>,
    #[serde(default)]
    version_info: VersionInfo,
}

pub async fn register(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: RegisterInput = call.input()?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let instance = call
        .runner
        .register_instance(Registration {
            cluster,
            container_instance_arn: input.container_instance_arn,
            total_resources: input.total_resources,
            attributes: input.attributes,
            version_info: input.version_info,
        })
        .await?;
    Ok(json!({ "containerInstance": instance }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeregisterInput {
    cluster: Option<String>,
    container_instance: String,
    #[serde(default)]
    force: bool,
}

pub async fn deregister(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: DeregisterInput = call.input()?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let instance = call
        .runner
        .deregister_instance(&cluster, &input.container_instance, input.force)
        .await?;
    Ok(json!({ "containerInstance": instance }))
}
