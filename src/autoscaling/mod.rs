//! Service auto scaling's API, an Application Auto Scaling subset (AWS JSON
//! 1.1): `POST /` with `X-Amz-Target: AnyScaleFrontendService.<Operation>`,
//! SigV4-signed for `application-autoscaling` with Wharf-issued access keys.
//! Handlers parse the request, call `crate::scaling`, and shape its answer;
//! errors map to their wire names in `error.rs`. A scalable target belongs
//! to its ECS service: a caller sees and changes only the targets of
//! services it may see (push on their images' repositories); another's
//! answers as a missing one does.

mod activities;
mod error;
mod operation;
mod policies;
mod targets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::FromRef;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::{Auth, EcsNeed, Principal};
use crate::aws;
use crate::metrics::metrics;
use crate::scaling::{Scaling, ScalingError};
pub use error::AutoScalingError;
pub use operation::Operation;

pub const TARGET_PREFIX: &str = "AnyScaleFrontendService.";

/// Auto scaling, when this process runs the task runner.
#[derive(Clone)]
pub struct AutoScalingState {
    pub scaling: Option<Scaling>,
    pub auth: Arc<Auth>,
}

impl<S> FromRef<S> for AutoScalingState
where
    Option<Scaling>: FromRef<S>,
    Arc<Auth>: FromRef<S>,
{
    fn from_ref(state: &S) -> Self {
        AutoScalingState {
            scaling: Option::<Scaling>::from_ref(state),
            auth: Arc::<Auth>::from_ref(state),
        }
    }
}

impl aws::Service for AutoScalingState {
    const TARGET_PREFIX: &'static str = TARGET_PREFIX;
    const SIGNING_NAME: &'static str = "application-autoscaling";

    fn auth(&self) -> &Auth {
        &self.auth
    }

    type Operation = Operation;

    fn operation(name: &str) -> Option<Operation> {
        Operation::parse(name)
    }

    fn body_limit(&self, _: &Operation) -> usize {
        aws::MAX_REQUEST_BYTES
    }

    async fn call(self, request: aws::Request<Operation>) -> Response {
        let result = async {
            let Some(scaling) = &self.scaling else {
                return Err(AutoScalingError::Validation(
                    "the task runner is turned off on this server (runner.enabled = false)".into(),
                ));
            };
            let call = Call {
                scaling,
                auth: &self.auth,
                principal: request.principal,
                body: request.body,
                seen: Mutex::default(),
            };
            dispatch(&call, request.operation).await
        }
        .await;
        match result {
            Ok(output) => aws::output(output),
            Err(e) => e.into_response(),
        }
    }
}

/// One authenticated call.
pub struct Call<'a> {
    pub scaling: &'a Scaling,
    pub auth: &'a Auth,
    pub principal: Principal,
    body: Bytes,
    /// Whether the caller may see each ResourceId asked about so far.
    seen: Mutex<HashMap<String, bool>>,
}

/// Runs the operation's handler once its need is met.
async fn dispatch(call: &Call<'_>, operation: Operation) -> Result<Value, AutoScalingError> {
    use Operation as Op;
    call.check(operation.authorization())?;
    match operation {
        Op::RegisterScalableTarget => targets::register(call).await,
        Op::DeregisterScalableTarget => targets::deregister(call).await,
        Op::DescribeScalableTargets => targets::describe(call).await,
        Op::PutScalingPolicy => policies::put(call).await,
        Op::DescribeScalingPolicies => policies::describe(call).await,
        Op::DeleteScalingPolicy => policies::delete(call).await,
        Op::DescribeScalingActivities => activities::describe(call).await,
    }
}

impl Call<'_> {
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, AutoScalingError> {
        serde_json::from_slice(aws::body_or_empty(&self.body))
            .map_err(|e| AutoScalingError::Validation(format!("invalid request: {e}")))
    }

    fn check(&self, need: EcsNeed) -> Result<(), AutoScalingError> {
        if self.auth.admits_ecs(&self.principal, need) {
            return Ok(());
        }
        metrics().auth_failure("forbidden");
        Err(AutoScalingError::AccessDenied(format!(
            "User: {} is not authorized to use service auto scaling without signing in",
            self.principal.subject()
        )))
    }

    /// Whether the caller may see the service `resource_id` names (the
    /// scopes UpdateService and DescribeServices need of it); a missing
    /// service is nobody's but open mode's.
    pub async fn may_see(&self, resource_id: &str) -> Result<bool, AutoScalingError> {
        if let Some(known) = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(resource_id)
        {
            return Ok(*known);
        }
        let scopes = match self.scaling.service(resource_id).await {
            Ok(service) => self.scaling.runner().service_scopes(&service).await?,
            Err(ScalingError::Validation(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let may = self
            .auth
            .may_use_repositories(&self.principal, scopes.as_deref())
            .await?;
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(resource_id.to_string(), may);
        Ok(may)
    }
}

/// One page of `items`: `MaxResults` (1..=50, default 50) from the offset in
/// `NextToken`; the token of the next page when there is one.
pub fn page<T: Clone>(
    items: &[T],
    max_results: Option<i64>,
    next_token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), AutoScalingError> {
    let size = max_results.unwrap_or(50);
    if !(1..=50).contains(&size) {
        return Err(AutoScalingError::Validation(
            "MaxResults must be between 1 and 50".into(),
        ));
    }
    let start: usize = match next_token {
        None | Some("") => 0,
        Some(t) => t
            .parse()
            .map_err(|_| AutoScalingError::Validation("Invalid NextToken".into()))?,
    };
    let end = start.saturating_add(size as usize).min(items.len());
    let slice = items
        .get(start.min(items.len())..end)
        .unwrap_or_default()
        .to_vec();
    Ok((slice, (end < items.len()).then(|| end.to_string())))
}
