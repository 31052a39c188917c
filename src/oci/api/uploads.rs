//! Blob upload endpoints: start (session, monolithic, mount), PATCH, PUT,
//! status and cancel.

use axum::body::Body;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::blobs::blob_notice;
use super::{
    ApiError, ApiResult, Code, OciState, Request, body_stream, upload_location, upload_range,
    with_notice,
};
use crate::notifications::Action;
use crate::oci::{Digest, RepoName};
use crate::registry::ChunkRange;
use crate::registry::RegistryError;

fn digest_param(req: &Request) -> Result<Option<Digest>, ApiError> {
    req.query
        .get("digest")
        .map(|d| {
            d.parse()
                .map_err(|e| ApiError::new(Code::DigestInvalid, format!("digest {d:?}: {e}")))
        })
        .transpose()
}

/// 201 for a blob now in `repo`, with its push event.
fn created(repo: &RepoName, digest: &Digest, size: Option<u64>) -> Response {
    let response = (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{repo}/blobs/{digest}")),
            (
                HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
        .into_response();
    with_notice(response, blob_notice(Action::Push, repo, digest, size))
}

fn session(status: StatusCode, repo: &RepoName, id: Uuid, size: u64) -> Response {
    (
        status,
        [
            (header::LOCATION, upload_location(repo, id)),
            (header::RANGE, upload_range(size)),
            (
                HeaderName::from_static("docker-upload-uuid"),
                id.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
        .into_response()
}

/// Adds the session's `Location` to an error, so a client can resume after a 416.
fn at_session(repo: &RepoName, id: Uuid) -> impl FnOnce(RegistryError) -> ApiError {
    let location = upload_location(repo, id);
    move |e| ApiError::from(e).with_header(header::LOCATION, &location)
}

/// `Content-Range` of a chunk: `start-end`, with or without a `bytes ` unit and `/total`.
fn parse_content_range(value: &str) -> Option<ChunkRange> {
    let v = value.trim();
    let v = v
        .strip_prefix("bytes")
        .map(|r| r.trim_start_matches([' ', '=']))
        .unwrap_or(v);
    let v = v.split('/').next()?;
    let (start, end) = v.split_once('-')?;
    Some(ChunkRange {
        start: start.trim().parse().ok()?,
        end: end.trim().parse().ok()?,
    })
}

/// The chunk a PATCH or final PUT says it carries, if it says.
fn content_range(req: &Request) -> Result<Option<ChunkRange>, ApiError> {
    req.header(header::CONTENT_RANGE)
        .map(|v| {
            parse_content_range(v).ok_or_else(|| {
                ApiError::new(Code::BlobUploadInvalid, format!("bad Content-Range {v:?}"))
            })
        })
        .transpose()
}

/// end-4a: opens a session.
pub async fn start(state: &OciState, repo: &RepoName) -> ApiResult {
    let id = state.registry.start_upload(repo).await?;
    let mut response = session(StatusCode::ACCEPTED, repo, id, 0);
    response.headers_mut().insert(
        HeaderName::from_static("oci-chunk-min-length"),
        state.settings.chunk_min_length.into(),
    );
    Ok(response)
}

/// end-4b: the whole blob in one request.
pub async fn monolithic(
    state: &OciState,
    repo: &RepoName,
    digest: &Digest,
    req: &Request,
    body: Body,
) -> ApiResult {
    let length = req.content_length();
    let size = state
        .registry
        .put_blob(repo, digest, length, body_stream(body))
        .await?;
    Ok(created(repo, digest, Some(size)))
}

/// end-11: mounts `digest` from `from` when the caller may read it there
/// (`may_mount`) and it is there; else opens an ordinary session, as the
/// spec allows.
pub async fn mount(
    state: &OciState,
    repo: &RepoName,
    digest: &Digest,
    from: &RepoName,
    may_mount: bool,
) -> ApiResult {
    if may_mount && state.registry.mount_blob(repo, digest, from).await? {
        return Ok(created(repo, digest, None));
    }
    start(state, repo).await
}

pub async fn patch(
    state: &OciState,
    repo: &RepoName,
    id: Uuid,
    req: &Request,
    body: Body,
) -> ApiResult {
    let range = content_range(req)?;
    let length = req.content_length();
    let size = state
        .registry
        .append_upload(repo, id, range, length, body_stream(body))
        .await
        .map_err(at_session(repo, id))?;
    Ok(session(StatusCode::ACCEPTED, repo, id, size))
}

pub async fn put(
    state: &OciState,
    repo: &RepoName,
    id: Uuid,
    req: &Request,
    body: Body,
) -> ApiResult {
    let digest = digest_param(req)?.ok_or_else(|| {
        ApiError::new(
            Code::DigestInvalid,
            "the digest query parameter is required",
        )
    })?;
    let range = content_range(req)?;
    let length = req.content_length();
    let size = state
        .registry
        .complete_upload(repo, id, &digest, range, length, body_stream(body))
        .await
        .map_err(at_session(repo, id))?;
    Ok(created(repo, &digest, Some(size)))
}

pub async fn status(state: &OciState, repo: &RepoName, id: Uuid) -> ApiResult {
    let size = state.registry.upload_size(repo, id).await?;
    Ok(session(StatusCode::NO_CONTENT, repo, id, size))
}

pub async fn cancel(state: &OciState, repo: &RepoName, id: Uuid) -> ApiResult {
    state.registry.cancel_upload(repo, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges() {
        for v in [
            "0-99",
            "bytes 0-99",
            "bytes=0-99",
            "bytes 0-99/*",
            "0-99/100",
        ] {
            let r = parse_content_range(v).unwrap();
            assert_eq!((r.start, r.end), (0, 99), "{v}");
        }
        assert!(parse_content_range("x-1").is_none());
    }
}
