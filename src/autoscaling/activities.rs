//! DescribeScalingActivities: what the scaler did, newest first.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{AutoScalingError, Call, page};
use crate::scaling::check_dimension;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeInput {
    service_namespace: String,
    resource_id: Option<String>,
    scalable_dimension: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    /// Not-scaled activities are not recorded here; accepted and ignored.
    #[serde(default)]
    #[expect(dead_code, reason = "accepted for the CLI's sake; nothing to include")]
    include_not_scaled_activities: bool,
}

pub async fn describe(call: &Call<'_>) -> Result<Value, AutoScalingError> {
    let input: DescribeInput = call.input()?;
    check_dimension(
        &input.service_namespace,
        input.scalable_dimension.as_deref(),
    )?;
    let resources: Vec<String> = match input.resource_id {
        Some(r) => {
            crate::scaling::parse_resource_id(&r)?;
            vec![r]
        }
        None => call
            .scaling
            .targets()
            .await?
            .into_iter()
            .map(|t| t.target.resource_id)
            .collect(),
    };
    let mut activities = Vec::new();
    for resource_id in resources {
        if call.may_see(&resource_id).await? {
            activities.extend(call.scaling.activities(&resource_id).await?);
        }
    }
    activities.sort_by(|a, b| b.start_time.total_cmp(&a.start_time));
    let (activities, next) = page(&activities, input.max_results, input.next_token.as_deref())?;
    Ok(json!({ "ScalingActivities": activities, "NextToken": next }))
}
