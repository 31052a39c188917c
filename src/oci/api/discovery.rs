//! Tag listing, the catalog and the referrers API.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, ApiResult, Code, OciState, Request};
use crate::oci::manifest::OCI_INDEX;
use crate::oci::{Digest, RepoName};
use crate::registry::TagPage;

/// `n` and `last` of a listing; no `n` means "everything", up to the page cap.
fn page(state: &OciState, req: &Request) -> Result<(u32, Option<String>), ApiError> {
    let max = state.settings.max_page;
    let n = match req.query.get("n") {
        None => max,
        Some(n) => n
            .parse::<u32>()
            .map_err(|_| {
                ApiError::new(
                    Code::Unsupported,
                    format!("n must be a non-negative integer, got {n:?}"),
                )
            })?
            .min(max),
    };
    Ok((n, req.query.get("last").map(str::to_string)))
}

/// A listing page as JSON (`items` under `key`), with a `Link` to the next page when there is one.
fn listing(path: &str, n: u32, page: TagPage, mut body: serde_json::Value, key: &str) -> Response {
    let next = page.more.then(|| page.items.last().cloned()).flatten();
    body[key] = json!(page.items);
    let mut response = Json(body).into_response();
    if let Some(last) = next {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &n.to_string())
            .append_pair("last", &last)
            .finish();
        if let Ok(link) = HeaderValue::from_str(&format!("<{path}?{query}>; rel=\"next\"")) {
            response.headers_mut().insert(header::LINK, link);
        }
    }
    response
}

pub async fn tags(state: &OciState, repo: &RepoName, req: &Request) -> ApiResult {
    let (n, last) = page(state, req)?;
    let page = state.registry.list_tags(repo, last.as_deref(), n).await?;
    let path = format!("/v2/{repo}/tags/list");
    Ok(listing(
        &path,
        n,
        page,
        json!({ "name": repo.as_str() }),
        "tags",
    ))
}

pub async fn catalog(state: &OciState, req: &Request) -> ApiResult {
    let (n, last) = page(state, req)?;
    let page = state.registry.catalog(last.as_deref(), n).await?;
    Ok(listing("/v2/_catalog", n, page, json!({}), "repositories"))
}

pub async fn referrers(
    state: &OciState,
    repo: &RepoName,
    subject: &Digest,
    req: &Request,
) -> ApiResult {
    let artifact_type = req.query.get("artifactType").filter(|t| !t.is_empty());
    let referrers = state
        .registry
        .referrers(repo, subject, artifact_type)
        .await?;
    let manifests: Vec<_> = referrers
        .into_iter()
        .map(|r| {
            let mut d = json!({ "mediaType": r.media_type, "digest": r.digest, "size": r.size });
            if let Some(t) = r.artifact_type {
                d["artifactType"] = t.into();
            }
            if let Some(a) = r.annotations {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let body = Json(json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }));
    let mut response = ([(header::CONTENT_TYPE, OCI_INDEX)], body).into_response();
    if artifact_type.is_some() {
        response.headers_mut().insert(
            HeaderName::from_static("oci-filters-applied"),
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}
