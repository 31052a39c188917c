//! ECS-compatible task runner API (AWS JSON 1.1): `POST /` with
//! `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`, SigV4
//! signed with Wharf-issued access keys. Handlers parse the request, call the
//! runner, and shape its answer; errors map to ECS exception names in
//! `error.rs`. Also serves task logs over HTTP.

mod clusters;
mod error;
mod services;
mod task_definitions;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::{Auth, Denial, Mode, PeerAddr, Principal};
use crate::aws;
use crate::metrics::metrics;
use crate::runner::Runner;
pub use error::EcsError;

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

/// `GET /ecs/tasks/{task}/logs?container=NAME&tail=N`: a task's container logs.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    EcsState: FromRef<S>,
{
    Router::new().route("/ecs/tasks/{task}/logs", get(logs))
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

    /// Fails unless the caller may pull every image of `definition`: running
    /// an image is reading it.
    pub async fn require_images(
        &self,
        definition: &crate::runner::model::TaskDefinition,
    ) -> Result<(), EcsError> {
        self.require_pull(
            definition
                .container_definitions
                .iter()
                .map(|c| c.image.as_str()),
        )
        .await
    }

    pub async fn require_pull(&self, images: impl Iterator<Item = &str>) -> Result<(), EcsError> {
        if self.auth.mode == Mode::Open {
            return Ok(());
        }
        for image in images {
            let Ok(image) = self.runner.hosts().parse(image) else {
                continue;
            };
            let allowed = self
                .auth
                .allowed(&self.principal, "repository", image.repo.as_str())
                .await
                .map_err(EcsError::from)?;
            if !crate::auth::permits(&allowed, "pull") {
                metrics().auth_failure("forbidden");
                return Err(EcsError::AccessDenied(format!(
                    "User: {} may not pull {}, so may not run it",
                    self.principal.subject(),
                    image.repo
                )));
            }
        }
        Ok(())
    }
}

/// Every operation `dispatch` serves: the front door refuses others before
/// reading their body.
const OPERATIONS: &[&str] = &[
    "CreateCluster",
    "DescribeClusters",
    "ListClusters",
    "DeleteCluster",
    "RegisterTaskDefinition",
    "DeregisterTaskDefinition",
    "DescribeTaskDefinition",
    "ListTaskDefinitions",
    "ListTaskDefinitionFamilies",
    "RunTask",
    "StopTask",
    "DescribeTasks",
    "ListTasks",
    "CreateService",
    "UpdateService",
    "DeleteService",
    "DescribeServices",
    "ListServices",
];

impl aws::Service for EcsState {
    const TARGET_PREFIX: &'static str = TARGET_PREFIX;
    const SIGNING_NAME: &'static str = "ecs";

    fn auth(&self) -> &Auth {
        &self.auth
    }

    fn body_limit(&self, operation: &str) -> Option<usize> {
        OPERATIONS
            .contains(&operation)
            .then_some(aws::MAX_REQUEST_BYTES)
    }

    async fn call(self, request: aws::Request) -> Response {
        handle(self, request).await
    }
}

/// Serves one admitted ECS call.
async fn handle(state: EcsState, request: aws::Request) -> Response {
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
        dispatch(&call, &request.operation).await
    }
    .await;
    match result {
        Ok(output) => aws::output(output),
        Err(e) => e.into_response(),
    }
}

async fn dispatch(call: &Call<'_>, operation: &str) -> Result<Value, EcsError> {
    match operation {
        "CreateCluster" => clusters::create(call).await,
        "DescribeClusters" => clusters::describe(call).await,
        "ListClusters" => clusters::list(call).await,
        "DeleteCluster" => clusters::delete(call).await,
        "RegisterTaskDefinition" => task_definitions::register(call).await,
        "DeregisterTaskDefinition" => task_definitions::deregister(call).await,
        "DescribeTaskDefinition" => task_definitions::describe(call).await,
        "ListTaskDefinitions" => task_definitions::list(call).await,
        "ListTaskDefinitionFamilies" => task_definitions::families(call).await,
        "RunTask" => tasks::run(call).await,
        "StopTask" => tasks::stop(call).await,
        "DescribeTasks" => tasks::describe(call).await,
        "ListTasks" => tasks::list(call).await,
        "CreateService" => services::create(call).await,
        "UpdateService" => services::update(call).await,
        "DeleteService" => services::delete(call).await,
        "DescribeServices" => services::describe(call).await,
        "ListServices" => services::list(call).await,
        other => Err(EcsError::UnknownOperation(format!(
            "operation {other} is not supported by this runner"
        ))),
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
    let end = (start + size as usize).min(items.len());
    let slice = items
        .get(start.min(items.len())..end)
        .unwrap_or_default()
        .to_vec();
    Ok((slice, (end < items.len()).then(|| end.to_string())))
}

async fn logs(
    State(state): State<EcsState>,
    PeerAddr(peer): PeerAddr,
    Path(task): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let query: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let param = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let container = param("container");
    let tail = param("tail").and_then(|t| t.parse::<usize>().ok());
    let client = state.auth.client_ip(&headers, peer);
    if let Err(denial) = state.auth.authorize(&headers, client, &[]).await {
        let status = match denial {
            Denial::Internal(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            Denial::Unavailable(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Denial::Forbidden(_) => axum::http::StatusCode::FORBIDDEN,
            _ => axum::http::StatusCode::UNAUTHORIZED,
        };
        return (
            status,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"wharf\"")],
            "authentication required\n",
        )
            .into_response();
    }
    let Some(runner) = &state.runner else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            "the task runner is off\n",
        )
            .into_response();
    };
    match runner.logs(&task, container, tail).await {
        Ok(stream) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            Body::from_stream(stream.map_err(std::io::Error::other)),
        )
            .into_response(),
        Err(e) => {
            let e = EcsError::from(e);
            let status = match e {
                EcsError::Server(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                _ => axum::http::StatusCode::NOT_FOUND,
            };
            (status, format!("{e}\n")).into_response()
        }
    }
}
