//! Blob GET/HEAD (with ranges) and DELETE.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;

use super::{ApiResult, OciState, Request, with_notice, with_pull_notice};
use crate::notifications::{Action, Notice};
use crate::oci::{Digest, RepoName};
use crate::registry::BlobBody;
use crate::sendfile::FileBody;

/// Parses a single `bytes=first-last` range; anything else means "whole blob".
fn parse_range(value: &str) -> Option<(Option<u64>, Option<u64>)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let num = |s: &str| {
        if s.trim().is_empty() {
            Ok(None)
        } else {
            s.trim().parse().map(Some)
        }
    };
    let (first, last) = (num(first).ok()?, num(last).ok()?);
    (first.is_some() || last.is_some()).then_some((first, last))
}

pub async fn get(state: &OciState, repo: &RepoName, digest: &Digest, req: &Request) -> ApiResult {
    if req.holds_current(digest) {
        state.registry.stat_blob(repo, digest).await?;
        return Ok(Request::not_modified(digest));
    }
    let digest_header = digest.to_string();
    if req.method == Method::HEAD {
        let size = state.registry.stat_blob(repo, digest).await?;
        return Ok((
            [
                (header::CONTENT_LENGTH, size.to_string()),
                (header::CONTENT_TYPE, "application/octet-stream".into()),
                (header::ACCEPT_RANGES, "bytes".into()),
                (
                    header::HeaderName::from_static("docker-content-digest"),
                    digest_header,
                ),
            ],
            Body::empty(),
        )
            .into_response());
    }
    if let Some(url) = state.registry.blob_redirect(repo, digest).await? {
        let size = state.registry.stat_blob(repo, digest).await.ok();
        return Ok(with_pull_notice(
            state,
            (
                StatusCode::TEMPORARY_REDIRECT,
                [
                    (header::LOCATION, url),
                    (
                        header::HeaderName::from_static("docker-content-digest"),
                        digest_header,
                    ),
                ],
            )
                .into_response(),
            || blob_notice(Action::Pull, repo, digest, size),
        ));
    }
    let range = req
        .header(header::RANGE)
        .filter(|_| req.range_applies(digest))
        .and_then(parse_range);
    let blob = state.registry.open_blob(repo, digest, range).await?;
    let common = [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::ACCEPT_RANGES, "bytes".into()),
        (
            header::HeaderName::from_static("docker-content-digest"),
            digest_header,
        ),
        (header::ETAG, super::etag(digest)),
    ];
    let body = match (blob.body, &req.sendfile) {
        (BlobBody::File(file), Some(sink)) => {
            let len = file.range.end - file.range.start;
            crate::metrics::metrics().sendfile_reads.inc();
            Body::new(FileBody::new(
                file.file,
                file.range.start,
                len,
                sink.clone(),
            ))
        }
        (body, _) => Body::from_stream(body.into_stream()),
    };
    Ok(match blob.range {
        Some(r) => (
            StatusCode::PARTIAL_CONTENT,
            common,
            [
                (header::CONTENT_LENGTH, (r.end - r.start).to_string()),
                (
                    header::CONTENT_RANGE,
                    format!("bytes {}-{}/{}", r.start, r.end - 1, blob.size),
                ),
            ],
            body,
        )
            .into_response(),
        None => with_pull_notice(
            state,
            (
                StatusCode::OK,
                common,
                [(header::CONTENT_LENGTH, blob.size.to_string())],
                body,
            )
                .into_response(),
            || blob_notice(Action::Pull, repo, digest, Some(blob.size)),
        ),
    })
}

pub fn blob_notice(action: Action, repo: &RepoName, digest: &Digest, size: Option<u64>) -> Notice {
    Notice {
        action,
        repository: repo.to_string(),
        media_type: Some("application/octet-stream".into()),
        digest: Some(digest.to_string()),
        size,
        tag: None,
    }
}

pub async fn delete(state: &OciState, repo: &RepoName, digest: &Digest) -> ApiResult {
    state.registry.delete_blob(repo, digest).await?;
    Ok(with_notice(
        StatusCode::ACCEPTED.into_response(),
        blob_notice(Action::Delete, repo, digest, None),
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9"), Some((Some(0), Some(9))));
        assert_eq!(parse_range("bytes=5-"), Some((Some(5), None)));
        assert_eq!(parse_range("bytes=-5"), Some((None, Some(5))));
        assert_eq!(parse_range("bytes=0-1,4-5"), None);
        assert_eq!(parse_range("items=0-1"), None);
        assert_eq!(parse_range("bytes=-"), None);
    }
}
