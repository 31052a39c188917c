//! HTTP adapter for the distribution-spec `/v2/` API: parse the request into
//! an [`Endpoint`], check the need it declares, call one registry service,
//! shape the response. No storage or hashing here.

mod blobs;
mod discovery;
pub mod error;
mod manifests;
pub mod route;
mod uploads;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};

use crate::auth::{Auth, Denial, Need, challenge};
use crate::http::{PeerAddr, Query, RequestId, RouteKind};
use crate::notifications::{Notice, Notices, Notifier, Origin};
use crate::registry::Registry;
pub use error::{ApiError, Code};
pub use route::{Endpoint, Route};

/// Settings the `/v2/` adapter reads on each request.
#[derive(Debug, Clone)]
pub struct OciSettings {
    /// Advertised as `OCI-Chunk-Min-Length` when an upload session starts.
    pub chunk_min_length: u64,
    /// Largest page for tag and catalog listings.
    pub max_page: u32,
}

/// What every `/v2/` handler receives.
#[derive(Clone)]
pub struct OciState {
    pub registry: Registry,
    pub settings: OciSettings,
    pub auth: Arc<Auth>,
    pub notifier: Notifier,
}

impl<S> FromRef<S> for OciState
where
    Registry: FromRef<S>,
    OciSettings: FromRef<S>,
    Arc<Auth>: FromRef<S>,
    Notifier: FromRef<S>,
{
    fn from_ref(state: &S) -> Self {
        OciState {
            registry: Registry::from_ref(state),
            settings: OciSettings::from_ref(state),
            auth: Arc::<Auth>::from_ref(state),
            notifier: Notifier::from_ref(state),
        }
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// The `/v2/` routes. Repository names contain slashes, so one wildcard route
/// takes everything and [`Endpoint::parse`] decides.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    OciState: FromRef<S>,
{
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
}

const API_VERSION: header::HeaderName =
    header::HeaderName::from_static("docker-distribution-api-version");

/// One incoming request without its body, parsed as far as every handler needs.
pub struct Request {
    pub method: Method,
    pub query: Query,
    pub headers: HeaderMap,
    /// The client's address (behind trusted proxies, the forwarded one).
    pub client: IpAddr,
    /// Set when the connection can send files itself (plain HTTP/1).
    pub sendfile: Option<crate::sendfile::Sink>,
}

impl Request {
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether `If-None-Match` names `digest`'s entity tag (or is `*`): the
    /// client holds these bytes already (RFC 9110 §13.1.2, weak comparison).
    pub fn holds_current(&self, digest: &crate::oci::Digest) -> bool {
        if !self.headers.contains_key(header::IF_NONE_MATCH) {
            return false;
        }
        let etag = etag(digest);
        self.headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    }

    /// Whether a `Range` may be honoured: without `If-Range`, or with one
    /// naming `digest`'s entity tag exactly (RFC 9110 §13.1.5, strong
    /// comparison; a date never matches, as blobs carry no Last-Modified).
    pub fn range_applies(&self, digest: &crate::oci::Digest) -> bool {
        self.header(header::IF_RANGE)
            .is_none_or(|tag| tag.trim() == etag(digest))
    }

    /// 304 for a client that holds `digest` already, with its validators.
    pub fn not_modified(digest: &crate::oci::Digest) -> Response {
        (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag(digest)),
                (
                    header::HeaderName::from_static("docker-content-digest"),
                    digest.to_string(),
                ),
            ],
        )
            .into_response()
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header(header::CONTENT_LENGTH)
            .and_then(|v| v.parse().ok())
    }
}

/// The entity tag of content: its digest, quoted (blobs and manifests alike).
pub fn etag(digest: &crate::oci::Digest) -> String {
    format!("\"{digest}\"")
}

/// A request body as a byte stream for the registry services.
pub fn body_stream(body: Body) -> impl Stream<Item = io::Result<Bytes>> + Unpin + Send {
    body.into_data_stream().map_err(io::Error::other)
}

/// Every `/v2/` response names the API version, and its route for the request log.
async fn dispatch(
    State(state): State<OciState>,
    PeerAddr(peer): PeerAddr,
    request: axum::extract::Request,
) -> Response {
    let (mut response, kind) = respond(state, peer, request).await;
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    if let Some(kind) = kind {
        response.extensions_mut().insert(kind);
    }
    response
}

async fn respond(
    state: OciState,
    peer: IpAddr,
    request: axum::extract::Request,
) -> (Response, Option<RouteKind>) {
    let (parts, body) = request.into_parts();
    let request_id = parts.extensions.get::<RequestId>().map(|id| id.0.clone());
    let (method, headers) = (parts.method, parts.headers);
    let query = Query::from_uri(&parts.uri);
    let rest = parts.uri.path().strip_prefix("/v2").unwrap_or("");
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let endpoint = match Endpoint::parse(&method, rest, &query) {
        Ok(endpoint) => endpoint,
        Err(e) => return (e.into_response(), None),
    };
    let kind = RouteKind(endpoint.kind());
    let need = endpoint.authorization();
    let client = state.auth.client_ip(&headers, peer);
    let granted = match state.auth.check(&headers, client, &need).await {
        Ok(granted) => granted,
        Err(denial) => {
            let denial = denied(&state.auth, &headers, peer, &need, denial);
            return (denial.into_response(), Some(kind));
        }
    };
    let req = Request {
        method,
        query,
        headers,
        client,
        sendfile: parts.extensions.get::<crate::sendfile::Sink>().cloned(),
    };
    let result = handle(&state, endpoint, granted.may_mount, &req, body).await;
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(Notices(notices)) = response.extensions_mut().remove::<Notices>() {
        let origin = Origin::of_request(
            request_id,
            &req.headers,
            &req.method,
            client,
            granted.principal.subject(),
        );
        state.notifier.notify(&notices, &origin);
    }
    (response, Some(kind))
}

/// Runs an authorized endpoint's handler.
async fn handle(
    state: &OciState,
    endpoint: Endpoint,
    may_mount: bool,
    req: &Request,
    body: Body,
) -> ApiResult {
    match endpoint {
        Endpoint::Base => Ok(axum::Json(serde_json::json!({})).into_response()),
        Endpoint::Catalog => discovery::catalog(state, req).await,
        Endpoint::ListTags(repo) => discovery::tags(state, &repo, req).await,
        Endpoint::Referrers(repo, digest) => discovery::referrers(state, &repo, &digest, req).await,
        Endpoint::GetManifest(repo, Some(reference)) => {
            manifests::get(state, &repo, &reference, req).await
        }
        Endpoint::PutManifest(repo, Some(reference)) => {
            manifests::put(state, &repo, &reference, req, body).await
        }
        Endpoint::DeleteManifest(repo, Some(reference)) => {
            manifests::delete(state, &repo, &reference).await
        }
        Endpoint::GetManifest(_, None) | Endpoint::DeleteManifest(_, None) => Err(ApiError::new(
            Code::ManifestUnknown,
            "no manifest has this reference",
        )),
        Endpoint::PutManifest(_, None) => Err(ApiError::new(
            Code::TagInvalid,
            "a tag is up to 128 of [A-Za-z0-9_.-], not starting with . or -",
        )),
        Endpoint::GetBlob { repo, digest, .. } => blobs::get(state, &repo, &digest, req).await,
        Endpoint::DeleteBlob(repo, digest) => blobs::delete(state, &repo, &digest).await,
        Endpoint::StartUpload(repo) => uploads::start(state, &repo).await,
        Endpoint::PutBlob(repo, digest) => {
            uploads::monolithic(state, &repo, &digest, req, body).await
        }
        Endpoint::MountBlob { repo, digest, from } => {
            uploads::mount(state, &repo, &digest, &from, may_mount).await
        }
        Endpoint::UploadStatus(repo, id) => uploads::status(state, &repo, id).await,
        Endpoint::PatchUpload(repo, id) => uploads::patch(state, &repo, id, req, body).await,
        Endpoint::FinishUpload(repo, id) => uploads::put(state, &repo, id, req, body).await,
        Endpoint::CancelUpload(repo, id) => uploads::cancel(state, &repo, id).await,
    }
}

/// Attaches an event for the webhooks to a response; the dispatcher sends it.
pub fn with_notice(mut response: Response, notice: Notice) -> Response {
    response
        .extensions_mut()
        .get_or_insert_default::<Notices>()
        .0
        .push(notice);
    response
}

/// Attaches a pull's notice, built only when an endpoint asks for pulls.
pub fn with_pull_notice(
    state: &OciState,
    response: Response,
    notice: impl FnOnce() -> Notice,
) -> Response {
    if state.notifier.wants(crate::notifications::Action::Pull) {
        with_notice(response, notice())
    } else {
        response
    }
}

/// The OCI error for a refused request, with a Bearer challenge on 401.
fn denied(auth: &Auth, headers: &HeaderMap, peer: IpAddr, need: &Need, denial: Denial) -> ApiError {
    match denial {
        Denial::Unauthorized { error, message } => {
            let realm = auth.realm(headers, peer);
            let value = challenge(&realm, &auth.tokens.service, &need.scopes(), error);
            ApiError::new(Code::Unauthorized, message).with_header(header::WWW_AUTHENTICATE, &value)
        }
        Denial::Forbidden(message) => ApiError::new(Code::Denied, message),
        Denial::Fault(fault) => fault.into(),
        Denial::Throttled { retry_after } => ApiError::new(
            Code::TooManyRequests,
            "too many login attempts; retry later",
        )
        .with_header(header::RETRY_AFTER, &retry_after.to_string()),
    }
}

/// The `Range` header value of an upload session holding `size` bytes.
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// The `Location` of an upload session.
fn upload_location(repo: &crate::oci::RepoName, id: uuid::Uuid) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}
