//! `GET /ecs/tasks/{task}/logs?container=NAME&tail=N`: a task's container
//! logs as plain text. HTTP Basic or a Bearer token from `/token`; reading
//! needs what DescribeTasks needs (`access.rs`), and a task the caller may not
//! see is as missing (404). Faults never show their cause (a Docker socket's
//! path, say): it rides on the response for the request log.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use super::EcsState;
use super::access::needs;
use crate::auth::{Denial, Need};
use crate::http::{Fault, PeerAddr, Query};
use crate::runner::RunnerError;

/// Why the logs are not served, mapped to a status and body in one place.
#[derive(Debug)]
enum Refusal {
    /// No (valid) credentials, or anonymous ones: 401 with a challenge.
    Unauthenticated,
    /// No such task, or one the caller may not see; or no such container.
    NotFound(String),
    /// Too many failed sign-ins from this client now: 429 with `Retry-After`.
    Throttled { retry_after: u64 },
    /// Not the caller's failure; the cause is logged, never sent.
    Fault(Fault),
}

impl From<Denial> for Refusal {
    fn from(d: Denial) -> Self {
        match d {
            Denial::Unauthorized { .. } => Refusal::Unauthenticated,
            Denial::Forbidden(_) => Refusal::Unauthenticated,
            Denial::Fault(fault) => Refusal::Fault(fault),
            Denial::Throttled { retry_after } => Refusal::Throttled { retry_after },
        }
    }
}

impl From<RunnerError> for Refusal {
    fn from(e: RunnerError) -> Self {
        match e {
            RunnerError::InvalidParameter(m) | RunnerError::Client(m) => Refusal::NotFound(m),
            other => Refusal::Fault(super::error::fault(other)),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match &self {
            Refusal::Unauthenticated => (StatusCode::UNAUTHORIZED, "authentication required"),
            Refusal::NotFound(m) => (StatusCode::NOT_FOUND, m.as_str()),
            Refusal::Throttled { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed sign-ins; retry later",
            ),
            Refusal::Fault(fault) => (fault.status(), fault.public_message()),
        };
        let mut response = (status, format!("{text}\n")).into_response();
        match self {
            Refusal::Unauthenticated => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"wharf\""),
                );
            }
            Refusal::Throttled { retry_after } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Refusal::Fault(fault) => fault.mark(&mut response),
            Refusal::NotFound(_) => {}
        }
        response
    }
}

fn not_found() -> Refusal {
    Refusal::NotFound("The referenced task was not found.".into())
}

pub(super) async fn logs(
    State(state): State<EcsState>,
    PeerAddr(peer): PeerAddr,
    Path(task): Path<String>,
    query: Query,
    headers: HeaderMap,
) -> Response {
    serve(state, peer, &task, &query, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn serve(
    state: EcsState,
    peer: std::net::IpAddr,
    task: &str,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    let auth = &state.auth;
    let client = auth.client_ip(headers, peer);
    // Who is asking, first: nobody learns whether a task exists without signing in.
    auth.check(headers, client, &Need::SignedIn).await?;
    let Some(runner) = &state.runner else {
        return Err(Refusal::NotFound("the task runner is off".into()));
    };
    let found = runner.task(None, task).await?.ok_or_else(not_found)?;
    // What DescribeTasks needs, checked against Basic and Bearer credentials alike.
    let images = found.containers.iter().map(|c| c.image.as_str());
    let need = needs(runner.hosts(), images).map_or(Need::Unattainable, Need::Scopes);
    auth.check(headers, client, &need)
        .await
        .map_err(|d| match d {
            Denial::Unauthorized { .. } | Denial::Forbidden(_) => not_found(),
            other => other.into(),
        })?;
    let stream = runner
        .logs(
            task,
            query.get("container"),
            query.get("tail").and_then(|t| t.parse().ok()),
        )
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream.map_err(std::io::Error::other)),
    )
        .into_response())
}
