//! What operators see: `/healthz`, `/readyz`, `/metrics`, and one log line
//! per request carrying a request id that is also returned as `X-Request-Id`.

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use tracing::Instrument;

use crate::http::{InternalCause, REQUEST_ID, RETRY_AFTER_SECONDS, RequestId, RouteKind};
use crate::metrics::{self, RequestLabels, RouteLabels, metrics};
use crate::oci::api::Route;
use crate::registry::Registry;

pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Registry: axum::extract::FromRef<S>,
{
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(scrape))
}

/// Ready when the metadata database and the blob store answer.
async fn ready(State(registry): State<Registry>) -> Response {
    match registry.check_ready().await {
        Ok(()) => "ready\n".into_response(),
        // The cause names paths and hosts: it is logged, never sent.
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
                "not ready\n",
            )
                .into_response()
        }
    }
}

async fn scrape(State(registry): State<Registry>) -> Response {
    let m = metrics();
    match registry.blob_totals().await {
        Ok((count, bytes)) => {
            m.blobs_stored.set(count as i64);
            m.blob_bytes_stored.set(bytes as i64);
        }
        Err(e) => tracing::warn!(error = %e, "blob totals for /metrics"),
    }
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], m.render()).into_response()
}

/// The route label of a request path.
fn route_of(path: &str) -> &'static str {
    match path {
        "/healthz" | "/readyz" | "/metrics" => "operations",
        "/token" => "token",
        "/" => "ecr",
        "/v2" | "/v2/" => "base",
        _ => match path.strip_prefix("/v2/") {
            Some(rest) => Route::parse(rest).map_or("invalid", |r| r.kind()),
            None => "other",
        },
    }
}

/// A client's request id is kept when it is short and plain; otherwise one is made.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(new_request_id, str::to_string)
}

/// 32 hex digits, as a v4 UUID's simple form: a random prefix drawn once per
/// process (ids from replicas do not collide) and a counter, so a request
/// costs no call for random bytes. Ids are labels, not secrets.
fn new_request_id() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix:016x}{n:016x}")
}

/// The metrics label of a method: the standard ones by name, anything else
/// as `other`, so clients cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Logs every request once inside a span with its id (so the handler's own
/// lines carry it too), counts it, and returns the id to the client. A 500's
/// cause, carried on the response, is logged here.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    let method = request.method().clone();
    // Shares the request's bytes: no copy of the path per request.
    let uri = request.uri().clone();
    let span = tracing::info_span!("request", id = %id);

    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(RequestId(id.clone()));
    // A body known to be empty (most reads) has no bytes to count.
    let body = if http_body::Body::size_hint(&body).exact() == Some(0) {
        body
    } else {
        let counted = body.into_data_stream().inspect_ok(|chunk| {
            metrics().bytes_received.inc_by(chunk.len() as u64);
        });
        Body::from_stream(counted)
    };
    let request = Request::from_parts(parts, body);

    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let route = response
        .extensions()
        .get::<RouteKind>()
        .map_or_else(|| route_of(uri.path()), |kind| kind.0);
    let m = metrics();
    m.requests
        .get_or_create(&RequestLabels {
            route,
            method: method_label(&method),
            status,
        })
        .inc();
    m.request_seconds
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
    if method != Method::HEAD
        && let Some(length) = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    {
        m.bytes_sent.inc_by(length);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let path = uri.path();
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let _entered = span.enter();
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(%method, path, status, duration_ms, error = %cause, "request failed");
    } else {
        tracing::info!(%method, path, status, duration_ms, "request");
    }
    response
}
