//! The web console at `/ui/`: server-rendered HTML (maud) over the registry
//! service, same origin as `/v2/`. Every page works without JavaScript; a
//! small script (served from [`assets`]) adds copy buttons, live filtering,
//! keyboard shortcuts and the theme toggle.
//!
//! One request goes: [`headers`] (CSP and friends on every response) →
//! [`session::guard`] (the CSRF secret) → [`session::Viewer`] (who) →
//! [`access::authorize`] (the page's [`access::Need`] on its repository, by
//! `auth`'s grants) → a thin handler that makes one or two service calls →
//! [`layout`]. Errors are [`error::UiError`], mapped to a page in one place.
//! May use `auth`, `registry`, `oci`, `http` and `notifications` (and the
//! store's error type, as the other adapters do); the runner pages
//! ([`runner`]) also `runner` and the balancer's read side, the operator
//! pages ([`admin`]) `admin` and the store's credential and audit areas.
//! No other adapter (not `ecs`: its rules come through `auth` and `runner`).

pub mod access;
pub mod admin;
pub mod assets;
pub mod delete;
pub mod error;
pub mod image;
pub mod layout;
pub mod lifecycle;
pub mod login;
pub mod paging;
pub mod repositories;
pub mod runner;
pub mod session;
pub mod tags;

use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::auth::Auth;
use crate::http::{PeerAddr, Query, RequestId};
use crate::notifications::{Notifier, Origin};
use crate::oci::{Digest, Reference, RepoName};
use crate::registry::Registry;
use access::{Need, authorize};
use error::{UiError, UiResult};
use session::{CsrfForm, Viewer};

/// What the console's handlers share; the composition root cuts it from
/// the application state (`FromRef`).
#[derive(Clone)]
pub struct Console {
    pub registry: Registry,
    pub auth: Arc<Auth>,
    /// Webhook events of console deletes, as `/v2/` sends them.
    pub notifier: Notifier,
    /// The task runner; `None` when it is off (its pages are then missing).
    pub runner: Option<crate::runner::Runner>,
    /// The log streams open now (one set per process).
    pub log_tails: runner::LogTails,
    /// What the operator pages use ([`admin`]).
    pub operators: admin::Operators,
}

/// The console's routes, with their headers and CSRF secret.
pub fn router<S>(state: S) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Console: FromRef<S>,
{
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(repositories::page))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/static/{version}/{file}", get(assets::serve))
        .route(
            "/ui/r/{*rest}",
            get(repository_page).post(repository_action),
        )
        .merge(runner::routes())
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .merge(admin::routes())
        // Route layers: they must not reach the merged application's
        // fallback (a `/favicon.ico` 404 would set a console cookie).
        .route_layer(axum::middleware::from_fn_with_state(
            Console::from_ref(&state),
            session::guard,
        ))
        .route_layer(axum::middleware::map_response(headers))
}

/// The content security policy: nothing inline, nothing from elsewhere,
/// never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every console response; pages are never cached
/// (they show what one viewer may see), assets set their own caching.
async fn headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn not_found() -> UiError {
    UiError::NotFound
}

/// A page under `/ui/r/`: repository names hold slashes, so the path is
/// parsed here; `/-/` cannot occur in a name (a component never is `-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryPage {
    /// `/ui/r/{repo}`: the tags.
    Tags(RepoName),
    /// `/ui/r/{repo}/-/image/{reference}`.
    Image(RepoName, Reference),
    /// `/ui/r/{repo}/-/delete/{reference}`: confirmation (GET), deletion (POST).
    Delete(RepoName, Reference),
    /// `/ui/r/{repo}/-/lifecycle`: the lifecycle policy, its preview and
    /// tag immutability (GET); their changes (POST).
    Lifecycle(RepoName),
}

/// A tag or a digest, as a path segment gives it.
pub fn parse_reference(text: &str) -> Option<Reference> {
    if text.contains(':') {
        Digest::from_str(text).ok().map(Reference::Digest)
    } else {
        text.parse().ok().map(Reference::Tag)
    }
}

impl RepositoryPage {
    pub fn parse(rest: &str) -> Option<RepositoryPage> {
        let Some((repo, tail)) = rest.split_once("/-/") else {
            return rest.parse().ok().map(RepositoryPage::Tags);
        };
        let repo: RepoName = repo.parse().ok()?;
        if tail == "lifecycle" {
            return Some(RepositoryPage::Lifecycle(repo));
        }
        let (kind, reference) = tail.split_once('/')?;
        let reference = parse_reference(reference)?;
        match kind {
            "image" => Some(RepositoryPage::Image(repo, reference)),
            "delete" => Some(RepositoryPage::Delete(repo, reference)),
            _ => None,
        }
    }

    pub fn repo(&self) -> &RepoName {
        match self {
            RepositoryPage::Tags(r)
            | RepositoryPage::Image(r, _)
            | RepositoryPage::Delete(r, _)
            | RepositoryPage::Lifecycle(r) => r,
        }
    }

    /// What the page needs of the viewer: the console offers deleting only
    /// to those who may, so even the confirmation needs delete. A lifecycle
    /// POST needs what its action does ([`lifecycle::Action::need`]).
    pub fn need(&self) -> Need {
        match self {
            RepositoryPage::Tags(_) | RepositoryPage::Image(..) => Need::Pull,
            // As GetLifecyclePolicy: a repository policy may deny it to a puller.
            RepositoryPage::Lifecycle(_) => Need::Ecr(access::GET_LIFECYCLE_POLICY),
            RepositoryPage::Delete(..) => Need::Delete,
        }
    }
}

/// The console path of a repository page.
pub fn repo_path(repo: &RepoName) -> String {
    format!("/ui/r/{repo}")
}

pub fn image_path(repo: &RepoName, reference: &Reference) -> String {
    format!("/ui/r/{repo}/-/image/{reference}")
}

pub fn delete_path(repo: &RepoName, reference: &Reference) -> String {
    format!("/ui/r/{repo}/-/delete/{reference}")
}

pub fn lifecycle_path(repo: &RepoName) -> String {
    format!("/ui/r/{repo}/-/lifecycle")
}

async fn repository_page(
    State(console): State<Console>,
    viewer: Viewer,
    PeerAddr(peer): PeerAddr,
    headers: axum::http::HeaderMap,
    Path(rest): Path<String>,
    query: Query,
) -> UiResult {
    let page = RepositoryPage::parse(&rest).ok_or(UiError::NotFound)?;
    let rights = authorize(&console, &viewer.principal, page.repo(), page.need()).await?;
    match page {
        RepositoryPage::Tags(repo) => tags::page(&console, &viewer, rights, &repo, &query).await,
        RepositoryPage::Image(repo, reference) => {
            let host = console.auth.base_url(&headers, peer);
            image::page(&console, &viewer, rights, &repo, &reference, &host).await
        }
        RepositoryPage::Delete(repo, reference) => {
            delete::confirm(&console, &viewer, &repo, &reference).await
        }
        RepositoryPage::Lifecycle(repo) => lifecycle::page(&console, &viewer, &repo, &query).await,
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "an axum handler: one extractor each"
)]
async fn repository_action(
    State(console): State<Console>,
    viewer: Viewer,
    PeerAddr(peer): PeerAddr,
    request_id: Option<axum::Extension<RequestId>>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
    Path(rest): Path<String>,
    CsrfForm(form): CsrfForm<Vec<(String, String)>>,
) -> UiResult {
    let page = RepositoryPage::parse(&rest).ok_or(UiError::NotFound)?;
    let (repo, reference) = match &page {
        RepositoryPage::Delete(repo, reference) => (repo, reference),
        RepositoryPage::Lifecycle(repo) => {
            let action = lifecycle::Action::parse(&form)?;
            authorize(&console, &viewer.principal, repo, action.need()).await?;
            return lifecycle::submit(&console, &viewer, repo, action).await;
        }
        _ => return Err(UiError::NotFound),
    };
    authorize(&console, &viewer.principal, repo, page.need()).await?;
    let form = delete::DeleteForm::from_pairs(&form);
    let (response, notice) = delete::submit(&console, repo, reference, form).await?;
    let origin = Origin::of_request(
        request_id.map(|id| id.0.0.clone()),
        &headers,
        &method,
        console.auth.client_ip(&headers, peer),
        viewer.principal.subject(),
    );
    console.notifier.notify(&[notice], &origin);
    Ok(response)
}

/// Shorthand for handlers: a rendered page with status 200.
pub fn ok(markup: maud::Markup) -> UiResult {
    Ok(layout::html(markup).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_pages_parse() {
        let repo = |s: &str| s.parse::<RepoName>().unwrap();
        assert_eq!(
            RepositoryPage::parse("team/app"),
            Some(RepositoryPage::Tags(repo("team/app")))
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            RepositoryPage::parse(&format!("team/app/-/image/{digest}")),
            Some(RepositoryPage::Image(
                repo("team/app"),
                Reference::Digest(digest.parse().unwrap())
            ))
        );
        assert_eq!(
            RepositoryPage::parse("team/app/-/lifecycle"),
            Some(RepositoryPage::Lifecycle(repo("team/app")))
        );
        assert_eq!(
            RepositoryPage::parse("a/-/delete/v1.0"),
            Some(RepositoryPage::Delete(
                repo("a"),
                Reference::Tag("v1.0".parse().unwrap())
            ))
        );
        for bad in [
            "",
            "A",
            "a/-/image/",
            "a/-/other/v1",
            "a/-/lifecycle/x",
            "a/-/image/sha256:xyz",
            "a/-/image/bad tag",
            "../etc",
        ] {
            assert_eq!(RepositoryPage::parse(bad), None, "{bad}");
        }
    }
}
