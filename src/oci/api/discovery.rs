//! Tag listing, the catalog and the referrers API.

use axum::Json;
use axum::http::{HeaderName, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::{ApiError, ApiResult, Code, OciState, Request};
use crate::oci::manifest::OCI_INDEX;
use crate::oci::{Digest, RepoName};

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

fn next_link(path: &str, n: u32, last: Option<&String>) -> Option<(HeaderName, String)> {
    let last = last?;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("n", &n.to_string())
        .append_pair("last", last)
        .finish();
    Some((header::LINK, format!("<{path}?{query}>; rel=\"next\"")))
}

pub async fn tags(state: &OciState, repo: &RepoName, req: &Request) -> ApiResult {
    let (n, last) = page(state, req)?;
    let page = state.registry.list_tags(repo, last.as_deref(), n).await?;
    let link = if page.more {
        next_link(&format!("/v2/{repo}/tags/list"), n, page.items.last())
    } else {
        None
    };
    let body = Json(json!({ "name": repo.as_str(), "tags": page.items }));
    Ok(match link {
        Some(link) => ([link], body).into_response(),
        None => body.into_response(),
    })
}

pub async fn catalog(state: &OciState, req: &Request) -> ApiResult {
    let (n, last) = page(state, req)?;
    let page = state.registry.catalog(last.as_deref(), n).await?;
    let link = if page.more {
        next_link("/v2/_catalog", n, page.items.last())
    } else {
        None
    };
    let body = Json(json!({ "repositories": page.items }));
    Ok(match link {
        Some(link) => ([link], body).into_response(),
        None => body.into_response(),
    })
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
            axum::http::HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}
