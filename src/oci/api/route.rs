//! The `/v2/` endpoint table: a typed route parsed from the request path.
//! Repository names contain slashes, so the path is parsed from its end.

use std::str::FromStr;

use axum::http::Method;
use uuid::Uuid;

use super::error::{ApiError, Code};
use crate::auth::Scope;
use crate::auth::scope::{DELETE, PULL, PUSH};
use crate::oci::{Digest, Reference, RepoName};

/// Every `/v2/` endpoint, by path (the method is matched by the dispatcher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// end-1: `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// end-8: `/v2/<name>/tags/list`
    Tags(RepoName),
    /// end-3, end-7, end-9: `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/manifests/<reference>` whose reference is neither a digest
    /// nor a valid tag: no manifest can have it (reads and deletes answer
    /// `MANIFEST_UNKNOWN`, a push `TAG_INVALID`), after the same authorization.
    InvalidTag(RepoName),
    /// end-2, end-10: `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// end-4, end-11: `/v2/<name>/blobs/uploads/`
    Uploads(RepoName),
    /// end-5, end-6, end-13, cancel: `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, Uuid),
    /// end-12: `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

impl Route {
    /// A low-cardinality name for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags(..) => "tags",
            Route::Manifest(..) | Route::InvalidTag(..) => "manifest",
            Route::Blob(..) => "blob",
            Route::Uploads(..) | Route::Upload(..) => "upload",
            Route::Referrers(..) => "referrers",
        }
    }
}

fn name(segments: &[&str]) -> Result<RepoName, ApiError> {
    let joined = segments.join("/");
    RepoName::from_str(&joined).map_err(|e| ApiError::new(Code::NameInvalid, e.to_string()))
}

fn digest(s: &str, code: Code) -> Result<Digest, ApiError> {
    Digest::from_str(s).map_err(|e| ApiError::new(code, format!("{s:?}: {e}")))
}

impl Route {
    /// The scopes a request needs (Distribution's mapping: reads pull, writes
    /// pull and push, deletes delete). The base endpoint needs none, only a
    /// valid identity.
    pub fn needs(&self, method: &Method) -> Vec<Scope> {
        let repo = match self {
            Route::Base => return Vec::new(),
            Route::Catalog => return vec![Scope::catalog()],
            Route::Tags(r)
            | Route::Manifest(r, _)
            | Route::InvalidTag(r)
            | Route::Blob(r, _)
            | Route::Referrers(r, _) => r,
            // Cancelling an upload is part of pushing.
            Route::Uploads(r) | Route::Upload(r, _) => {
                return vec![Scope::repository(r.as_str(), &[PULL, PUSH])];
            }
        };
        let actions: &[&str] = match *method {
            Method::GET | Method::HEAD => &[PULL],
            Method::DELETE => &[DELETE],
            _ => &[PULL, PUSH],
        };
        vec![Scope::repository(repo.as_str(), actions)]
    }

    /// Parses the part of the path after `/v2/`.
    pub fn parse(rest: &str) -> Result<Route, ApiError> {
        if rest.is_empty() {
            return Ok(Route::Base);
        }
        if rest == "_catalog" {
            return Ok(Route::Catalog);
        }
        let segs: Vec<&str> = rest.split('/').collect();
        let n = segs.len();
        let not_found = || ApiError::new(Code::NotFound, "no such endpoint");
        if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
            return Ok(Route::Tags(name(&segs[..n - 2])?));
        }
        if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
            return Ok(Route::Uploads(name(&segs[..n - 2])?));
        }
        if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
            let repo = name(&segs[..n - 3])?;
            if segs[n - 1].is_empty() {
                return Ok(Route::Uploads(repo));
            }
            let id = Uuid::parse_str(segs[n - 1])
                .map_err(|_| ApiError::new(Code::BlobUploadUnknown, "no such upload session"))?;
            return Ok(Route::Upload(repo, id));
        }
        if n < 3 {
            return Err(not_found());
        }
        let last = segs[n - 1];
        match segs[n - 2] {
            "manifests" => {
                let repo = name(&segs[..n - 2])?;
                if last.contains(':') {
                    let reference = Reference::Digest(digest(last, Code::DigestInvalid)?);
                    return Ok(Route::Manifest(repo, reference));
                }
                Ok(match last.parse() {
                    Ok(tag) => Route::Manifest(repo, Reference::Tag(tag)),
                    Err(_) => Route::InvalidTag(repo),
                })
            }
            "blobs" => Ok(Route::Blob(
                name(&segs[..n - 2])?,
                digest(last, Code::DigestInvalid)?,
            )),
            "referrers" => Ok(Route::Referrers(
                name(&segs[..n - 2])?,
                digest(last, Code::DigestInvalid)?,
            )),
            _ => Err(not_found()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    #[test]
    fn spec_endpoints() {
        let id = Uuid::new_v4();
        let d: Digest = D.parse().unwrap();
        let table: Vec<(String, Route)> = vec![
            ("".into(), Route::Base),
            ("_catalog".into(), Route::Catalog),
            ("a/b/tags/list".into(), Route::Tags(repo("a/b"))),
            (
                "a/b/c/manifests/latest".into(),
                Route::Manifest(repo("a/b/c"), Reference::Tag("latest".parse().unwrap())),
            ),
            (
                format!("a/manifests/{D}"),
                Route::Manifest(repo("a"), Reference::Digest(d.clone())),
            ),
            (format!("a/blobs/{D}"), Route::Blob(repo("a"), d.clone())),
            ("a/blobs/uploads/".into(), Route::Uploads(repo("a"))),
            ("a/blobs/uploads".into(), Route::Uploads(repo("a"))),
            (
                format!("a/blobs/uploads/{id}"),
                Route::Upload(repo("a"), id),
            ),
            (
                format!("x/y/referrers/{D}"),
                Route::Referrers(repo("x/y"), d.clone()),
            ),
            // A repository may itself be called "blobs" or "manifests".
            (format!("blobs/blobs/{D}"), Route::Blob(repo("blobs"), d)),
        ];
        for (path, want) in table {
            assert_eq!(Route::parse(&path).unwrap(), want, "{path}");
        }
    }

    #[test]
    fn scopes_needed() {
        let m = Route::Manifest(repo("a/b"), Reference::Tag("t".parse().unwrap()));
        assert_eq!(m.needs(&Method::GET)[0].to_string(), "repository:a/b:pull");
        assert_eq!(
            m.needs(&Method::PUT)[0].to_string(),
            "repository:a/b:pull,push"
        );
        assert_eq!(
            m.needs(&Method::DELETE)[0].to_string(),
            "repository:a/b:delete"
        );
        assert_eq!(
            Route::Upload(repo("a"), Uuid::new_v4()).needs(&Method::DELETE)[0].to_string(),
            "repository:a:pull,push"
        );
        assert_eq!(
            Route::Catalog.needs(&Method::GET)[0].to_string(),
            "registry:catalog:*"
        );
        assert!(Route::Base.needs(&Method::GET).is_empty());
    }

    #[test]
    fn errors() {
        let code = |p: &str| Route::parse(p).unwrap_err().code;
        assert_eq!(code("UPPER/manifests/x"), Code::NameInvalid);
        assert_eq!(code("a/blobs/sha256:xyz"), Code::DigestInvalid);
        assert_eq!(code("a/manifests/sha256:xyz"), Code::DigestInvalid);
        assert_eq!(code("a/blobs/uploads/not-a-uuid"), Code::BlobUploadUnknown);
        assert_eq!(code("a/b"), Code::NotFound);
        // A reference that cannot be a tag still routes (and is authorized)
        // like a manifest; the dispatcher answers by method.
        assert_eq!(
            Route::parse("a/manifests/.INVALID_MANIFEST_NAME").unwrap(),
            Route::InvalidTag(repo("a"))
        );
        assert_eq!(
            Route::parse("a/manifests/-bad").unwrap(),
            Route::InvalidTag(repo("a"))
        );
    }
}
