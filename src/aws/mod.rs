//! What the AWS-shaped APIs (ECR and ECS) share: the JSON 1.1 protocol
//! (`POST /` with `X-Amz-Target`, `{"__type", "message"}` errors), routing by
//! target prefix, and SigV4 authentication with Wharf-issued access keys.

pub mod sigv4;

use std::time::{SystemTime, UNIX_EPOCH};

use std::net::IpAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, FromRef, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::auth::{Auth, Mode, PeerAddr, Principal};
use crate::ecr::EcrState;
use crate::ecs::EcsState;
use crate::oci::api::InternalCause;
use crate::operations::{RETRY_AFTER_SECONDS, RequestId};
use crate::storage::MetadataError;
use sigv4::{SigError, SignedRequest};

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    #[error(transparent)]
    Signature(#[from] SigError),
    #[error("credential store: {0}")]
    Store(#[from] MetadataError),
}

/// `POST /` for every AWS-shaped service; the `X-Amz-Target` prefix picks it.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    EcrState: FromRef<S>,
    EcsState: FromRef<S>,
{
    Router::new().route("/", post(handle))
}

async fn handle(
    State(ecr): State<EcrState>,
    State(ecs): State<EcsState>,
    PeerAddr(peer): PeerAddr,
    request_id: Option<Extension<RequestId>>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let request = Request {
        peer,
        request_id: request_id.map(|Extension(RequestId(id))| id),
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
    };
    if target(&request.headers).starts_with(crate::ecs::TARGET_PREFIX) {
        crate::ecs::handle(ecs, request).await
    } else {
        crate::ecr::handle(ecr, request).await
    }
}

/// One request to an AWS-shaped service, as it arrived.
pub struct Request {
    pub peer: IpAddr,
    pub request_id: Option<String>,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Body,
}

/// The `X-Amz-Target` header, or "".
pub fn target(headers: &HeaderMap) -> &str {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Checks the SigV4 signature and finds the user behind the access key. An
/// unsigned request is anonymous while the registry runs open.
pub async fn authenticate(
    auth: &Auth,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Principal, AuthFailure> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(authorization) = authorization else {
        return if auth.mode == Mode::Open {
            Ok(Principal::Anonymous)
        } else {
            Err(AuthFailure::Missing)
        };
    };
    let credential = sigv4::parse_authorization(authorization)?;
    let (secret, principal) = auth
        .login
        .access_key(&credential.access_key_id)
        .await?
        .ok_or(AuthFailure::UnrecognizedClient)?;
    let header = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let request = SignedRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        header: &header,
        body,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    sigv4::verify(&credential, &secret, &request, now)?;
    Ok(principal)
}

/// A successful call's answer.
pub fn output(value: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        axum::Json(value),
    )
        .into_response()
}

/// `ServerException` with 503 and `Retry-After` while a dependency does not
/// answer (the AWS SDKs and CLI retry 503s on their own); `cause` is logged,
/// never sent.
pub fn unavailable(cause: String) -> Response {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServerException",
        "temporarily unavailable; retry later".to_string(),
        None,
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    response.extensions_mut().insert(InternalCause(cause));
    response
}

/// A failed call's answer: `{"__type", "message"}`. A fault of ours (`cause`)
/// is logged by the request middleware and never sent.
pub fn error(status: StatusCode, name: &str, message: String, cause: Option<String>) -> Response {
    let message = if cause.is_some() {
        "internal server error".to_string()
    } else {
        message
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        axum::Json(serde_json::json!({ "__type": name, "message": message })),
    )
        .into_response();
    if let Some(cause) = cause {
        response.extensions_mut().insert(InternalCause(cause));
    }
    response
}

/// An empty body reads as `{}`, as AWS services accept.
pub fn body_or_empty(body: &[u8]) -> &[u8] {
    if body.is_empty() { b"{}" } else { body }
}
