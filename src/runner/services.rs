//! Services as the API sees them: create, update (new deployments), delete,
//! describe, list. The scheduler (`scheduler.rs`) does the work.

use std::collections::BTreeMap;

use super::model::{
    self, Deployment, DeploymentConfiguration, DeploymentStatus, PlacementConstraint,
    PlacementStrategy, RolloutState, Service, ServiceLoadBalancer, ServiceRecord, ServiceStatus,
    TaskDefinition,
};
use super::{Result, Runner, RunnerError, corrupt, seconds, service_pins};
use crate::oci::Reference;

#[derive(Debug, Clone, Default)]
pub struct CreateService {
    pub cluster: String,
    pub name: String,
    pub task_definition: String,
    pub desired_count: i64,
    pub deployment_configuration: Option<DeploymentConfiguration>,
    pub created_by: Option<String>,
    pub placement_strategy: Vec<PlacementStrategy>,
    pub placement_constraints: Vec<PlacementConstraint>,
    pub load_balancers: Vec<ServiceLoadBalancer>,
    pub health_check_grace_period_seconds: Option<i32>,
}

#[derive(Debug, Clone, Default)]
pub struct UpdateService {
    pub desired_count: Option<i64>,
    pub task_definition: Option<String>,
    pub force_new_deployment: bool,
    pub deployment_configuration: Option<DeploymentConfiguration>,
    /// Replaces the service's rules when given (an empty list removes them).
    pub placement_strategy: Option<Vec<PlacementStrategy>>,
    pub placement_constraints: Option<Vec<PlacementConstraint>>,
    /// Replaces the service's load balancers when given (a new deployment).
    pub load_balancers: Option<Vec<ServiceLoadBalancer>>,
    pub health_check_grace_period_seconds: Option<i32>,
}

/// The service name of `service` (a name or an ARN `.../service/cluster/name`).
fn service_name(service: &str) -> &str {
    service.rsplit('/').next().unwrap_or(service)
}

fn check_configuration(c: &DeploymentConfiguration) -> Result<()> {
    // maximumPercent is bounded too: with desiredCount it sets how many tasks
    // a deployment may run at once.
    if !(0..=100).contains(&c.minimum_healthy_percent) || !(100..=200).contains(&c.maximum_percent)
    {
        return Err(RunnerError::InvalidParameter(
            "deploymentConfiguration: minimumHealthyPercent 0..100, maximumPercent 100..200".into(),
        ));
    }
    Ok(())
}

/// `healthCheckGracePeriodSeconds`: 0..=2147483647 in ECS; a day here.
fn check_grace(grace: Option<i32>) -> Result<()> {
    if grace.is_some_and(|g| !(0..=86_400).contains(&g)) {
        return Err(RunnerError::InvalidParameter(
            "healthCheckGracePeriodSeconds must be between 0 and 86400".into(),
        ));
    }
    Ok(())
}

impl Runner {
    /// A service's `loadBalancers`: at most five, each naming a container of
    /// `definition` with that `containerPort` mapped, and an existing target
    /// group of type `instance` (tasks publish ports on their host).
    async fn check_load_balancers(
        &self,
        definition: &TaskDefinition,
        lbs: &[ServiceLoadBalancer],
    ) -> Result<()> {
        if lbs.is_empty() {
            return Ok(());
        }
        if lbs.len() > 5 {
            return Err(RunnerError::InvalidParameter(
                "loadBalancers: at most 5 target groups per service".into(),
            ));
        }
        let Some(balancer) = self.balancer() else {
            return Err(RunnerError::InvalidParameter(
                "loadBalancers: the load balancer is turned off on this server".into(),
            ));
        };
        for lb in lbs {
            let container = definition
                .container_definitions
                .iter()
                .find(|c| c.name == lb.container_name)
                .ok_or_else(|| {
                    RunnerError::InvalidParameter(format!(
                        "The container {} does not exist in the task definition.",
                        lb.container_name
                    ))
                })?;
            if !container
                .port_mappings
                .iter()
                .any(|p| p.container_port == lb.container_port)
            {
                return Err(RunnerError::InvalidParameter(format!(
                    "The container {} did not have a container port {} defined.",
                    lb.container_name, lb.container_port
                )));
            }
            let group = match balancer.target_group(&lb.target_group_arn).await {
                Ok(g) => g,
                Err(crate::balancer::BalancerError::TargetGroupNotFound) => {
                    return Err(RunnerError::InvalidParameter(format!(
                        "Unable to assume role and validate the specified targetGroupArn. Target group {} not found.",
                        lb.target_group_arn
                    )));
                }
                Err(e) => return Err(RunnerError::Balancer(e.to_string())),
            };
            if group.target_type != "instance" {
                return Err(RunnerError::InvalidParameter(format!(
                    "The target group {} has target type {}; tasks with bridge or host networking need type instance.",
                    lb.target_group_arn, group.target_type
                )));
            }
        }
        Ok(())
    }

    /// `desiredCount` within 0..=`max_desired_count`: one call must not be able
    /// to ask the host for thousands of containers.
    fn check_desired_count(&self, desired: i64) -> Result<()> {
        let max = self.inner.settings.max_desired_count;
        if !(0..=max).contains(&desired) {
            return Err(RunnerError::InvalidParameter(format!(
                "desiredCount must be between 0 and {max} (runner.max_desired_count)"
            )));
        }
        Ok(())
    }

    /// Pins every container image of `definition` to its current digest;
    /// tags that do not resolve stay unpinned (their tasks then fail to pull).
    async fn pin_images(&self, definition: &TaskDefinition) -> Result<BTreeMap<String, String>> {
        let mut pinned = BTreeMap::new();
        for c in &definition.container_definitions {
            let image = self
                .inner
                .hosts
                .parse(&c.image)
                .map_err(RunnerError::Client)?;
            let digest = match &image.reference {
                Reference::Digest(d) => Some(d.clone()),
                r => self
                    .inner
                    .registry
                    .stat_manifest(&image.repo, r)
                    .await
                    .ok()
                    .map(|m| m.digest),
            };
            if let Some(d) = digest {
                pinned.insert(c.name.clone(), image.pinned(&d).to_string());
            }
        }
        Ok(pinned)
    }

    fn new_deployment(&self, definition: &TaskDefinition, desired: i64) -> Deployment {
        let now = seconds(crate::registry::now_ms());
        Deployment {
            id: format!(
                "ecs-svc/{}",
                rand::random::<u64>() % 10_000_000_000_000_000_000
            ),
            status: DeploymentStatus::Primary,
            task_definition: definition.task_definition_arn.clone(),
            desired_count: desired,
            pending_count: 0,
            running_count: 0,
            failed_tasks: 0,
            created_at: now,
            updated_at: now,
            launch_type: "EC2".into(),
            rollout_state: RolloutState::InProgress,
            rollout_state_reason: "ECS deployment in progress.".into(),
        }
    }

    /// Makes `definition` the service's new primary deployment; the others go on as ACTIVE until drained.
    pub(super) async fn deploy(
        &self,
        record: &mut ServiceRecord,
        definition: &TaskDefinition,
    ) -> Result<()> {
        let images = self.pin_images(definition).await?;
        let deployment = self.new_deployment(definition, record.service.desired_count);
        for d in &mut record.service.deployments {
            d.status = DeploymentStatus::Active;
        }
        record.images.insert(deployment.id.clone(), images);
        record.service.task_definition = definition.task_definition_arn.clone();
        let message = format!(
            "(service {}) has started a deployment {} of {}.",
            record.service.service_name, deployment.id, definition.task_definition_arn
        );
        record.service.deployments.insert(0, deployment);
        record.consecutive_failures = 0;
        record.launch_after_ms = 0;
        record.push_event(crate::registry::now_ms(), message);
        Ok(())
    }

    pub async fn create_service(&self, input: CreateService) -> Result<Service> {
        let name = &input.name;
        if !super::definitions::valid_name(name) {
            return Err(RunnerError::InvalidParameter(
                "serviceName: up to 255 letters, numbers, hyphens and underscores".into(),
            ));
        }
        self.check_desired_count(input.desired_count)?;
        let configuration = input.deployment_configuration.clone().unwrap_or_default();
        check_configuration(&configuration)?;
        super::placing::parse_rules(&input.placement_strategy, &input.placement_constraints)?;
        let definition = self.runnable_definition(&input.task_definition).await?;
        self.check_load_balancers(&definition, &input.load_balancers)
            .await?;
        check_grace(input.health_check_grace_period_seconds)?;
        let now = crate::registry::now_ms();
        let mut record = ServiceRecord {
            service: Service {
                service_arn: self.service_arn(&input.cluster, name),
                service_name: name.clone(),
                cluster_arn: self.cluster_arn(&input.cluster),
                task_definition: definition.task_definition_arn.clone(),
                desired_count: input.desired_count,
                running_count: 0,
                pending_count: 0,
                status: ServiceStatus::Active,
                launch_type: "EC2".into(),
                scheduling_strategy: "REPLICA".into(),
                deployment_configuration: configuration,
                deployments: Vec::new(),
                events: Vec::new(),
                placement_strategy: input.placement_strategy.clone(),
                placement_constraints: input.placement_constraints.clone(),
                created_at: seconds(now),
                created_by: input.created_by.clone(),
                load_balancers: input.load_balancers.clone(),
                health_check_grace_period_seconds: input.health_check_grace_period_seconds,
            },
            cluster: input.cluster.clone(),
            images: BTreeMap::new(),
            consecutive_failures: 0,
            launch_after_ms: 0,
            last_completed: None,
        };
        self.deploy(&mut record, &definition).await?;
        let doc = serde_json::to_string(&record).map_err(corrupt)?;
        if !self
            .inner
            .store
            .insert_service(&input.cluster, name, &doc, &service_pins(&record))
            .await?
        {
            return Err(RunnerError::InvalidParameter(
                "Creation of service was not idempotent.".into(),
            ));
        }
        self.wake();
        self.describe_service(&input.cluster, name).await
    }

    pub async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        update: UpdateService,
    ) -> Result<Service> {
        let name = service_name(service);
        if let Some(desired) = update.desired_count {
            self.check_desired_count(desired)?;
        }
        if let Some(c) = &update.deployment_configuration {
            check_configuration(c)?;
        }
        if update.placement_strategy.is_some() || update.placement_constraints.is_some() {
            super::placing::parse_rules(
                update.placement_strategy.as_deref().unwrap_or_default(),
                update.placement_constraints.as_deref().unwrap_or_default(),
            )?;
        }
        check_grace(update.health_check_grace_period_seconds)?;
        let definition = match &update.task_definition {
            Some(t) => Some(self.runnable_definition(t).await?),
            None => None,
        };
        // Images are pinned outside the store's compare-and-swap loop.
        let current = self.service_record(cluster, name).await?;
        if current.service.status != ServiceStatus::Active {
            return Err(RunnerError::ServiceNotActive);
        }
        // Changing the load balancers starts a new deployment, as in ECS.
        let rewired = update
            .load_balancers
            .as_ref()
            .is_some_and(|l| *l != current.service.load_balancers);
        // The load balancers as they will be, against the definition that will run.
        let lbs = update
            .load_balancers
            .as_ref()
            .or((definition.is_some()).then_some(&current.service.load_balancers));
        if let Some(lbs) = lbs {
            let checked = match &definition {
                Some(d) => d.clone(),
                None => {
                    self.runnable_definition(&current.service.task_definition)
                        .await?
                }
            };
            self.check_load_balancers(&checked, lbs).await?;
        }
        let redeploy = rewired
            || match &definition {
                Some(d) => {
                    d.task_definition_arn != current.service.task_definition
                        || update.force_new_deployment
                }
                None => update.force_new_deployment,
            };
        let target = match (&definition, redeploy) {
            (Some(d), true) => Some(d.clone()),
            // Inactive, or asking for what the operator no longer allows: refused.
            (None, true) => Some(
                self.runnable_definition(&current.service.task_definition)
                    .await?,
            ),
            _ => None,
        };
        let mut prepared = current.clone();
        if let Some(desired) = update.desired_count {
            prepared.service.desired_count = desired;
        }
        if let Some(t) = &target {
            self.deploy(&mut prepared, t).await?;
        }
        let new_deployment = target
            .is_some()
            .then(|| prepared.service.deployments.first().cloned())
            .flatten();
        let new_images = new_deployment
            .as_ref()
            .and_then(|d| prepared.images.get(&d.id).cloned());
        self.modify_service(cluster, name, |r| {
            if r.service.status != ServiceStatus::Active {
                return Err(RunnerError::ServiceNotActive);
            }
            if let Some(desired) = update.desired_count {
                r.service.desired_count = desired;
            }
            if let Some(c) = &update.deployment_configuration {
                r.service.deployment_configuration = c.clone();
            }
            if let Some(p) = &update.placement_strategy {
                r.service.placement_strategy = p.clone();
            }
            if let Some(p) = &update.placement_constraints {
                r.service.placement_constraints = p.clone();
            }
            if let Some(l) = &update.load_balancers {
                r.service.load_balancers = l.clone();
            }
            if let Some(g) = update.health_check_grace_period_seconds {
                r.service.health_check_grace_period_seconds = Some(g);
            }
            if let (Some(d), Some(images)) = (&new_deployment, &new_images) {
                for old in &mut r.service.deployments {
                    old.status = DeploymentStatus::Active;
                }
                r.images.insert(d.id.clone(), images.clone());
                r.service.task_definition = d.task_definition.clone();
                r.service.deployments.insert(0, d.clone());
                r.consecutive_failures = 0;
                r.launch_after_ms = 0;
                r.push_event(
                    crate::registry::now_ms(),
                    format!(
                        "(service {}) has started a deployment {} of {}.",
                        r.service.service_name, d.id, d.task_definition
                    ),
                );
            }
            let desired = r.service.desired_count;
            if let Some(primary) = r.service.deployments.first_mut() {
                primary.desired_count = desired;
            }
            Ok(true)
        })
        .await?;
        self.wake();
        self.describe_service(cluster, name).await
    }

    pub async fn delete_service(
        &self,
        cluster: &str,
        service: &str,
        force: bool,
    ) -> Result<Service> {
        let name = service_name(service);
        let current = self.service_record(cluster, name).await?;
        if current.service.status != ServiceStatus::Active {
            return Err(RunnerError::ServiceNotActive);
        }
        self.modify_service(cluster, name, |r| {
            if r.service.status != ServiceStatus::Active {
                return Err(RunnerError::ServiceNotActive);
            }
            if r.service.desired_count > 0 && !force {
                return Err(RunnerError::InvalidParameter(
                    "The service cannot be stopped while it is scaled above 0.".into(),
                ));
            }
            r.service.desired_count = 0;
            r.service.status = ServiceStatus::Draining;
            Ok(true)
        })
        .await?;
        self.wake();
        self.describe_service(cluster, name).await
    }

    async fn service_record(&self, cluster: &str, name: &str) -> Result<ServiceRecord> {
        // A name no service may have (one with a NUL, which PostgreSQL text
        // cannot even hold) names none, without a query.
        if !super::definitions::valid_name(name) {
            return Err(RunnerError::ServiceNotFound);
        }
        let stored = self
            .inner
            .store
            .service(cluster, name)
            .await?
            .ok_or(RunnerError::ServiceNotFound)?;
        serde_json::from_str(&stored.doc).map_err(corrupt)
    }

    /// The scopes a caller needs to see or change `service`: `push` on the
    /// repositories of every task definition its deployments run; `None`
    /// when one is gone or runs an image of no repository here (README,
    /// task runner: "Who may call what").
    pub async fn service_scopes(
        &self,
        service: &Service,
    ) -> Result<Option<Vec<crate::auth::Scope>>> {
        let mut arns = vec![service.task_definition.as_str()];
        arns.extend(
            service
                .deployments
                .iter()
                .map(|d| d.task_definition.as_str()),
        );
        arns.sort_unstable();
        arns.dedup();
        let mut images = Vec::new();
        for arn in arns {
            let Some(d) = self.definition(arn).await? else {
                return Ok(None);
            };
            images.extend(d.container_definitions.into_iter().map(|c| c.image));
        }
        Ok(super::images::repository_scopes(
            &self.inner.hosts,
            images.iter().map(String::as_str),
        ))
    }

    /// A service with its live counts.
    pub async fn describe_service(&self, cluster: &str, service: &str) -> Result<Service> {
        let record = self.service_record(cluster, service_name(service)).await?;
        let tasks = self.live_tasks(Some(cluster)).await?;
        Ok(with_counts(record, &tasks))
    }

    /// Each service asked for (a name or an ARN): its ARN, and the service
    /// with its live counts when it exists.
    pub async fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> Result<Vec<(String, Option<Service>)>> {
        let tasks = self.live_tasks(Some(cluster)).await?;
        let mut out = Vec::new();
        for s in services {
            let arn = self.service_arn(cluster, service_name(s));
            match self.service_record(cluster, service_name(s)).await {
                Ok(r) => out.push((arn, Some(with_counts(r, &tasks)))),
                Err(RunnerError::ServiceNotFound) => out.push((arn, None)),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The cluster's services that are not INACTIVE (without live counts).
    pub async fn list_services(&self, cluster: &str) -> Result<Vec<Service>> {
        Ok(self
            .service_records(Some(cluster))
            .await?
            .into_iter()
            .filter(|s| s.service.status != ServiceStatus::Inactive)
            .map(|s| s.service)
            .collect())
    }

    /// How many services of a cluster are active, and its running and pending tasks.
    pub async fn cluster_counts(&self, cluster: &str) -> Result<(i64, i64, i64)> {
        let services = self
            .service_records(Some(cluster))
            .await?
            .iter()
            .filter(|s| s.service.status == ServiceStatus::Active)
            .count() as i64;
        let tasks = self.live_tasks(Some(cluster)).await?;
        let running = tasks
            .iter()
            .filter(|t| t.task.last_status == model::TaskStatus::Running)
            .count() as i64;
        Ok((services, running, tasks.len() as i64 - running))
    }
}

/// Fills in the running and pending counts from the live tasks.
pub(super) fn with_counts(mut record: ServiceRecord, tasks: &[model::TaskRecord]) -> Service {
    let name = record.service.service_name.clone();
    let mine: Vec<&model::TaskRecord> = tasks
        .iter()
        .filter(|t| {
            t.service.as_deref() == Some(name.as_str())
                && t.task.desired_status == model::DesiredStatus::Running
        })
        .collect();
    let count = |deployment: Option<&str>, running: bool| {
        mine.iter()
            .filter(|t| deployment.is_none_or(|d| t.deployment.as_deref() == Some(d)))
            .filter(|t| (t.task.last_status == model::TaskStatus::Running) == running)
            .count() as i64
    };
    record.service.running_count = count(None, true);
    record.service.pending_count = count(None, false);
    for d in &mut record.service.deployments {
        d.running_count = count(Some(&d.id), true);
        d.pending_count = count(Some(&d.id), false);
    }
    record.service
}
