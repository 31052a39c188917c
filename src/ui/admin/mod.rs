//! The operators' pages under `/ui/admin/`: storage usage, users and their
//! access keys, access tokens, the audit log and garbage collection.
//!
//! Who: operators only, by the test the ECS API's `EcsNeed::Operator` uses
//! (`Auth::admits_ecs`: every action on every repository), and only users
//! signed in with a password: not an access token, whatever its scopes (a
//! leaked token must not mint credentials that outlive it), and nobody in
//! open mode (no sign-in; tokens made then would outlive the mode). Checked once, by the [`Operator`] extractor every handler here
//! takes before anything else (a POST's CSRF form included), so anyone else
//! gets the very answer a missing page gets (or the sign-in form when
//! signing in is the only way on), and nothing is read or changed.
//!
//! Access tokens are managed by operators only. A token records no owner,
//! so a user could not be shown "their" tokens, and a token's scopes must
//! never exceed its creator's grants: an operator's grants are all of them,
//! so for operators the rule holds by construction. Users who want a token
//! ask an operator (or use `wharf token` on the host).
//!
//! Every change goes through `crate::admin` (the functions `wharf user` and
//! `wharf token` use, so the rules are the same) and collections through the
//! registry's `collect_garbage_now` (the lease `wharf gc` and the schedule
//! honour); each is recorded in the audit log there.

pub mod gc;
pub mod log;
pub mod storage;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::get;
use maud::{Markup, html};

use super::Console;
use super::error::UiError;
use super::session::Viewer;
use crate::registry::GcPolicy;
use crate::storage::{AuditStore, CredentialStore};

/// What the operator pages use beyond the registry and auth; cut from the
/// application state by the composition root.
#[derive(Clone)]
pub struct Operators {
    /// The configured collection policy (as `wharf gc` and the schedule use).
    pub gc: GcPolicy,
    pub credentials: Arc<dyn CredentialStore>,
    pub audit_log: Arc<dyn AuditStore>,
    /// Users declared in the configuration, with their groups.
    pub config_users: Vec<(String, Vec<String>)>,
}

/// The operator pages' routes (merged into the console's router, under its
/// headers and CSRF secret).
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Console: FromRef<S>,
{
    Router::new()
        .route(
            "/ui/admin",
            get(|_: Operator| async { axum::response::Redirect::to("/ui/admin/") }),
        )
        .route("/ui/admin/", get(storage::page))
        .route("/ui/admin/storage", get(storage::page))
        .route("/ui/admin/users", get(users::page))
        .route(
            "/ui/admin/keys/{id}/delete",
            get(users::confirm_delete).post(users::delete),
        )
        .route("/ui/admin/tokens", get(tokens::page).post(tokens::create))
        .route(
            "/ui/admin/tokens/{name}/revoke",
            get(tokens::confirm_revoke).post(tokens::revoke),
        )
        .route("/ui/admin/audit", get(log::page))
        .route("/ui/admin/gc", get(gc::page).post(gc::submit))
        .route("/ui/admin/{*rest}", get(not_found).post(not_found))
}

async fn not_found(_: Operator) -> UiError {
    UiError::NotFound
}

/// An operator looking at an operator page; anyone else is refused here,
/// with the page a missing one gets.
pub struct Operator(pub Viewer);

impl<S> FromRequestParts<S> for Operator
where
    S: Send + Sync,
    Console: FromRef<S>,
{
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UiError> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        if viewer.operator {
            Ok(Operator(viewer))
        } else {
            Err(UiError::NotFound)
        }
    }
}

/// The operator pages' tabs.
pub fn tabs(current: &str) -> Markup {
    const TABS: [(&str, &str); 5] = [
        ("/ui/admin/storage", "Storage"),
        ("/ui/admin/users", "Users"),
        ("/ui/admin/tokens", "Access tokens"),
        ("/ui/admin/audit", "Audit log"),
        ("/ui/admin/gc", "Garbage collection"),
    ];
    html! {
        p.crumbs { a href="/ui/" { "Repositories" } " / Admin" }
        nav.toolbar aria-label="Admin" {
            @for (path, label) in TABS {
                @if path == current {
                    strong aria-current="page" { (label) }
                } @else {
                    a href=(path) { (label) }
                }
            }
        }
    }
}

/// A form field, trimmed, refused when longer than `max` bytes.
pub fn field(value: &str, max: usize) -> Result<&str, UiError> {
    let value = value.trim();
    if value.len() > max {
        Err(UiError::BadRequest("a field is too long"))
    } else {
        Ok(value)
    }
}

/// The bounded page size `n` of a list (default 50, 1 to 200).
pub fn page_size(query: &crate::http::Query) -> Result<usize, UiError> {
    match query.get("n") {
        None | Some("") => Ok(50),
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or(UiError::BadRequest("n is a page size from 1 to 200")),
    }
}
