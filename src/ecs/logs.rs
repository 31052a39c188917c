//! `GET /ecs/tasks/{task}/logs?container=NAME&tail=N`: a task's container
//! logs as plain text. HTTP Basic or a Bearer token from `/token`; reading
//! needs what DescribeTasks needs (`access.rs`), and a task the caller may not
//! see is as missing (404). Faults never show their cause (a Docker socket's
//! path, say): it rides on the response for the request log.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use super::EcsState;
use super::access::needs;
use crate::auth::{Denial, Mode};
use crate::oci::api::InternalCause;
use crate::operations::RETRY_AFTER_SECONDS;
use crate::runner::RunnerError;
use crate::runner::engine::EngineError;

/// Why the logs are not served, mapped to a status and body in one place.
#[derive(Debug)]
enum Refusal {
    /// No (valid) credentials, or anonymous ones: 401 with a challenge.
    Unauthenticated,
    /// No such task, or one the caller may not see; or no such container.
    NotFound(String),
    /// Too many failed sign-ins from this client now: 429 with `Retry-After`.
    Throttled { retry_after: u64 },
    /// A dependency does not answer now; the cause is logged, never sent.
    Unavailable(String),
    /// A fault of ours; the cause is logged, never sent.
    Internal(String),
}

impl From<Denial> for Refusal {
    fn from(d: Denial) -> Self {
        match d {
            Denial::Unauthorized { .. } => Refusal::Unauthenticated,
            Denial::Forbidden(_) => Refusal::Unauthenticated,
            Denial::Internal(cause) => Refusal::Internal(cause),
            Denial::Unavailable(cause) => Refusal::Unavailable(cause),
            Denial::Throttled { retry_after } => Refusal::Throttled { retry_after },
        }
    }
}

impl From<RunnerError> for Refusal {
    fn from(e: RunnerError) -> Self {
        match e {
            RunnerError::InvalidParameter(m) | RunnerError::Client(m) => Refusal::NotFound(m),
            RunnerError::Store(e) if e.is_unavailable() => Refusal::Unavailable(e.to_string()),
            RunnerError::Engine(EngineError::Unavailable(cause)) => {
                Refusal::Unavailable(format!("container engine: {cause}"))
            }
            other => Refusal::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut retry_after = RETRY_AFTER_SECONDS.to_string();
        let (status, text, cause) = match self {
            Refusal::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "authentication required".to_string(),
                None,
            ),
            Refusal::NotFound(m) => (StatusCode::NOT_FOUND, m, None),
            Refusal::Throttled {
                retry_after: seconds,
            } => {
                retry_after = seconds.to_string();
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many failed sign-ins; retry later".to_string(),
                    None,
                )
            }
            Refusal::Unavailable(cause) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable; retry later".to_string(),
                Some(cause),
            ),
            Refusal::Internal(cause) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error".to_string(),
                Some(cause),
            ),
        };
        let mut response = (status, format!("{text}\n")).into_response();
        let headers = response.headers_mut();
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"wharf\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                if let Ok(value) = HeaderValue::from_str(&retry_after) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        if let Some(cause) = cause {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

fn not_found() -> Refusal {
    Refusal::NotFound("The referenced task was not found.".into())
}

pub(super) async fn logs(
    State(state): State<EcsState>,
    crate::auth::PeerAddr(peer): crate::auth::PeerAddr,
    Path(task): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(state, peer, &task, &uri, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn serve(
    state: EcsState,
    peer: std::net::IpAddr,
    task: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    let query: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let param = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let auth = &state.auth;
    let client = auth.client_ip(headers, peer);
    // Who is asking, first: nobody learns whether a task exists without signing in.
    let principal = auth.authorize(headers, client, &[]).await?;
    if auth.mode != Mode::Open && principal.subject().is_empty() {
        // An anonymous token from /token is no identity either.
        return Err(Refusal::Unauthenticated);
    }
    let Some(runner) = &state.runner else {
        return Err(Refusal::NotFound("the task runner is off".into()));
    };
    let found = runner.task(None, task).await?.ok_or_else(not_found)?;
    // What DescribeTasks needs, checked against Basic and Bearer credentials alike.
    match needs(
        runner.hosts(),
        found.containers.iter().map(|c| c.image.as_str()),
    ) {
        Some(needs) => {
            auth.authorize(headers, client, &needs)
                .await
                .map_err(|d| match d {
                    Denial::Unauthorized { .. } | Denial::Forbidden(_) => not_found(),
                    other => other.into(),
                })?;
        }
        None if auth.mode == Mode::Open => {}
        None => return Err(not_found()),
    }
    let stream = runner
        .logs(
            task,
            param("container"),
            param("tail").and_then(|t| t.parse().ok()),
        )
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream.map_err(std::io::Error::other)),
    )
        .into_response())
}
