//! The `/v2/` endpoint table (garage's S3 router is the model): a request's
//! method, path and query parse into one [`Endpoint`], and each endpoint
//! declares the [`Need`] the dispatcher checks before its handler runs.
//! Repository names contain slashes, so the path is parsed from its end.

use std::str::FromStr;

use axum::http::Method;
use uuid::Uuid;

use super::error::{ApiError, Code};
use crate::auth::{Action, DOWNLOAD_TOKEN, Need};
use crate::http::Query;
use crate::oci::{Digest, Reference, RepoName};

/// Every `/v2/` endpoint: what a request asks for, with what it names parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// end-1: `GET`/`HEAD /v2/`
    Base,
    /// `GET /v2/_catalog`
    Catalog,
    /// end-8: `GET /v2/<name>/tags/list`
    ListTags(RepoName),
    /// end-3: `GET`/`HEAD /v2/<name>/manifests/<reference>`. `None`: a
    /// reference that is neither a digest nor a valid tag, which no manifest
    /// can have (reads and deletes answer `MANIFEST_UNKNOWN`, a push
    /// `TAG_INVALID`), after the same authorization.
    GetManifest(RepoName, Option<Reference>),
    /// end-7: `PUT /v2/<name>/manifests/<reference>`
    PutManifest(RepoName, Option<Reference>),
    /// end-9: `DELETE /v2/<name>/manifests/<reference>`
    DeleteManifest(RepoName, Option<Reference>),
    /// end-2: `GET`/`HEAD /v2/<name>/blobs/<digest>`, perhaps through a
    /// download URL (`?download_token=`).
    GetBlob {
        repo: RepoName,
        digest: Digest,
        download_token: Option<String>,
    },
    /// end-10: `DELETE /v2/<name>/blobs/<digest>`
    DeleteBlob(RepoName, Digest),
    /// end-4a: `POST /v2/<name>/blobs/uploads/`: opens a session.
    StartUpload(RepoName),
    /// end-4b: `POST /v2/<name>/blobs/uploads/?digest=<digest>`: the whole blob.
    PutBlob(RepoName, Digest),
    /// end-11: `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>`;
    /// a session opens instead when the blob cannot be mounted.
    MountBlob {
        repo: RepoName,
        digest: Digest,
        from: RepoName,
    },
    /// end-13: `GET /v2/<name>/blobs/uploads/<reference>`
    UploadStatus(RepoName, Uuid),
    /// end-5: `PATCH /v2/<name>/blobs/uploads/<reference>`
    PatchUpload(RepoName, Uuid),
    /// end-6: `PUT /v2/<name>/blobs/uploads/<reference>?digest=<digest>`
    FinishUpload(RepoName, Uuid),
    /// `DELETE /v2/<name>/blobs/uploads/<reference>`: cancels a session.
    CancelUpload(RepoName, Uuid),
    /// end-12: `GET /v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

impl Endpoint {
    /// The metrics label of the endpoint's route, as [`Route::kind`] names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Base => "base",
            Endpoint::Catalog => "catalog",
            Endpoint::ListTags(..) => "tags",
            Endpoint::GetManifest(..)
            | Endpoint::PutManifest(..)
            | Endpoint::DeleteManifest(..) => "manifest",
            Endpoint::GetBlob { .. } | Endpoint::DeleteBlob(..) => "blob",
            Endpoint::StartUpload(..)
            | Endpoint::PutBlob(..)
            | Endpoint::MountBlob { .. }
            | Endpoint::UploadStatus(..)
            | Endpoint::PatchUpload(..)
            | Endpoint::FinishUpload(..)
            | Endpoint::CancelUpload(..) => "upload",
            Endpoint::Referrers(..) => "referrers",
        }
    }

    /// Parses a request: the path first (its errors come first), then the
    /// method, so a method the path does not take is 405 before anyone's
    /// rights are checked; then the query that selects an upload's kind.
    pub fn parse(method: &Method, rest: &str, query: &Query) -> Result<Endpoint, ApiError> {
        let route = Route::parse(rest)?;
        let read = matches!(*method, Method::GET | Method::HEAD);
        let endpoint = match (route, method) {
            (Route::Base, _) if read => Endpoint::Base,
            (Route::Catalog, &Method::GET) => Endpoint::Catalog,
            (Route::Tags(repo), &Method::GET) => Endpoint::ListTags(repo),
            (Route::Manifest(repo, r), _) => manifest(method, repo, Some(r))?,
            (Route::InvalidTag(repo), _) => manifest(method, repo, None)?,
            (Route::Blob(repo, digest), _) if read => Endpoint::GetBlob {
                repo,
                digest,
                download_token: query.get(DOWNLOAD_TOKEN).map(str::to_string),
            },
            (Route::Blob(repo, digest), &Method::DELETE) => Endpoint::DeleteBlob(repo, digest),
            (Route::Uploads(repo), &Method::POST) => start_upload(repo, query)?,
            (Route::Upload(repo, id), &Method::GET) => Endpoint::UploadStatus(repo, id),
            (Route::Upload(repo, id), &Method::PATCH) => Endpoint::PatchUpload(repo, id),
            (Route::Upload(repo, id), &Method::PUT) => Endpoint::FinishUpload(repo, id),
            (Route::Upload(repo, id), &Method::DELETE) => Endpoint::CancelUpload(repo, id),
            (Route::Referrers(repo, digest), &Method::GET) => Endpoint::Referrers(repo, digest),
            (_, method) => return Err(not_allowed(method)),
        };
        Ok(endpoint)
    }

    /// What the caller needs (Distribution's mapping: reads pull, writes
    /// pull and push, deletes delete; an upload's every step is part of a push).
    pub fn authorization(&self) -> Need {
        const PULL: &[Action] = &[Action::Pull];
        const PUSH: &[Action] = &[Action::Pull, Action::Push];
        const DELETE: &[Action] = &[Action::Delete];
        match self {
            Endpoint::Base => Need::Credential,
            Endpoint::Catalog => Need::Catalog,
            Endpoint::ListTags(repo)
            | Endpoint::GetManifest(repo, _)
            | Endpoint::Referrers(repo, _) => Need::Repository(repo.clone(), PULL),
            Endpoint::GetBlob {
                repo,
                digest,
                download_token,
            } => Need::BlobRead {
                repo: repo.clone(),
                digest: digest.clone(),
                download_token: download_token.clone(),
            },
            Endpoint::PutManifest(repo, _)
            | Endpoint::StartUpload(repo)
            | Endpoint::PutBlob(repo, _)
            | Endpoint::UploadStatus(repo, _)
            | Endpoint::PatchUpload(repo, _)
            | Endpoint::FinishUpload(repo, _)
            | Endpoint::CancelUpload(repo, _) => Need::Repository(repo.clone(), PUSH),
            Endpoint::MountBlob { repo, from, .. } => Need::Mount {
                repo: repo.clone(),
                from: from.clone(),
            },
            Endpoint::DeleteManifest(repo, _) | Endpoint::DeleteBlob(repo, _) => {
                Need::Repository(repo.clone(), DELETE)
            }
        }
    }
}

fn not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!("{method} is not supported here"),
    )
}

fn manifest(
    method: &Method,
    repo: RepoName,
    reference: Option<Reference>,
) -> Result<Endpoint, ApiError> {
    Ok(match *method {
        Method::GET | Method::HEAD => Endpoint::GetManifest(repo, reference),
        Method::PUT => Endpoint::PutManifest(repo, reference),
        Method::DELETE => Endpoint::DeleteManifest(repo, reference),
        _ => return Err(not_allowed(method)),
    })
}

/// `POST …/blobs/uploads/`: a mount when both `mount` and `from` are given,
/// else the whole blob when `digest` is, else a session.
fn start_upload(repo: RepoName, query: &Query) -> Result<Endpoint, ApiError> {
    if let (Some(mount), Some(from)) = (query.get("mount"), query.get("from")) {
        let digest = mount
            .parse()
            .map_err(|e| ApiError::new(Code::DigestInvalid, format!("mount {mount:?}: {e}")))?;
        let from = from
            .parse()
            .map_err(|e| ApiError::new(Code::NameInvalid, format!("from: {e}")))?;
        return Ok(Endpoint::MountBlob { repo, digest, from });
    }
    match query.get("digest") {
        Some(d) => {
            let digest = d
                .parse()
                .map_err(|e| ApiError::new(Code::DigestInvalid, format!("digest {d:?}: {e}")))?;
            Ok(Endpoint::PutBlob(repo, digest))
        }
        None => Ok(Endpoint::StartUpload(repo)),
    }
}

/// Every `/v2/` path (the method is matched by [`Endpoint::parse`]); metrics
/// label requests by it.
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

    /// The distribution-spec endpoint table (end-1 … end-13, referrers,
    /// cancel), with method and query: each row's endpoint and what it needs.
    #[test]
    fn spec_endpoint_table() {
        let id = Uuid::new_v4();
        let d: Digest = D.parse().unwrap();
        let tag = || Some(Reference::Tag("latest".parse().unwrap()));
        let (a, ab) = (repo("a"), repo("a/b"));
        let r =
            |name: &RepoName, actions: &'static [Action]| Need::Repository(name.clone(), actions);
        let pull: &[Action] = &[Action::Pull];
        let push: &[Action] = &[Action::Pull, Action::Push];
        let delete: &[Action] = &[Action::Delete];
        let rows: Vec<(&str, String, Endpoint, Need)> = vec![
            ("GET", "".into(), Endpoint::Base, Need::Credential),
            ("HEAD", "".into(), Endpoint::Base, Need::Credential),
            (
                "GET",
                "_catalog?n=10".into(),
                Endpoint::Catalog,
                Need::Catalog,
            ),
            (
                "GET",
                format!("a/b/blobs/{D}"),
                Endpoint::GetBlob {
                    repo: ab.clone(),
                    digest: d.clone(),
                    download_token: None,
                },
                Need::BlobRead {
                    repo: ab.clone(),
                    digest: d.clone(),
                    download_token: None,
                },
            ),
            (
                "HEAD",
                format!("a/blobs/{D}?download_token=t"),
                Endpoint::GetBlob {
                    repo: a.clone(),
                    digest: d.clone(),
                    download_token: Some("t".into()),
                },
                Need::BlobRead {
                    repo: a.clone(),
                    digest: d.clone(),
                    download_token: Some("t".into()),
                },
            ),
            (
                "GET",
                "a/b/manifests/latest".into(),
                Endpoint::GetManifest(ab.clone(), tag()),
                r(&ab, pull),
            ),
            (
                "HEAD",
                format!("a/manifests/{D}"),
                Endpoint::GetManifest(a.clone(), Some(Reference::Digest(d.clone()))),
                r(&a, pull),
            ),
            (
                "POST",
                "a/blobs/uploads/".into(),
                Endpoint::StartUpload(a.clone()),
                r(&a, push),
            ),
            (
                "POST",
                format!("a/blobs/uploads/?digest={D}"),
                Endpoint::PutBlob(a.clone(), d.clone()),
                r(&a, push),
            ),
            (
                "PATCH",
                format!("a/blobs/uploads/{id}"),
                Endpoint::PatchUpload(a.clone(), id),
                r(&a, push),
            ),
            (
                "PUT",
                format!("a/blobs/uploads/{id}?digest={D}"),
                Endpoint::FinishUpload(a.clone(), id),
                r(&a, push),
            ),
            (
                "PUT",
                "a/b/manifests/latest".into(),
                Endpoint::PutManifest(ab.clone(), tag()),
                r(&ab, push),
            ),
            (
                "GET",
                "a/b/tags/list?n=2&last=x".into(),
                Endpoint::ListTags(ab.clone()),
                r(&ab, pull),
            ),
            (
                "DELETE",
                "a/manifests/latest".into(),
                Endpoint::DeleteManifest(a.clone(), tag()),
                r(&a, delete),
            ),
            (
                "DELETE",
                format!("a/blobs/{D}"),
                Endpoint::DeleteBlob(a.clone(), d.clone()),
                r(&a, delete),
            ),
            (
                "POST",
                format!("a/blobs/uploads/?mount={D}&from=x/y"),
                Endpoint::MountBlob {
                    repo: a.clone(),
                    digest: d.clone(),
                    from: repo("x/y"),
                },
                Need::Mount {
                    repo: a.clone(),
                    from: repo("x/y"),
                },
            ),
            // A mount without its source is an ordinary session.
            (
                "POST",
                format!("a/blobs/uploads?mount={D}"),
                Endpoint::StartUpload(a.clone()),
                r(&a, push),
            ),
            (
                "GET",
                format!("x/y/referrers/{D}?artifactType=t"),
                Endpoint::Referrers(repo("x/y"), d.clone()),
                r(&repo("x/y"), pull),
            ),
            (
                "GET",
                format!("a/blobs/uploads/{id}"),
                Endpoint::UploadStatus(a.clone(), id),
                r(&a, push),
            ),
            // Cancelling an upload is part of pushing.
            (
                "DELETE",
                format!("a/blobs/uploads/{id}"),
                Endpoint::CancelUpload(a.clone(), id),
                r(&a, push),
            ),
            (
                "PUT",
                "a/manifests/-bad".into(),
                Endpoint::PutManifest(a.clone(), None),
                r(&a, push),
            ),
        ];
        for (method, target, want, need) in rows {
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let method: Method = method.parse().unwrap();
            let got = Endpoint::parse(&method, path, &Query::parse(query)).unwrap();
            assert_eq!(got, want, "{method} {target}");
            assert_eq!(got.authorization(), need, "{method} {target}");
        }
    }

    /// A method the path does not take is refused before anyone's rights
    /// are checked; a path error still comes first.
    #[test]
    fn wrong_methods_are_405() {
        let q = Query::default();
        let id = Uuid::new_v4();
        for (method, path) in [
            ("POST", "".to_string()),
            ("DELETE", "_catalog".into()),
            ("PUT", "a/tags/list".into()),
            ("POST", "a/manifests/latest".into()),
            ("PATCH", "a/manifests/-bad".into()),
            ("PUT", format!("a/blobs/{D}")),
            ("GET", "a/blobs/uploads/".into()),
            ("POST", format!("a/blobs/uploads/{id}")),
            ("DELETE", format!("a/referrers/{D}")),
            ("BREW", "a/manifests/latest".into()),
        ] {
            let method: Method = method.parse().unwrap();
            let code = Endpoint::parse(&method, &path, &q).unwrap_err().code;
            assert_eq!(code, Code::MethodNotAllowed, "{method} {path}");
        }
        let code = Endpoint::parse(&Method::PATCH, "UPPER/manifests/x", &q)
            .unwrap_err()
            .code;
        assert_eq!(code, Code::NameInvalid);
        let bad_mount = Query::parse("mount=sha256:xyz&from=a");
        let code = Endpoint::parse(&Method::POST, "b/blobs/uploads/", &bad_mount)
            .unwrap_err()
            .code;
        assert_eq!(code, Code::DigestInvalid);
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
