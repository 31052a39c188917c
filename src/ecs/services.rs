//! CreateService, UpdateService, DeleteService, DescribeServices, ListServices.

use serde::Deserialize;
use serde_json::{Value, json};

use super::tasks::failure_list;
use super::{Call, EcsError, page};
use crate::auth::EcsNeed;
use crate::runner::model::{
    CircuitBreaker, DeploymentConfiguration, PlacementConstraint, PlacementStrategy,
    ServiceLoadBalancer,
};
use crate::runner::{CreateService, UpdateService};

/// deploymentConfiguration as sent: every part optional.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigurationInput {
    maximum_percent: Option<i32>,
    minimum_healthy_percent: Option<i32>,
    deployment_circuit_breaker: Option<CircuitBreaker>,
}

impl ConfigurationInput {
    fn over(self, base: DeploymentConfiguration) -> DeploymentConfiguration {
        DeploymentConfiguration {
            maximum_percent: self.maximum_percent.unwrap_or(base.maximum_percent),
            minimum_healthy_percent: self
                .minimum_healthy_percent
                .unwrap_or(base.minimum_healthy_percent),
            deployment_circuit_breaker: self
                .deployment_circuit_breaker
                .unwrap_or(base.deployment_circuit_breaker),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInput {
    cluster: Option<String>,
    service_name: String,
    task_definition: Option<String>,
    desired_count: Option<i64>,
    deployment_configuration: Option<ConfigurationInput>,
    launch_type: Option<String>,
    scheduling_strategy: Option<String>,
    client_token: Option<String>,
    #[serde(default)]
    placement_strategy: Vec<PlacementStrategy>,
    #[serde(default)]
    placement_constraints: Vec<PlacementConstraint>,
    #[serde(default)]
    load_balancers: Vec<ServiceLoadBalancer>,
    health_check_grace_period_seconds: Option<i32>,
}

/// Putting a service behind a load balancer wires traffic of a port the
/// server listens on (an operator's listener) to the caller's tasks: only
/// operators may, so no team can take over another's target group.
fn check_wiring(call: &Call<'_>, lbs: Option<&[ServiceLoadBalancer]>) -> Result<(), EcsError> {
    if lbs.is_none_or(<[ServiceLoadBalancer]>::is_empty)
        || call.auth.admits_ecs(&call.principal, EcsNeed::Operator)
    {
        return Ok(());
    }
    crate::metrics::metrics().auth_failure("forbidden");
    Err(EcsError::AccessDenied(format!(
        "User: {} is not authorized to put a service behind a load balancer: that needs every action on every repository (`*`)",
        call.principal.subject()
    )))
}

pub async fn create(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: CreateInput = call.input()?;
    if input
        .scheduling_strategy
        .as_deref()
        .is_some_and(|s| s != "REPLICA")
    {
        return Err(EcsError::InvalidParameter(
            "schedulingStrategy: only REPLICA is offered".into(),
        ));
    }
    if input
        .launch_type
        .as_deref()
        .is_some_and(|l| l != "EC2" && l != "EXTERNAL")
    {
        return Err(EcsError::InvalidParameter(
            "launchType: EC2 or EXTERNAL".into(),
        ));
    }
    let _ = input.client_token;
    check_wiring(call, Some(&input.load_balancers))?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let task_definition = input
        .task_definition
        .ok_or_else(|| EcsError::InvalidParameter("taskDefinition is required".into()))?;
    let definition = call.runnable_definition(&task_definition).await?;
    let service = call
        .runner
        .create_service(CreateService {
            cluster,
            name: input.service_name,
            task_definition: definition.task_definition_arn,
            desired_count: input.desired_count.unwrap_or(0),
            deployment_configuration: input
                .deployment_configuration
                .map(|c| c.over(DeploymentConfiguration::default())),
            created_by: call.caller_arn(),
            placement_strategy: input.placement_strategy,
            placement_constraints: input.placement_constraints,
            load_balancers: input.load_balancers,
            health_check_grace_period_seconds: input.health_check_grace_period_seconds,
        })
        .await?;
    Ok(json!({ "service": service }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateInput {
    cluster: Option<String>,
    service: String,
    desired_count: Option<i64>,
    task_definition: Option<String>,
    #[serde(default)]
    force_new_deployment: bool,
    deployment_configuration: Option<ConfigurationInput>,
    placement_strategy: Option<Vec<PlacementStrategy>>,
    placement_constraints: Option<Vec<PlacementConstraint>>,
    load_balancers: Option<Vec<ServiceLoadBalancer>>,
    health_check_grace_period_seconds: Option<i32>,
}

pub async fn update(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: UpdateInput = call.input()?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    // The service as it runs now, and what it is to run next, must both be the caller's.
    let current = call.service(&cluster, &input.service).await?;
    // Sending the load balancers the service has is no rewiring.
    check_wiring(
        call,
        input
            .load_balancers
            .as_deref()
            .filter(|l| *l != current.load_balancers.as_slice()),
    )?;
    let task_definition = match &input.task_definition {
        Some(t) => Some(call.runnable_definition(t).await?.task_definition_arn),
        None => None,
    };
    let deployment_configuration = input
        .deployment_configuration
        .map(|c| c.over(current.deployment_configuration));
    let service = call
        .runner
        .update_service(
            &cluster,
            &input.service,
            UpdateService {
                desired_count: input.desired_count,
                task_definition,
                force_new_deployment: input.force_new_deployment,
                deployment_configuration,
                placement_strategy: input.placement_strategy,
                placement_constraints: input.placement_constraints,
                load_balancers: input.load_balancers,
                health_check_grace_period_seconds: input.health_check_grace_period_seconds,
            },
        )
        .await?;
    Ok(json!({ "service": service }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteInput {
    cluster: Option<String>,
    service: String,
    #[serde(default)]
    force: bool,
}

pub async fn delete(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: DeleteInput = call.input()?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    call.service(&cluster, &input.service).await?;
    let service = call
        .runner
        .delete_service(&cluster, &input.service, input.force)
        .await?;
    Ok(json!({ "service": service }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeInput {
    cluster: Option<String>,
    services: Vec<String>,
}

pub async fn describe(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: DescribeInput = call.input()?;
    if input.services.is_empty() || input.services.len() > 10 {
        return Err(EcsError::InvalidParameter(
            "services: 1 to 10 names or ARNs".into(),
        ));
    }
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let mut services = Vec::new();
    let mut missing = Vec::new();
    for (arn, found) in call
        .runner
        .describe_services(&cluster, &input.services)
        .await?
    {
        match found {
            Some(s) if call.may_use_service(&s).await? => services.push(s),
            _ => missing.push((arn, "MISSING".to_string())),
        }
    }
    Ok(json!({ "services": services, "failures": failure_list(missing) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    cluster: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub async fn list(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: ListInput = call.input()?;
    let cluster = call.runner.cluster(input.cluster.as_deref()).await?;
    let mut arns = Vec::new();
    for s in call.runner.list_services(&cluster).await? {
        if call.may_use_service(&s).await? {
            arns.push(s.service_arn);
        }
    }
    let (arns, next) = page(
        &arns,
        input.max_results,
        input.next_token.as_deref(),
        10,
        100,
    )?;
    Ok(json!({ "serviceArns": arns, "nextToken": next }))
}
