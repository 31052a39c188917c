//! Auto scaling's records, in Application Auto Scaling's wire shapes
//! (PascalCase, as botocore's `application-autoscaling` model names them), so
//! a stored record is also what the Describe operations return. Kept as
//! documents of the metadata store (`DocumentStore`).

use serde::{Deserialize, Serialize};

/// Scalable targets, by ResourceId (`service/<cluster>/<service>`).
pub const KIND_TARGET: &str = "scaling.target";
/// Policies, by `<ResourceId>:<PolicyName>` (ResourceIds hold no `:`).
pub const KIND_POLICY: &str = "scaling.policy";
/// A target's activities (newest first, at most [`MAX_ACTIVITIES`]), by ResourceId.
pub const KIND_ACTIVITIES: &str = "scaling.activities";

/// Activities kept per scalable target.
pub const MAX_ACTIVITIES: usize = 100;

pub const NAMESPACE: &str = "ecs";
pub const DIMENSION: &str = "ecs:service:DesiredCount";
pub const TARGET_TRACKING: &str = "TargetTrackingScaling";
pub const CPU: &str = "ECSServiceAverageCPUUtilization";
pub const MEMORY: &str = "ECSServiceAverageMemoryUtilization";
pub const REQUESTS: &str = "ALBRequestCountPerTarget";
/// Both cooldowns' default for ECS services, in seconds (reference §4).
pub const DEFAULT_COOLDOWN: i64 = 300;

/// The key of a policy document.
pub fn policy_key(resource_id: &str, name: &str) -> String {
    format!("{resource_id}:{name}")
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SuspendedState {
    #[serde(default)]
    pub dynamic_scaling_in_suspended: bool,
    #[serde(default)]
    pub dynamic_scaling_out_suspended: bool,
    #[serde(default)]
    pub scheduled_scaling_suspended: bool,
}

/// A registered scalable target, as DescribeScalableTargets shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalableTarget {
    pub service_namespace: String,
    pub resource_id: String,
    pub scalable_dimension: String,
    pub min_capacity: i64,
    pub max_capacity: i64,
    #[serde(rename = "RoleARN")]
    pub role_arn: String,
    pub creation_time: f64,
    pub suspended_state: SuspendedState,
    #[serde(rename = "ScalableTargetARN")]
    pub scalable_target_arn: String,
}

/// What the scaler remembers of a target's last actions (for cooldowns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingState {
    /// When the last scale-out happened (ms) and the capacity it set.
    pub last_scale_out: Option<(i64, i64)>,
    pub last_scale_in_ms: Option<i64>,
}

/// A stored scalable target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRecord {
    pub target: ScalableTarget,
    #[serde(default)]
    pub state: ScalingState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PredefinedMetricSpecification {
    pub predefined_metric_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_label: Option<String>,
}

/// `TargetTrackingScalingPolicyConfiguration` as kept: cooldowns filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetTracking {
    pub target_value: f64,
    pub predefined_metric_specification: PredefinedMetricSpecification,
    pub scale_out_cooldown: i64,
    pub scale_in_cooldown: i64,
    pub disable_scale_in: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Alarm {
    pub alarm_name: String,
    #[serde(rename = "AlarmARN")]
    pub alarm_arn: String,
}

/// A scaling policy, as DescribeScalingPolicies shows it. `Alarms[0]` is
/// the AlarmHigh, `Alarms[1]` the AlarmLow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingPolicy {
    #[serde(rename = "PolicyARN")]
    pub policy_arn: String,
    pub policy_name: String,
    pub service_namespace: String,
    pub resource_id: String,
    pub scalable_dimension: String,
    pub policy_type: String,
    pub target_tracking_scaling_policy_configuration: TargetTracking,
    pub alarms: Vec<Alarm>,
    pub creation_time: f64,
}

impl ScalingPolicy {
    pub fn alarm_high(&self) -> &str {
        self.alarms.first().map_or("", |a| a.alarm_name.as_str())
    }

    pub fn alarm_low(&self) -> &str {
        self.alarms.get(1).map_or("", |a| a.alarm_name.as_str())
    }
}

/// One scaling activity, as DescribeScalingActivities shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Activity {
    pub activity_id: String,
    pub service_namespace: String,
    pub resource_id: String,
    pub scalable_dimension: String,
    pub description: String,
    pub cause: String,
    pub start_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// `Successful` or `Failed` here.
    pub status_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
}
