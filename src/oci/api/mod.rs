//! HTTP adapter for the distribution-spec `/v2/` API: parse the route, call one
//! registry service, shape the response. No storage or hashing here.

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
use axum::extract::{Extension, FromRef, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};

use crate::auth::{Auth, DOWNLOAD_TOKEN, Denial, Scope, challenge};
use crate::http::{PeerAddr, Query, RequestId};
use crate::notifications::{Notice, Notices, Notifier, Origin};
use crate::registry::Registry;
pub use error::{ApiError, Code};
pub use route::Route;

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
/// takes everything and [`Route::parse`] decides.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    OciState: FromRef<S>,
{
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .layer(axum::middleware::map_response(api_version_header))
}

async fn api_version_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

/// One incoming request without its body, parsed as far as every handler needs.
pub struct Request {
    pub method: Method,
    pub query: Query,
    pub headers: HeaderMap,
    /// The client's address (behind trusted proxies, the forwarded one).
    pub client: IpAddr,
}

impl Request {
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header(header::CONTENT_LENGTH)
            .and_then(|v| v.parse().ok())
    }
}

/// A request body as a byte stream for the registry services.
pub fn body_stream(body: Body) -> impl Stream<Item = io::Result<Bytes>> + Unpin + Send {
    body.into_data_stream().map_err(io::Error::other)
}

async fn dispatch(
    State(state): State<OciState>,
    PeerAddr(peer): PeerAddr,
    request_id: Option<Extension<RequestId>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let rest = uri.path().strip_prefix("/v2").unwrap_or("");
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let route = match Route::parse(rest) {
        Ok(route) => route,
        Err(e) => return e.into_response(),
    };
    let needs = route.needs(&method);
    let client = state.auth.client_ip(&headers, peer);
    let query = Query::from_uri(&uri);
    let actor = if presigned(&state.auth, &method, &route, &query) {
        String::new()
    } else {
        match state.auth.authorize(&headers, client, &needs).await {
            Ok(principal) => principal.subject(),
            Err(denial) => {
                return denied(&state.auth, &headers, peer, &needs, denial).into_response();
            }
        }
    };
    let req = Request {
        method,
        query,
        headers,
        client,
    };
    let result = match (&req.method, route) {
        (&Method::GET | &Method::HEAD, Route::Base) => {
            Ok(axum::Json(serde_json::json!({})).into_response())
        }
        (&Method::GET, Route::Catalog) => discovery::catalog(&state, &req).await,
        (&Method::GET, Route::Tags(repo)) => discovery::tags(&state, &repo, &req).await,
        (&Method::GET, Route::Referrers(repo, digest)) => {
            discovery::referrers(&state, &repo, &digest, &req).await
        }
        (&Method::GET | &Method::HEAD, Route::Manifest(repo, reference)) => {
            manifests::get(&state, &repo, &reference, &req).await
        }
        (&Method::PUT, Route::Manifest(repo, reference)) => {
            manifests::put(&state, &repo, &reference, &req, body).await
        }
        (&Method::DELETE, Route::Manifest(repo, reference)) => {
            manifests::delete(&state, &repo, &reference).await
        }
        (&Method::GET | &Method::HEAD | &Method::DELETE, Route::InvalidTag(_)) => Err(
            ApiError::new(Code::ManifestUnknown, "no manifest has this reference"),
        ),
        (&Method::PUT, Route::InvalidTag(_)) => Err(ApiError::new(
            Code::TagInvalid,
            "a tag is up to 128 of [A-Za-z0-9_.-], not starting with . or -",
        )),
        (&Method::GET | &Method::HEAD, Route::Blob(repo, digest)) => {
            blobs::get(&state, &repo, &digest, &req).await
        }
        (&Method::DELETE, Route::Blob(repo, digest)) => blobs::delete(&state, &repo, &digest).await,
        (&Method::POST, Route::Uploads(repo)) => uploads::start(&state, &repo, &req, body).await,
        (&Method::GET, Route::Upload(repo, id)) => uploads::status(&state, &repo, id).await,
        (&Method::PATCH, Route::Upload(repo, id)) => {
            uploads::patch(&state, &repo, id, &req, body).await
        }
        (&Method::PUT, Route::Upload(repo, id)) => {
            uploads::put(&state, &repo, id, &req, body).await
        }
        (&Method::DELETE, Route::Upload(repo, id)) => uploads::cancel(&state, &repo, id).await,
        (method, _) => Err(ApiError::new(
            Code::MethodNotAllowed,
            format!("{method} is not supported here"),
        )),
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(Notices(notices)) = response.extensions_mut().remove::<Notices>() {
        let origin = Origin::of_request(
            request_id.map(|Extension(RequestId(id))| id),
            &req.headers,
            &req.method,
            client,
            actor,
        );
        state.notifier.notify(&notices, &origin);
    }
    response
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

/// Whether this is a blob read through a valid download URL, which needs no
/// other credential.
fn presigned(auth: &Auth, method: &Method, route: &Route, query: &Query) -> bool {
    match (method, route, query.get(DOWNLOAD_TOKEN)) {
        (&Method::GET | &Method::HEAD, Route::Blob(repo, digest), Some(token)) => auth
            .tokens
            .verify_download(token, repo.as_str(), &digest.to_string()),
        _ => false,
    }
}

/// The OCI error for a refused request, with a Bearer challenge on 401.
fn denied(
    auth: &Auth,
    headers: &HeaderMap,
    peer: IpAddr,
    needs: &[Scope],
    denial: Denial,
) -> ApiError {
    match denial {
        Denial::Unauthorized { error, message } => {
            let realm = auth.realm(headers, peer);
            let value = challenge(&realm, &auth.tokens.service, needs, error);
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
