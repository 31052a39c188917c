//! CreateCluster, DescribeClusters, ListClusters, DeleteCluster.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, EcsError, page};
use crate::runner::Runner;

async fn cluster_json(runner: &Runner, name: &str) -> Result<Value, EcsError> {
    let (services, running, pending) = runner.cluster_counts(name).await?;
    Ok(json!({
        "clusterArn": runner.cluster_arn(name),
        "clusterName": name,
        "status": "ACTIVE",
        "registeredContainerInstancesCount": 1,
        "runningTasksCount": running,
        "pendingTasksCount": pending,
        "activeServicesCount": services,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInput {
    cluster_name: Option<String>,
}

pub async fn create(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: CreateInput = call.input()?;
    let name = input.cluster_name.unwrap_or_else(|| "default".into());
    let (name, _) = call.runner.create_cluster(&name).await?;
    Ok(json!({ "cluster": cluster_json(call.runner, &name).await? }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeInput {
    #[serde(default)]
    clusters: Vec<String>,
}

pub async fn describe(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: DescribeInput = call.input()?;
    // ECS's own bound: each name costs lookups of the cluster's services and tasks.
    if input.clusters.len() > 100 {
        return Err(EcsError::InvalidParameter(
            "clusters: at most 100 names or ARNs".into(),
        ));
    }
    let asked = if input.clusters.is_empty() {
        vec!["default".to_string()]
    } else {
        input.clusters
    };
    let mut clusters = Vec::new();
    let mut failures = Vec::new();
    for c in asked {
        match call.runner.cluster(Some(&c)).await {
            Ok(name) => clusters.push(cluster_json(call.runner, &name).await?),
            Err(crate::runner::RunnerError::ClusterNotFound) => failures.push(json!({
                "arn": if c.starts_with("arn:") { c.clone() } else { call.runner.cluster_arn(&c) },
                "reason": "MISSING",
            })),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json!({ "clusters": clusters, "failures": failures }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub async fn list(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: ListInput = call.input()?;
    let arns: Vec<String> = call
        .runner
        .clusters()
        .await?
        .iter()
        .map(|(name, _)| call.runner.cluster_arn(name))
        .collect();
    let (arns, next) = page(
        &arns,
        input.max_results,
        input.next_token.as_deref(),
        100,
        100,
    )?;
    Ok(json!({ "clusterArns": arns, "nextToken": next }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteInput {
    cluster: String,
}

pub async fn delete(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: DeleteInput = call.input()?;
    let name = call.runner.cluster(Some(&input.cluster)).await?;
    let mut cluster = cluster_json(call.runner, &name).await?;
    call.runner.delete_cluster(&name).await?;
    cluster["status"] = json!("INACTIVE");
    Ok(json!({ "cluster": cluster }))
}
