//! What the AWS-shaped APIs (ECR and ECS) share: the JSON 1.1 protocol
//! (`POST /` with `X-Amz-Target`, `{"__type", "message"}` errors), routing by
//! target prefix to a [`Service`], and admission: SigV4 with Wharf-issued
//! access keys, judged from the headers before any of the body is read, then
//! verified over the body received. The Query protocol (form in, XML out;
//! ELBv2) shares the door and the admission ([`query`]). Services are
//! composed in `server.rs`; this module imports none of them.

pub mod query;
pub mod sigv4;
pub mod xml;

use std::future::Future;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, FromRef, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::auth::{Auth, Principal};
use crate::body::{self, BodyError, BodyLimits};
use crate::http::{Fault, PeerAddr, RequestId};
use crate::metrics::metrics;
use crate::storage::MetadataError;
use sigv4::{Credential, Expect, SigError, SignedRequest};

/// Declares a service's operation enum from one list of names: the enum,
/// `ALL`, `parse`, `name` (the `X-Amz-Target` suffix) and `iam_name`
/// (`<prefix>:<name>`, as IAM policies write actions), so each name is
/// written once.
macro_rules! operations {
    ($(#[$meta:meta])* $vis:vis enum $enum:ident ($prefix:literal) { $($op:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $enum { $($op),+ }

        impl $enum {
            /// Every operation, for parsing by name.
            pub const ALL: &'static [$enum] = &[$($enum::$op),+];

            /// The operation a target names, without the service's prefix.
            pub fn parse(name: &str) -> Option<$enum> {
                $enum::ALL.iter().copied().find(|o| o.name() == name)
            }

            /// The name in `X-Amz-Target`.
            pub const fn name(self) -> &'static str {
                match self { $($enum::$op => stringify!($op)),+ }
            }

            /// The action name IAM policies use.
            pub const fn iam_name(self) -> &'static str {
                match self { $($enum::$op => concat!($prefix, ":", stringify!($op))),+ }
            }
        }
    };
}
pub(crate) use operations;

/// The largest request of an ordinary operation: ECR's and ECS's largest
/// documents (policies, task definitions, 100 image ids) are far smaller.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Headers the JSON 1.1 protocol needs signed besides `host` and the date:
/// the target names the operation and the content type how the body reads.
const SIGNED_HEADERS: &[&str] = &["x-amz-target", "content-type"];

/// What `POST /` shares across services.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// The one region clients must sign for (`ecr.region`).
    pub region: String,
}

/// An AWS-shaped service behind `POST /`, as the front door sees it.
pub trait Service: Clone + Send + Sync + 'static {
    /// The `X-Amz-Target` prefix, e.g. `AmazonEC2ContainerRegistry_V20150921.`.
    const TARGET_PREFIX: &'static str;
    /// The SigV4 signing name clients scope their credentials to, e.g. `ecr`.
    const SIGNING_NAME: &'static str;
    /// The service's operations, parsed from the target.
    type Operation: Send;
    fn auth(&self) -> &Auth;
    /// The operation a target names (without the prefix); `None` when the
    /// service has no such operation.
    fn operation(name: &str) -> Option<Self::Operation>;
    /// The largest request body `operation` accepts.
    fn body_limit(&self, operation: &Self::Operation) -> usize;
    /// Serves one admitted call.
    fn call(self, request: Request<Self::Operation>) -> impl Future<Output = Response> + Send;
}

/// Why `POST /` refused a request before its service saw it. ECR and ECS
/// share these AWS names.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    #[error(transparent)]
    Signature(#[from] SigError),
    #[error("{0}")]
    UnknownOperation(String),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("credential store: {0}")]
    Store(#[from] MetadataError),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let bad = StatusCode::BAD_REQUEST;
        let (status, name) = match &self {
            Refusal::Missing => (StatusCode::FORBIDDEN, "MissingAuthenticationTokenException"),
            Refusal::UnrecognizedClient => (bad, "UnrecognizedClientException"),
            Refusal::Signature(SigError::Incomplete(_)) => (bad, "IncompleteSignatureException"),
            Refusal::Signature(SigError::Invalid(_)) => (bad, "InvalidSignatureException"),
            Refusal::UnknownOperation(_) => (bad, "UnknownOperationException"),
            Refusal::Body(BodyError::TooLarge { .. }) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
            ),
            // The name the AWS SDKs and CLI retry as transient.
            Refusal::Body(BodyError::Timeout) => {
                (StatusCode::REQUEST_TIMEOUT, "RequestTimeoutException")
            }
            Refusal::Body(BodyError::Read) => (bad, "SerializationException"),
            Refusal::Store(e) => return fault(Fault::classify(e.is_unavailable(), e)),
        };
        error(status, name, self.to_string())
    }
}

/// `POST /` for the AWS-shaped services `A`, `B` and `C`, and the Query
/// service `Q`: a form without `X-Amz-Target` goes to `Q`; otherwise the
/// `X-Amz-Target` prefix picks one (`A` answers targets none knows).
pub fn router<S, A, B, C, Q>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    A: Service + FromRef<S>,
    B: Service + FromRef<S>,
    C: Service + FromRef<S>,
    Q: query::QueryService + FromRef<S>,
    AwsSettings: FromRef<S>,
    BodyLimits: FromRef<S>,
{
    Router::new().route("/", post(handle::<A, B, C, Q>))
}

#[expect(clippy::too_many_arguments, reason = "one extractor per state part")]
async fn handle<A: Service, B: Service, C: Service, Q: query::QueryService>(
    State(a): State<A>,
    State(b): State<B>,
    State(c): State<C>,
    State(q): State<Q>,
    State(settings): State<AwsSettings>,
    State(limits): State<BodyLimits>,
    PeerAddr(peer): PeerAddr,
    request_id: Option<Extension<RequestId>>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let request_id = request_id.map(|Extension(RequestId(id))| id);
    if query::is_query(&parts.headers) {
        return query::serve(q, &settings, limits, peer, request_id, parts, body).await;
    }
    let target = target(&parts.headers);
    if target.starts_with(B::TARGET_PREFIX) {
        serve(b, &settings, limits, peer, request_id, parts, body).await
    } else if target.starts_with(C::TARGET_PREFIX) {
        serve(c, &settings, limits, peer, request_id, parts, body).await
    } else {
        serve(a, &settings, limits, peer, request_id, parts, body).await
    }
}

async fn serve<T: Service>(
    service: T,
    settings: &AwsSettings,
    limits: BodyLimits,
    peer: IpAddr,
    request_id: Option<String>,
    parts: Parts,
    body: Body,
) -> Response {
    match admit(&service, settings, limits, &parts, body).await {
        Ok((operation, principal, body)) => {
            let request = Request {
                peer,
                request_id,
                method: parts.method,
                headers: parts.headers,
                operation,
                principal,
                body,
            };
            service.call(request).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Admits a call the way that costs an unwelcome client least: the operation
/// and the signature's parts are judged from the headers, before a byte of
/// the body is read; then the body is read within the operation's cap and
/// the body limits, and the signature verified over it.
async fn admit<T: Service>(
    service: &T,
    settings: &AwsSettings,
    limits: BodyLimits,
    parts: &Parts,
    body: Body,
) -> Result<(T::Operation, Principal, Bytes), Refusal> {
    let target = target(&parts.headers);
    let name = target
        .strip_prefix(T::TARGET_PREFIX)
        .ok_or_else(|| Refusal::UnknownOperation(format!("unknown target {target:?}")))?;
    let operation = T::operation(name).ok_or_else(|| {
        Refusal::UnknownOperation(format!("operation {name} is not supported by this server"))
    })?;
    let limit = service.body_limit(&operation);
    let (principal, body) = admit_signed(
        service.auth(),
        &settings.region,
        T::SIGNING_NAME,
        SIGNED_HEADERS,
        parts,
        body::read(body, &parts.headers, limit, limits),
    )
    .await?;
    Ok((operation, principal, body))
}

/// Authenticates a signed request without a body (`wharf agent`'s channel,
/// a WebSocket upgrade): the signature over the empty payload, for
/// `service`'s signing name.
pub async fn authenticate_bodiless(
    auth: &Auth,
    settings: &AwsSettings,
    service: &str,
    parts: &Parts,
) -> Result<Principal, Refusal> {
    let empty = async { Ok::<_, BodyError>(Bytes::new()) };
    let (principal, _) = admit_signed(auth, &settings.region, service, &[], parts, empty).await?;
    Ok(principal)
}

/// The admission every AWS-shaped request shares: the signature's parts are
/// judged from the headers before `read` takes a byte of the body, then
/// the signature is verified over the body read. Unsigned requests are
/// anonymous when `auth` lets them in.
pub(crate) async fn admit_signed(
    auth: &Auth,
    region: &str,
    service: &str,
    signed: &[&str],
    parts: &Parts,
    read: impl Future<Output = Result<Bytes, BodyError>>,
) -> Result<(Principal, Bytes), Refusal> {
    let expect = Expect {
        region,
        service,
        signed,
    };
    let header = header_lookup(parts);
    let request = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        header: &header,
    };
    let signer = authenticate(auth, &request, &expect)
        .await
        .inspect_err(count_failure)?;
    let body = read.await?;
    let principal = match signer {
        None => Principal::Anonymous,
        Some(signer) => {
            sigv4::verify(
                &signer.credential,
                &signer.checked,
                &signer.secret,
                &request,
                &body,
            )
            .map_err(Refusal::from)
            .inspect_err(count_failure)?;
            signer.principal
        }
    };
    Ok((principal, body))
}

fn count_failure(refusal: &Refusal) {
    if !matches!(refusal, Refusal::Store(_)) {
        metrics().auth_failure("signature");
    }
}

/// The request's headers by lower-case name, as SigV4 canonicalises them;
/// over HTTP/2 `host` is the `:authority`.
fn header_lookup(parts: &Parts) -> impl Fn(&str) -> Vec<String> + Sync + '_ {
    move |name| {
        let mut values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        if values.is_empty() && name == "host" {
            values.extend(parts.uri.authority().map(|a| a.to_string()));
        }
        values
    }
}

/// One admitted call to an AWS-shaped service: its operation known, its
/// caller authenticated, its body read whole and covered by the signature.
pub struct Request<O> {
    pub peer: IpAddr,
    pub request_id: Option<String>,
    pub method: Method,
    pub headers: HeaderMap,
    /// The operation the target names.
    pub operation: O,
    pub principal: Principal,
    pub body: Bytes,
}

/// The `X-Amz-Target` header, or "".
pub fn target(headers: &HeaderMap) -> &str {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// A signer whose signature's parts passed [`sigv4::check`]; only the body
/// remains to be verified.
struct Signer {
    credential: Credential,
    checked: sigv4::Checked,
    secret: String,
    principal: Principal,
}

/// Judges the signature from the headers and finds the user behind the
/// access key. An unsigned request is anonymous (`None`) when `auth` lets
/// requests without credentials in (open mode).
async fn authenticate(
    auth: &Auth,
    request: &SignedRequest<'_>,
    expect: &Expect<'_>,
) -> Result<Option<Signer>, Refusal> {
    let Some(authorization) = (request.header)("authorization").into_iter().next() else {
        return match auth.without_credentials() {
            Some(_) => Ok(None),
            None => Err(Refusal::Missing),
        };
    };
    let credential = sigv4::parse_authorization(&authorization)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let checked = sigv4::check(&credential, request, expect, now)?;
    let (secret, principal) = auth
        .login
        .access_key(&credential.access_key_id)
        .await?
        .ok_or(Refusal::UnrecognizedClient)?;
    Ok(Some(Signer {
        credential,
        checked,
        secret,
        principal,
    }))
}

/// A successful call's answer.
pub fn output(value: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        axum::Json(value),
    )
        .into_response()
}

/// `ServerException` for a failure that is not the client's: 503 with
/// `Retry-After` while a dependency does not answer (the AWS SDKs and CLI
/// retry 503s on their own), else 500. The cause is logged, never sent.
pub fn fault(fault: Fault) -> Response {
    let message = fault.public_message().to_string();
    let mut response = error(fault.status(), "ServerException", message);
    fault.mark(&mut response);
    response
}

/// A failed call's answer: `{"__type", "message"}`.
pub fn error(status: StatusCode, name: &str, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        axum::Json(serde_json::json!({ "__type": name, "message": message })),
    )
        .into_response()
}

/// An empty body reads as `{}`, as AWS services accept.
pub fn body_or_empty(body: &[u8]) -> &[u8] {
    if body.is_empty() { b"{}" } else { body }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire answer of a fault: its status, `Retry-After` on a 503, and
    /// a fixed message that never carries the cause.
    #[tokio::test]
    async fn faults_answer_without_their_cause() {
        let cases = [
            (
                Fault::Unavailable("db at /data down".into()),
                503,
                "temporarily unavailable; retry later",
            ),
            (
                Fault::Internal("bug at /src".into()),
                500,
                "internal server error",
            ),
        ];
        for (f, status, message) in cases {
            let response = fault(f);
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(
                response.headers().contains_key(header::RETRY_AFTER),
                status == 503
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                body,
                serde_json::json!({ "__type": "ServerException", "message": message })
            );
        }
    }
}
