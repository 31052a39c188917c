//! ListContainerInstances, DescribeContainerInstances,
//! UpdateContainerInstancesState (reference §1).

use serde::Deserialize;
use serde_json::{Value, json};

use super::tasks::failure_list;
use super::{Call, EcsError, page};
use crate::runner::placement::Expression;
use crate::runner::status::InstanceState;

/// DescribeContainerInstances and UpdateContainerInstancesState take at most this many.
const MAX_INSTANCES: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    cluster: Option<String>,
    filter: Option<String>,
    status: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// The `status` filter: ECS's `ContainerInstanceStatus` (INACTIVE is not one).
fn list_status(status: Option<&str>) -> Result<Option<InstanceState>, EcsError> {
    let Some(status) = status else {
        return Ok(None);
    };
    match InstanceState::parse(status) {
        Some(s) if s != InstanceState::Inactive => Ok(Some(s)),
        _ => Err(EcsError::InvalidParameter(format!(
            "status {status}: one of ACTIVE, DRAINING, REGISTERING, DEREGISTERING, REGISTRATION_FAILED"
        ))),
    }
}

pub async fn list(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: ListInput = call.input()?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let status = list_status(input.status.as_deref())?;
    let filter =
        match input.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            Some(text) => Some(Expression::parse(text).map_err(|e| {
                EcsError::InvalidParameter(format!("Invalid filter expression: {e}"))
            })?),
            None => None,
        };
    let arns = call
        .runner
        .list_instances(&cluster, filter.as_ref(), status)
        .await?;
    let (arns, next) = page(
        &arns,
        input.max_results,
        input.next_token.as_deref(),
        100,
        100,
    )?;
    Ok(json!({ "containerInstanceArns": arns, "nextToken": next }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeInput {
    cluster: Option<String>,
    container_instances: Vec<String>,
    /// TAGS and CONTAINER_INSTANCE_HEALTH: accepted; there are no tags or
    /// health reports to include yet.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "accepted for compatibility; nothing to include yet"
    )]
    include: Vec<String>,
}

fn check_count(references: &[String]) -> Result<(), EcsError> {
    if references.is_empty() || references.len() > MAX_INSTANCES {
        return Err(EcsError::InvalidParameter(format!(
            "containerInstances: between 1 and {MAX_INSTANCES}"
        )));
    }
    Ok(())
}

pub async fn describe(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: DescribeInput = call.input()?;
    check_count(&input.container_instances)?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let (found, missing) = call
        .runner
        .describe_instances(&cluster, &input.container_instances)
        .await?;
    Ok(json!({ "containerInstances": found, "failures": failure_list(missing) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateStateInput {
    cluster: Option<String>,
    container_instances: Vec<String>,
    status: String,
}

pub async fn update_state(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: UpdateStateInput = call.input()?;
    check_count(&input.container_instances)?;
    let status = match InstanceState::parse(&input.status) {
        Some(s @ (InstanceState::Active | InstanceState::Draining)) => s,
        _ => {
            return Err(EcsError::InvalidParameter(format!(
                "status {}: ACTIVE or DRAINING",
                input.status
            )));
        }
    };
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let (changed, failures) = call
        .runner
        .update_instances_state(&cluster, &input.container_instances, status)
        .await?;
    Ok(json!({ "containerInstances": changed, "failures": failure_list(failures) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_filter_leaves_out_inactive() {
        assert_eq!(list_status(None).unwrap(), None);
        assert_eq!(
            list_status(Some("DRAINING")).unwrap(),
            Some(InstanceState::Draining)
        );
        assert!(list_status(Some("INACTIVE")).is_err());
        assert!(list_status(Some("active")).is_err());
    }
}
