//! Manifest GET/HEAD/PUT/DELETE by tag or digest.

use axum::body::Body;
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::response::IntoResponse;

use super::{ApiError, ApiResult, Code, OciState, Request, with_notice, with_pull_notice};
use crate::notifications::{Action, Notice};
use crate::oci::manifest::{SUPPORTED, essence};
use crate::oci::{Reference, RepoName, Tag};
use crate::registry::RegistryError;

const DIGEST_HEADER: HeaderName = HeaderName::from_static("docker-content-digest");

/// True when the client's `Accept` admits `media_type`. Clients that name no
/// manifest type at all (or a wildcard) accept whatever is stored.
fn notice(action: Action, repo: &RepoName, reference: Option<&Reference>) -> Notice {
    Notice {
        action,
        repository: repo.to_string(),
        media_type: None,
        digest: None,
        size: None,
        tag: match reference {
            Some(Reference::Tag(t)) => Some(t.to_string()),
            _ => None,
        },
    }
}

fn accepts(req: &Request, media_type: &str) -> bool {
    let offered: Vec<&str> = req
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(essence)
        .collect();
    let names_manifests = offered.iter().any(|t| SUPPORTED.contains(t));
    !names_manifests || offered.iter().any(|t| *t == media_type || *t == "*/*")
}

pub async fn get(
    state: &OciState,
    repo: &RepoName,
    reference: &Reference,
    req: &Request,
) -> ApiResult {
    let head = req.method == Method::HEAD;
    let (record, body) = if head {
        (
            state.registry.stat_manifest(repo, reference).await?,
            Body::empty(),
        )
    } else {
        let read = state.registry.get_manifest(repo, reference).await?;
        (read.record, Body::from(read.bytes))
    };
    if !accepts(req, &record.media_type) {
        return Err(ApiError::new(
            Code::ManifestUnknown,
            format!(
                "manifest {reference} is a {}, which the request does not accept",
                record.media_type
            ),
        ));
    }
    if req.holds_current(&record.digest) {
        return Ok(Request::not_modified(&record.digest));
    }
    let response = (
        [
            (header::CONTENT_TYPE, record.media_type.clone()),
            (header::CONTENT_LENGTH, record.size.to_string()),
            (DIGEST_HEADER, record.digest.to_string()),
            (header::ETAG, super::etag(&record.digest)),
        ],
        body,
    )
        .into_response();
    if head {
        return Ok(response);
    }
    Ok(with_pull_notice(state, response, || Notice {
        media_type: Some(record.media_type),
        digest: Some(record.digest.to_string()),
        size: Some(record.size),
        ..notice(Action::Pull, repo, Some(reference))
    }))
}

pub async fn put(
    state: &OciState,
    repo: &RepoName,
    reference: &Reference,
    req: &Request,
    body: Body,
) -> ApiResult {
    let tags = req
        .query
        .all("tag")
        .map(|t| {
            t.parse::<Tag>()
                .map_err(|e| ApiError::new(Code::ManifestInvalid, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let content_type = req.header(header::CONTENT_TYPE).map(str::to_string);
    // Read at most one byte past the cap, so an oversized body is refused without buffering it.
    let limit = state.registry.limits().max_manifest_bytes;
    let bytes = axum::body::to_bytes(body, limit.saturating_add(1))
        .await
        .map_err(|_| ApiError::from(RegistryError::ManifestTooLarge { limit }))?;
    let size = bytes.len() as u64;
    let pushed = state
        .registry
        .put_manifest(repo, reference, &tags, content_type.as_deref(), bytes)
        .await?;
    let pushed_notice = |tag: Option<String>| Notice {
        media_type: content_type.clone(),
        digest: Some(pushed.digest.to_string()),
        size: Some(size),
        tag,
        ..notice(Action::Push, repo, None)
    };
    let mut notices: Vec<Notice> = tags
        .iter()
        .map(|t| pushed_notice(Some(t.to_string())))
        .collect();
    if let Reference::Tag(t) = reference {
        notices.push(pushed_notice(Some(t.to_string())));
    }
    if notices.is_empty() {
        notices.push(pushed_notice(None));
    }
    let mut response = (
        StatusCode::CREATED,
        [
            (
                header::LOCATION,
                format!("/v2/{repo}/manifests/{}", pushed.digest),
            ),
            (DIGEST_HEADER, pushed.digest.to_string()),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
        .into_response();
    if let Some(subject) = pushed.subject
        && let Ok(v) = subject.to_string().parse()
    {
        response
            .headers_mut()
            .insert(HeaderName::from_static("oci-subject"), v);
    }
    Ok(notices.into_iter().fold(response, with_notice))
}

pub async fn delete(state: &OciState, repo: &RepoName, reference: &Reference) -> ApiResult {
    state.registry.delete_manifest(repo, reference).await?;
    let deleted = Notice {
        digest: match reference {
            Reference::Digest(d) => Some(d.to_string()),
            Reference::Tag(_) => None,
        },
        ..notice(Action::Delete, repo, Some(reference))
    };
    Ok(with_notice(StatusCode::ACCEPTED.into_response(), deleted))
}
