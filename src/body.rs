//! Reading a whole request body into memory, for the endpoints whose requests
//! are small documents (the AWS JSON APIs, the OAuth2 token form): never more
//! than a cap, and never slower than a minimum rate, so a client can hold
//! neither memory nor a task by announcing a large body or trickling it.
//! Depends on nothing but HTTP types.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

/// How long a body may take: `grace` for the first bytes, then one more
/// second per `min_rate` bytes received (Apache's `RequestReadTimeout
/// body=…,MinRate=…`). A rate rather than one deadline, so a large legitimate
/// body over a slow link still arrives while a stalled one is cut off early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    pub grace: Duration,
    /// Bytes per second; at least 1.
    pub min_rate: u64,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(20),
            min_rate: 32 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("the request body is larger than this operation accepts ({limit} bytes)")]
    TooLarge { limit: usize },
    #[error("the request body arrived too slowly")]
    Timeout,
    /// The client went away or sent a malformed body.
    #[error("the request body could not be read")]
    Read,
}

/// The `Content-Length` a request declares, if any.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads `body` whole, refusing it once it passes `limit` bytes (at once when
/// `Content-Length` says it will, before a byte is read) or falls behind
/// `limits`.
pub async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    limits: BodyLimits,
) -> Result<Bytes, BodyError> {
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let capacity = declared.map_or(0, |n| (n as usize).min(limit));
    let mut received = BytesMut::with_capacity(capacity);
    let mut frames = body.into_data_stream();
    let start = Instant::now();
    let min_rate = limits.min_rate.max(1);
    loop {
        let earned = Duration::from_millis((received.len() as u64).saturating_mul(1000) / min_rate);
        let deadline = start + limits.grace + earned;
        match tokio::time::timeout_at(deadline, frames.next()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => return Ok(received.freeze()),
            Ok(Some(Err(_))) => return Err(BodyError::Read),
            Ok(Some(Ok(chunk))) => {
                if received.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge { limit });
                }
                received.extend_from_slice(&chunk);
            }
        }
    }
}

/// An HTML form (`application/x-www-form-urlencoded`) of at most `LIMIT`
/// bytes, read under the [`BodyLimits`] of the state. Refusals answer with
/// the registry's error document (`{"errors": [...]}`), a form that does not
/// parse too (axum would answer 415 or 422 in plain text).
pub struct SmallForm<T, const LIMIT: usize>(pub T);

impl<S, T, const LIMIT: usize> FromRequest<S> for SmallForm<T, LIMIT>
where
    S: Send + Sync,
    BodyLimits: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = read(body, &parts.headers, LIMIT, BodyLimits::from_ref(state))
            .await
            .map_err(|e| {
                let (status, code) = match e {
                    BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
                    BodyError::Timeout => (StatusCode::REQUEST_TIMEOUT, "UNSUPPORTED"),
                    BodyError::Read => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
                };
                form_error(status, code, &e.to_string())
            })?;
        let request = Request::from_parts(parts, Body::from(bytes));
        axum::Form::<T>::from_request(request, state)
            .await
            .map(|axum::Form(form)| SmallForm(form))
            .map_err(|e| form_error(StatusCode::BAD_REQUEST, "UNSUPPORTED", &e.body_text()))
    }
}

fn form_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> BodyLimits {
        BodyLimits {
            grace: Duration::from_millis(200),
            min_rate: 1000,
        }
    }

    #[tokio::test]
    async fn reads_within_the_limit() {
        let headers = HeaderMap::new();
        let body = read(Body::from("hello"), &headers, 5, limits()).await;
        assert_eq!(body, Ok(Bytes::from_static(b"hello")));
        let body = read(Body::from("hello!"), &headers, 5, limits()).await;
        assert_eq!(body, Err(BodyError::TooLarge { limit: 5 }));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "6".parse().unwrap());
        // A body that never ends: reading it at all would hang the test.
        let body = Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
        let result = read(body, &headers, 5, limits()).await;
        assert_eq!(result, Err(BodyError::TooLarge { limit: 5 }));
    }

    #[tokio::test]
    async fn a_stalled_body_times_out_after_grace_plus_earned_time() {
        let first = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(vec![0; 1000]))]);
        let body = Body::from_stream(first.chain(futures::stream::pending()));
        let started = Instant::now();
        let result = read(body, &HeaderMap::new(), 10_000, limits()).await;
        assert_eq!(result, Err(BodyError::Timeout));
        // 200 ms of grace and 1 s for the 1000 bytes that came.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(1200), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }
}
