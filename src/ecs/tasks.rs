//! RunTask, StartTask, StopTask, DescribeTasks, ListTasks.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, EcsError, page};
use crate::runner::model::{PlacementConstraint, PlacementStrategy, StopCode, TaskOverride};
use crate::runner::{RunTask, TaskFilter};

pub(super) fn failure_list(missing: Vec<(String, String)>) -> Vec<Value> {
    missing
        .into_iter()
        .map(|(arn, reason)| json!({ "arn": arn, "reason": reason }))
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunInput {
    task_definition: String,
    cluster: Option<String>,
    count: Option<i64>,
    started_by: Option<String>,
    group: Option<String>,
    #[serde(default)]
    overrides: TaskOverride,
    client_token: Option<String>,
    launch_type: Option<String>,
    #[serde(default)]
    placement_strategy: Vec<PlacementStrategy>,
    #[serde(default)]
    placement_constraints: Vec<PlacementConstraint>,
}

pub async fn run(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: RunInput = call.input()?;
    if let Some(l) = input.launch_type.as_deref()
        && l != "EC2"
        && l != "EXTERNAL"
    {
        return Err(EcsError::InvalidParameter(format!(
            "launchType {l}: this runner offers EC2 and EXTERNAL"
        )));
    }
    if input.started_by.as_ref().is_some_and(|s| s.len() > 128) {
        return Err(EcsError::InvalidParameter(
            "startedBy: at most 128 characters".into(),
        ));
    }
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let definition = call.runnable_definition(&input.task_definition).await?;
    let launched = call
        .runner
        .launch(
            &definition,
            RunTask {
                cluster,
                count: input.count.unwrap_or(1),
                started_by: input.started_by,
                group: input.group,
                overrides: input.overrides,
                client_token: input.client_token,
                placement_strategy: input.placement_strategy,
                placement_constraints: input.placement_constraints,
                ..Default::default()
            },
        )
        .await?;
    // What fits nowhere is answered, not refused (ECS: 200 with failures).
    Ok(json!({ "tasks": launched.tasks, "failures": launched.failures }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartInput {
    task_definition: String,
    cluster: Option<String>,
    container_instances: Vec<String>,
    started_by: Option<String>,
    group: Option<String>,
    #[serde(default)]
    overrides: TaskOverride,
}

/// StartTask: one task on each named container instance (at most 10),
/// without placement rules; an instance that cannot take it is a failure
/// (`MISSING`, `INACTIVE`, or a placement reason), as ECS answers.
pub async fn start(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: StartInput = call.input()?;
    if input.container_instances.is_empty() || input.container_instances.len() > 10 {
        return Err(EcsError::InvalidParameter(
            "containerInstances: between 1 and 10 container instances".into(),
        ));
    }
    if input.started_by.as_ref().is_some_and(|s| s.len() > 128) {
        return Err(EcsError::InvalidParameter(
            "startedBy: at most 128 characters".into(),
        ));
    }
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let definition = call.runnable_definition(&input.task_definition).await?;
    let launched = call
        .runner
        .launch(
            &definition,
            RunTask {
                cluster,
                started_by: input.started_by,
                group: input.group,
                overrides: input.overrides,
                instances: Some(input.container_instances),
                ..Default::default()
            },
        )
        .await?;
    Ok(json!({ "tasks": launched.tasks, "failures": launched.failures }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopInput {
    cluster: Option<String>,
    task: String,
    reason: Option<String>,
}

pub async fn stop(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: StopInput = call.input()?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    if call.task(Some(&cluster), &input.task).await?.is_none() {
        return Err(EcsError::InvalidParameter(
            "The referenced task was not found.".into(),
        ));
    }
    let reason = input
        .reason
        .unwrap_or_else(|| "Task stopped by user".into());
    let task = call
        .runner
        .stop_task(&cluster, &input.task, StopCode::UserInitiated, &reason)
        .await?;
    Ok(json!({ "task": task }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeInput {
    cluster: Option<String>,
    tasks: Vec<String>,
}

pub async fn describe(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: DescribeInput = call.input()?;
    if input.tasks.is_empty() || input.tasks.len() > 100 {
        return Err(EcsError::InvalidParameter(
            "tasks: 1 to 100 task ids or ARNs".into(),
        ));
    }
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let mut tasks = Vec::new();
    let mut missing = Vec::new();
    for asked in input.tasks {
        match call.task(Some(&cluster), &asked).await? {
            Some(t) => tasks.push(t),
            None => missing.push((asked, "MISSING".to_string())),
        }
    }
    Ok(json!({ "tasks": tasks, "failures": failure_list(missing) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    cluster: Option<String>,
    family: Option<String>,
    service_name: Option<String>,
    started_by: Option<String>,
    desired_status: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub async fn list(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: ListInput = call.input()?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let filter = TaskFilter {
        family: input.family,
        service: input.service_name,
        started_by: input.started_by,
        desired_status: input.desired_status,
    };
    let mut arns = Vec::new();
    for t in call.runner.list_tasks(&cluster, &filter).await? {
        if call.may_use_task(&t).await? {
            arns.push(t.task_arn);
        }
    }
    let (arns, next) = page(
        &arns,
        input.max_results,
        input.next_token.as_deref(),
        100,
        100,
    )?;
    Ok(json!({ "taskArns": arns, "nextToken": next }))
}
