//! ECS-compatible task runner API (AWS JSON 1.1): `POST /` with
//! `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`, SigV4
//! signed with Wharf-issued access keys. Handlers parse the request, call the
//! runner, and shape its answer; errors map to ECS exception names in
//! `error.rs`. Also serves task logs over HTTP.

mod access;
mod attributes;
mod channel;
mod clusters;
mod error;
mod instances;
mod logs;
mod operation;
mod services;
mod task_definitions;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRef;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::{Auth, Principal};
use crate::aws;
use crate::runner::Runner;
pub use error::EcsError;
pub use operation::Operation;

pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// The runner, when this process has one.
#[derive(Clone)]
pub struct EcsState {
    pub runner: Option<Runner>,
    pub auth: Arc<Auth>,
}

impl<S> FromRef<S> for EcsState
where
    Option<Runner>: FromRef<S>,
    Arc<Auth>: FromRef<S>,
{
    fn from_ref(state: &S) -> Self {
        EcsState {
            runner: Option::<Runner>::from_ref(state),
            auth: Arc::<Auth>::from_ref(state),
        }
    }
}

/// `GET /ecs/tasks/{task}/logs?container=NAME&tail=N`: a task's container
/// logs; `GET /agent/v1/channel`: the channel of a `wharf agent`.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    EcsState: FromRef<S>,
    aws::AwsSettings: FromRef<S>,
{
    Router::new()
        .route("/ecs/tasks/{task}/logs", get(logs::logs))
        .route(crate::runner::protocol::CHANNEL_PATH, get(channel::channel))
}

/// One authenticated ECS request.
pub struct Call<'a> {
    pub runner: &'a Runner,
    pub principal: Principal,
    pub auth: &'a Auth,
    body: Bytes,
}

impl Call<'_> {
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, EcsError> {
        serde_json::from_slice(aws::body_or_empty(&self.body))
            .map_err(|e| EcsError::InvalidParameter(format!("invalid request: {e}")))
    }

    /// Who registered or created something, for the record.
    pub fn caller_arn(&self) -> Option<String> {
        match &self.principal {
            Principal::Anonymous => None,
            p => Some(format!(
                "arn:aws:iam::{}:user/{}",
                self.runner.settings().account,
                p.subject()
            )),
        }
    }
}

impl aws::Service for EcsState {
    const TARGET_PREFIX: &'static str = TARGET_PREFIX;
    const SIGNING_NAME: &'static str = "ecs";

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
        handle(self, request).await
    }
}

/// Serves one admitted ECS call.
async fn handle(state: EcsState, request: aws::Request<Operation>) -> Response {
    let result = async {
        let Some(runner) = &state.runner else {
            return Err(EcsError::Client(
                "the task runner is turned off on this server (runner.enabled = false)".into(),
            ));
        };
        let call = Call {
            runner,
            principal: request.principal,
            auth: &state.auth,
            body: request.body,
        };
        dispatch(&call, request.operation).await
    }
    .await;
    match result {
        Ok(output) => aws::output(output),
        Err(e) => e.into_response(),
    }
}

/// Runs the operation's handler once its need is met.
async fn dispatch(call: &Call<'_>, operation: Operation) -> Result<Value, EcsError> {
    use Operation as Op;
    call.check(operation.authorization())?;
    match operation {
        Op::CreateCluster => clusters::create(call).await,
        Op::DescribeClusters => clusters::describe(call).await,
        Op::ListClusters => clusters::list(call).await,
        Op::DeleteCluster => clusters::delete(call).await,
        Op::RegisterTaskDefinition => task_definitions::register(call).await,
        Op::DeregisterTaskDefinition => task_definitions::deregister(call).await,
        Op::DescribeTaskDefinition => task_definitions::describe(call).await,
        Op::ListTaskDefinitions => task_definitions::list(call).await,
        Op::ListTaskDefinitionFamilies => task_definitions::families(call).await,
        Op::RunTask => tasks::run(call).await,
        Op::StartTask => tasks::start(call).await,
        Op::StopTask => tasks::stop(call).await,
        Op::DescribeTasks => tasks::describe(call).await,
        Op::ListTasks => tasks::list(call).await,
        Op::CreateService => services::create(call).await,
        Op::UpdateService => services::update(call).await,
        Op::DeleteService => services::delete(call).await,
        Op::DescribeServices => services::describe(call).await,
        Op::ListServices => services::list(call).await,
        Op::ListContainerInstances => instances::list(call).await,
        Op::DescribeContainerInstances => instances::describe(call).await,
        Op::UpdateContainerInstancesState => instances::update_state(call).await,
        Op::RegisterContainerInstance => attributes::register(call).await,
        Op::DeregisterContainerInstance => attributes::deregister(call).await,
        Op::PutAttributes => attributes::put(call).await,
        Op::DeleteAttributes => attributes::delete(call).await,
        Op::ListAttributes => attributes::list(call).await,
    }
}

/// One page of `items`: `maxResults` (1..=limit, default `default`) from the
/// offset in `nextToken`; the token of the next page when there is one.
pub fn page<T: Clone>(
    items: &[T],
    max_results: Option<i64>,
    next_token: Option<&str>,
    default: i64,
    limit: i64,
) -> Result<(Vec<T>, Option<String>), EcsError> {
    let size = max_results.unwrap_or(default);
    if !(1..=limit).contains(&size) {
        return Err(EcsError::InvalidParameter(format!(
            "maxResults must be between 1 and {limit}"
        )));
    }
    let start: usize = match next_token {
        None | Some("") => 0,
        Some(t) => t
            .parse()
            .map_err(|_| EcsError::InvalidParameter("invalid nextToken".into()))?,
    };
    // Saturating: a token near usize::MAX wrapped to a page back at the start.
    let end = start.saturating_add(size as usize).min(items.len());
    let slice = items
        .get(start.min(items.len())..end)
        .unwrap_or_default()
        .to_vec();
    Ok((slice, (end < items.len()).then(|| end.to_string())))
}
