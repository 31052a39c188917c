//! Service auto scaling, an Application Auto Scaling subset (README "Service
//! auto scaling", reference §4): scalable targets (a service's desired
//! count within [min, max]), target tracking policies, and the activities
//! the scaler (`scaler`) records when it changes a desired count. Records
//! are documents of the metadata store (`model`); the decision is pure
//! (`evaluate`). No HTTP types here: the API adapter is `src/autoscaling/`.
//! Depends on the runner (services, their utilization samples, and
//! `update_service` to act) and the store.

pub mod evaluate;
pub mod model;
mod scaler;

use std::sync::Arc;
use std::time::Duration;

use crate::runner::model::{Service, ServiceStatus};
use crate::runner::{Runner, RunnerError};
use crate::storage::MetadataError;
use crate::storage::metadata::DocumentStore;
use model::{
    Activity, Alarm, DIMENSION, KIND_ACTIVITIES, KIND_POLICY, KIND_TARGET, MAX_ACTIVITIES,
    NAMESPACE, PredefinedMetricSpecification, ScalableTarget, ScalingPolicy, SuspendedState,
    TargetRecord, TargetTracking,
};
pub use scaler::Scaler;

/// Why an auto scaling operation failed; `autoscaling` maps each to its wire name.
#[derive(Debug, thiserror::Error)]
pub enum ScalingError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    ObjectNotFound(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    ConcurrentUpdate(String),
    #[error("task runner: {0}")]
    Runner(RunnerError),
    #[error("metadata store: {0}")]
    Store(#[from] MetadataError),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = ScalingError> = std::result::Result<T, E>;

/// The cumulative count of requests a load balancer forwarded to a target
/// group: what `ALBRequestCountPerTarget` is computed from. The balancer
/// implements it; until one is given, that metric has no data.
pub trait RequestCounts: Send + Sync {
    fn requests_total(&self, target_group_arn: &str) -> Option<u64>;
}

impl RequestCounts for crate::balancer::Balancer {
    fn requests_total(&self, target_group_arn: &str) -> Option<u64> {
        crate::balancer::Balancer::requests_total(self, target_group_arn)
    }
}

/// How auto scaling is set up (`[scaling]`).
#[derive(Debug, Clone)]
pub struct ScalingSettings {
    pub region: String,
    pub account: String,
    /// One alarm period (CloudWatch's one minute).
    pub period: Duration,
    pub scale_out_periods: u32,
    pub scale_in_periods: u32,
}

/// The most policies one scalable target may have.
const MAX_POLICIES: usize = 50;
/// Compare-and-swap attempts before giving up with ConcurrentUpdateException.
const ATTEMPTS: usize = 10;

#[derive(Clone)]
pub struct Scaling {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn DocumentStore>,
    runner: Runner,
    settings: ScalingSettings,
}

fn corrupt(e: serde_json::Error) -> ScalingError {
    ScalingError::Corrupt(e.to_string())
}

fn to_doc<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(corrupt)
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// `service/<cluster>/<service>` -> (cluster, service).
pub fn parse_resource_id(resource_id: &str) -> Result<(String, String)> {
    let invalid = || {
        ScalingError::Validation(format!(
            "Unsupported resource ID {resource_id:?}: ECS services are named service/<cluster>/<service>"
        ))
    };
    let rest = resource_id.strip_prefix("service/").ok_or_else(invalid)?;
    let (cluster, service) = rest.split_once('/').ok_or_else(invalid)?;
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 255
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !valid(cluster) || !valid(service) {
        return Err(invalid());
    }
    Ok((cluster.to_string(), service.to_string()))
}

/// Fails unless namespace and dimension are the one pair offered.
pub fn check_dimension(namespace: &str, dimension: Option<&str>) -> Result<()> {
    if namespace != NAMESPACE {
        return Err(ScalingError::Validation(format!(
            "Unsupported service namespace {namespace:?}: only ecs"
        )));
    }
    if let Some(d) = dimension
        && d != DIMENSION
    {
        return Err(ScalingError::Validation(format!(
            "Unsupported scalable dimension {d:?}: only {DIMENSION}"
        )));
    }
    Ok(())
}

/// RegisterScalableTarget's input, checked for its namespace and dimension.
#[derive(Debug, Clone, Default)]
pub struct Register {
    pub resource_id: String,
    pub min_capacity: Option<i64>,
    pub max_capacity: Option<i64>,
    pub role_arn: Option<String>,
    pub suspended_state: Option<SuspendedState>,
}

/// PutScalingPolicy's target tracking input.
#[derive(Debug, Clone)]
pub struct PutPolicy {
    pub resource_id: String,
    pub name: String,
    pub target_value: f64,
    pub metric: PredefinedMetricSpecification,
    pub scale_out_cooldown: Option<i64>,
    pub scale_in_cooldown: Option<i64>,
    pub disable_scale_in: bool,
}

/// `app/<lb>/<id>/targetgroup/<tg>/<id>` -> the target group's ARN suffix.
pub fn target_group_of(label: &str) -> Option<&str> {
    let parts: Vec<&str> = label.split('/').collect();
    match parts.as_slice() {
        ["app", lb, lb_id, "targetgroup", tg, tg_id]
            if [lb, lb_id, tg, tg_id].iter().all(|p| !p.is_empty()) =>
        {
            label.find("targetgroup/").map(|i| &label[i..])
        }
        _ => None,
    }
}

impl Scaling {
    pub fn new(
        store: Arc<dyn DocumentStore>,
        runner: Runner,
        settings: ScalingSettings,
    ) -> Scaling {
        Scaling {
            inner: Arc::new(Inner {
                store,
                runner,
                settings,
            }),
        }
    }

    pub fn runner(&self) -> &Runner {
        &self.inner.runner
    }

    pub fn settings(&self) -> &ScalingSettings {
        &self.inner.settings
    }

    fn arn(&self, service: &str, resource: &str) -> String {
        let s = &self.inner.settings;
        format!("arn:aws:{service}:{}:{}:{resource}", s.region, s.account)
    }

    /// The service a ResourceId names, with its live counts.
    pub async fn service(&self, resource_id: &str) -> Result<Service> {
        let (cluster, name) = parse_resource_id(resource_id)?;
        match self.inner.runner.describe_service(&cluster, &name).await {
            Ok(s) => Ok(s),
            Err(RunnerError::ServiceNotFound) => Err(no_service(resource_id)),
            Err(e) => Err(ScalingError::Runner(e)),
        }
    }

    async fn target_record(&self, resource_id: &str) -> Result<Option<(i64, TargetRecord)>> {
        let Some(stored) = self.inner.store.document(KIND_TARGET, resource_id).await? else {
            return Ok(None);
        };
        Ok(Some((
            stored.version,
            serde_json::from_str(&stored.doc).map_err(corrupt)?,
        )))
    }

    /// Registers or updates a scalable target; its ARN. The service must be
    /// ACTIVE (its existence and the caller's right to it are checked by the
    /// caller with [`Scaling::service`]).
    pub async fn register(&self, input: Register) -> Result<String> {
        let service = self.service(&input.resource_id).await?;
        if service.status != ServiceStatus::Active {
            return Err(no_service(&input.resource_id));
        }
        let limit = self.inner.runner.settings().max_desired_count;
        for _ in 0..ATTEMPTS {
            let existing = self.target_record(&input.resource_id).await?;
            let (min, max) = match &existing {
                Some((_, r)) => (
                    input.min_capacity.unwrap_or(r.target.min_capacity),
                    input.max_capacity.unwrap_or(r.target.max_capacity),
                ),
                None => match (input.min_capacity, input.max_capacity) {
                    (Some(min), Some(max)) => (min, max),
                    _ => {
                        return Err(ScalingError::Validation(
                            "MinCapacity and MaxCapacity are required to register a new scalable target".into(),
                        ));
                    }
                },
            };
            if min < 0 || max < min || max > limit {
                return Err(ScalingError::Validation(format!(
                    "MinCapacity and MaxCapacity must satisfy 0 <= MinCapacity <= MaxCapacity <= {limit} (runner.max_desired_count)"
                )));
            }
            let saved = match existing {
                Some((version, mut record)) => {
                    record.target.min_capacity = min;
                    record.target.max_capacity = max;
                    if let Some(role) = &input.role_arn {
                        record.target.role_arn = role.clone();
                    }
                    if let Some(s) = input.suspended_state {
                        record.target.suspended_state = s;
                    }
                    let doc = to_doc(&record)?;
                    self.inner
                        .store
                        .save_document(KIND_TARGET, &input.resource_id, version, &doc)
                        .await?
                        .then_some(record.target.scalable_target_arn)
                }
                None => {
                    let arn = self.arn(
                        "application-autoscaling",
                        &format!("scalable-target/0e{}", uuid::Uuid::new_v4().simple()),
                    );
                    let record = TargetRecord {
                        target: ScalableTarget {
                            service_namespace: NAMESPACE.into(),
                            resource_id: input.resource_id.clone(),
                            scalable_dimension: DIMENSION.into(),
                            min_capacity: min,
                            max_capacity: max,
                            // IAM ARNs name no region.
                            role_arn: input.role_arn.clone().unwrap_or_else(|| {
                                format!(
                                    "arn:aws:iam::{}:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService",
                                    self.inner.settings.account
                                )
                            }),
                            creation_time: seconds(crate::registry::now_ms()),
                            suspended_state: input.suspended_state.unwrap_or_default(),
                            scalable_target_arn: arn.clone(),
                        },
                        state: Default::default(),
                    };
                    let doc = to_doc(&record)?;
                    self.inner
                        .store
                        .insert_document(KIND_TARGET, &input.resource_id, &doc)
                        .await?
                        .then_some(arn)
                }
            };
            if let Some(arn) = saved {
                return Ok(arn);
            }
        }
        Err(concurrent())
    }

    /// Deregisters a target and deletes its policies and activities.
    pub async fn deregister(&self, resource_id: &str) -> Result<()> {
        parse_resource_id(resource_id)?;
        let Some(stored) = self.inner.store.document(KIND_TARGET, resource_id).await? else {
            return Err(no_target(resource_id));
        };
        if !self
            .inner
            .store
            .delete_document(KIND_TARGET, resource_id, stored.version)
            .await?
        {
            return Err(concurrent());
        }
        for policy in self.policies(Some(resource_id)).await? {
            self.delete_policy(resource_id, &policy.policy_name)
                .await
                .ok();
        }
        if let Some(a) = self
            .inner
            .store
            .document(KIND_ACTIVITIES, resource_id)
            .await?
        {
            self.inner
                .store
                .delete_document(KIND_ACTIVITIES, resource_id, a.version)
                .await?;
        }
        Ok(())
    }

    /// Every registered target, by ResourceId.
    pub async fn targets(&self) -> Result<Vec<TargetRecord>> {
        self.inner
            .store
            .documents(KIND_TARGET)
            .await?
            .iter()
            .map(|k| serde_json::from_str(&k.doc).map_err(corrupt))
            .collect()
    }

    /// A target, if registered.
    pub async fn target(&self, resource_id: &str) -> Result<Option<TargetRecord>> {
        Ok(self.target_record(resource_id).await?.map(|(_, r)| r))
    }

    /// Policies, of one target when given, by ResourceId then name.
    pub async fn policies(&self, resource_id: Option<&str>) -> Result<Vec<ScalingPolicy>> {
        let all: Vec<ScalingPolicy> = self
            .inner
            .store
            .documents(KIND_POLICY)
            .await?
            .iter()
            .map(|k| serde_json::from_str(&k.doc).map_err(corrupt))
            .collect::<Result<_>>()?;
        Ok(all
            .into_iter()
            .filter(|p| resource_id.is_none_or(|r| p.resource_id == r))
            .collect())
    }

    /// Creates or updates a target tracking policy on a registered target.
    pub async fn put_policy(&self, input: PutPolicy) -> Result<ScalingPolicy> {
        if self.target(&input.resource_id).await?.is_none() {
            return Err(no_target(&input.resource_id));
        }
        let name = &input.name;
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(ScalingError::Validation(
                "PolicyName: 1 to 256 printable characters".into(),
            ));
        }
        if !(input.target_value.is_finite() && input.target_value > 0.0) {
            return Err(ScalingError::Validation(
                "TargetValue must be greater than 0".into(),
            ));
        }
        let cooldown = |c: Option<i64>, what: &str| match c {
            None => Ok(model::DEFAULT_COOLDOWN),
            Some(c) if (0..=31_536_000).contains(&c) => Ok(c),
            Some(_) => Err(ScalingError::Validation(format!(
                "{what} must be between 0 and 31536000 seconds"
            ))),
        };
        let scale_out_cooldown = cooldown(input.scale_out_cooldown, "ScaleOutCooldown")?;
        let scale_in_cooldown = cooldown(input.scale_in_cooldown, "ScaleInCooldown")?;
        match input.metric.predefined_metric_type.as_str() {
            model::CPU | model::MEMORY => {
                if input.metric.resource_label.is_some() {
                    return Err(ScalingError::Validation(format!(
                        "ResourceLabel is only for {}",
                        model::REQUESTS
                    )));
                }
            }
            model::REQUESTS => {
                if input
                    .metric
                    .resource_label
                    .as_deref()
                    .and_then(target_group_of)
                    .is_none()
                {
                    return Err(ScalingError::Validation(
                        "ALBRequestCountPerTarget needs ResourceLabel app/<load-balancer-name>/<load-balancer-id>/targetgroup/<target-group-name>/<target-group-id>".into(),
                    ));
                }
            }
            other => {
                return Err(ScalingError::Validation(format!(
                    "Unsupported PredefinedMetricType {other:?} for ECS services: {}, {} or {}",
                    model::CPU,
                    model::MEMORY,
                    model::REQUESTS
                )));
            }
        }
        let configuration = TargetTracking {
            target_value: input.target_value,
            predefined_metric_specification: input.metric.clone(),
            scale_out_cooldown,
            scale_in_cooldown,
            disable_scale_in: input.disable_scale_in,
        };
        let key = model::policy_key(&input.resource_id, name);
        for _ in 0..ATTEMPTS {
            let saved = match self.inner.store.document(KIND_POLICY, &key).await? {
                Some(stored) => {
                    let mut policy: ScalingPolicy =
                        serde_json::from_str(&stored.doc).map_err(corrupt)?;
                    policy.target_tracking_scaling_policy_configuration = configuration.clone();
                    let doc = to_doc(&policy)?;
                    self.inner
                        .store
                        .save_document(KIND_POLICY, &key, stored.version, &doc)
                        .await?
                        .then_some(policy)
                }
                None => {
                    if self.policies(Some(&input.resource_id)).await?.len() >= MAX_POLICIES {
                        return Err(ScalingError::LimitExceeded(format!(
                            "A scalable target may have at most {MAX_POLICIES} scaling policies"
                        )));
                    }
                    let policy = self.new_policy(&input, configuration.clone());
                    let doc = to_doc(&policy)?;
                    self.inner
                        .store
                        .insert_document(KIND_POLICY, &key, &doc)
                        .await?
                        .then_some(policy)
                }
            };
            if let Some(p) = saved {
                return Ok(p);
            }
        }
        Err(concurrent())
    }

    fn new_policy(&self, input: &PutPolicy, configuration: TargetTracking) -> ScalingPolicy {
        let id = uuid::Uuid::new_v4();
        let alarm = |kind: &str| {
            let name = format!("TargetTracking-{}-{kind}-{id}", input.resource_id);
            Alarm {
                alarm_arn: self.arn("cloudwatch", &format!("alarm:{name}")),
                alarm_name: name,
            }
        };
        ScalingPolicy {
            policy_arn: self.arn(
                "autoscaling",
                &format!(
                    "scalingPolicy:{id}:resource/ecs/{}:policyName/{}",
                    input.resource_id, input.name
                ),
            ),
            policy_name: input.name.clone(),
            service_namespace: NAMESPACE.into(),
            resource_id: input.resource_id.clone(),
            scalable_dimension: DIMENSION.into(),
            policy_type: model::TARGET_TRACKING.into(),
            target_tracking_scaling_policy_configuration: configuration,
            alarms: vec![alarm("AlarmHigh"), alarm("AlarmLow")],
            creation_time: seconds(crate::registry::now_ms()),
        }
    }

    pub async fn delete_policy(&self, resource_id: &str, name: &str) -> Result<()> {
        let key = model::policy_key(resource_id, name);
        for _ in 0..ATTEMPTS {
            let Some(stored) = self.inner.store.document(KIND_POLICY, &key).await? else {
                return Err(ScalingError::ObjectNotFound(format!(
                    "No scaling policy found for service namespace: ecs, resource ID: {resource_id}, scalable dimension: {DIMENSION}, policy name: {name}"
                )));
            };
            if self
                .inner
                .store
                .delete_document(KIND_POLICY, &key, stored.version)
                .await?
            {
                return Ok(());
            }
        }
        Err(concurrent())
    }

    /// A target's activities, newest first.
    pub async fn activities(&self, resource_id: &str) -> Result<Vec<Activity>> {
        match self
            .inner
            .store
            .document(KIND_ACTIVITIES, resource_id)
            .await?
        {
            Some(stored) => serde_json::from_str(&stored.doc).map_err(corrupt),
            None => Ok(Vec::new()),
        }
    }

    /// Records an activity first in its target's list, which keeps the newest
    /// [`MAX_ACTIVITIES`].
    async fn record(&self, activity: Activity) -> Result<()> {
        let key = activity.resource_id.clone();
        for _ in 0..ATTEMPTS {
            let stored = self.inner.store.document(KIND_ACTIVITIES, &key).await?;
            let mut list: Vec<Activity> = match &stored {
                Some(s) => serde_json::from_str(&s.doc).map_err(corrupt)?,
                None => Vec::new(),
            };
            list.insert(0, activity.clone());
            list.truncate(MAX_ACTIVITIES);
            let doc = to_doc(&list)?;
            let saved = match stored {
                Some(s) => {
                    self.inner
                        .store
                        .save_document(KIND_ACTIVITIES, &key, s.version, &doc)
                        .await?
                }
                None => {
                    self.inner
                        .store
                        .insert_document(KIND_ACTIVITIES, &key, &doc)
                        .await?
                }
            };
            if saved {
                return Ok(());
            }
        }
        Err(concurrent())
    }

    /// Applies `change` to a stored target until it sticks; false when it is gone.
    async fn modify_target(
        &self,
        resource_id: &str,
        change: impl Fn(&mut TargetRecord),
    ) -> Result<bool> {
        for _ in 0..ATTEMPTS {
            let Some((version, mut record)) = self.target_record(resource_id).await? else {
                return Ok(false);
            };
            change(&mut record);
            let doc = to_doc(&record)?;
            if self
                .inner
                .store
                .save_document(KIND_TARGET, resource_id, version, &doc)
                .await?
            {
                return Ok(true);
            }
        }
        Err(concurrent())
    }
}

fn no_service(resource_id: &str) -> ScalingError {
    ScalingError::Validation(format!("ECS service doesn't exist: {resource_id}"))
}

fn no_target(resource_id: &str) -> ScalingError {
    ScalingError::ObjectNotFound(format!(
        "No scalable target registered for service namespace: ecs, resource ID: {resource_id}, scalable dimension: {DIMENSION}"
    ))
}

fn concurrent() -> ScalingError {
    ScalingError::ConcurrentUpdate(
        "Concurrent updates are being made to the same scalable target; try again".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_name_a_service() {
        assert_eq!(
            parse_resource_id("service/default/web").unwrap(),
            ("default".to_string(), "web".to_string())
        );
        for bad in [
            "service/default",
            "service//web",
            "service/a/b/c",
            "table/t",
            "service/a:b/c",
            "",
        ] {
            assert!(parse_resource_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resource_labels_name_a_target_group() {
        assert_eq!(
            target_group_of("app/lb/50dc6c495c0c9188/targetgroup/tg/943f017f100becff"),
            Some("targetgroup/tg/943f017f100becff")
        );
        for bad in [
            "app/lb/1/targetgroup/tg",
            "net/lb/1/targetgroup/tg/2",
            "app//1/targetgroup/tg/2",
        ] {
            assert_eq!(target_group_of(bad), None, "{bad}");
        }
    }
}
