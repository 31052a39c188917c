//! `GET /ui/admin/users`: the users (declared in the configuration, and in
//! the database with `wharf user add`) with their groups and access keys;
//! deleting an access key behind a confirmation page.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use maud::html;
use serde::Deserialize;

use super::{Operator, tabs};
use crate::admin::{self, AdminError, By};
use crate::http::Query;
use crate::storage::AccessKeyRecord;
use crate::ui::error::{UiError, UiResult};
use crate::ui::layout::{page as shell, time};
use crate::ui::session::CsrfForm;
use crate::ui::{Console, ok};

/// The longest access key id accepted in a path (ours are 20 characters).
const MAX_KEY_ID: usize = 128;

/// An admin function's error as the console shows it: what the operator
/// typed wrong is said, a store failure is not.
pub fn admin_error(e: AdminError) -> UiError {
    match e {
        AdminError::NotFound(..) => UiError::NotFound,
        AdminError::Invalid(_) => UiError::BadRequest("the form is not valid"),
        AdminError::Store(e) => e.into(),
    }
}

fn key_path(id: &str) -> String {
    format!("/ui/admin/keys/{}/delete", crate::ui::session::encode(id))
}

pub async fn page(
    State(console): State<Console>,
    Operator(viewer): Operator,
    query: Query,
) -> UiResult {
    let ops = &console.operators;
    let mut users: BTreeMap<String, (Vec<String>, &'static str)> = BTreeMap::new();
    for (name, groups) in &ops.config_users {
        users.insert(name.clone(), (groups.clone(), "configuration"));
    }
    for u in ops.credentials.users().await? {
        users
            .entry(u.name.clone())
            .or_insert((u.groups.clone(), "database"));
    }
    let mut keys: BTreeMap<String, Vec<AccessKeyRecord>> = BTreeMap::new();
    for k in ops.credentials.access_keys(None).await? {
        keys.entry(k.user.clone()).or_default().push(k);
    }
    let deleted = query.get("done") == Some("deleted");
    let body = html! {
        (tabs("/ui/admin/users"))
        h1 { "Users" }
        @if deleted { p.notice role="status" { "Access key deleted." } }
        p.muted { "Add and remove users with " code { "wharf user add NAME" } " and " code { "wharf user remove NAME" } " on the server's host, or in the configuration's " code { "[[auth.users]]" } "." }
        @if users.is_empty() {
            p.muted { "No users." }
        } @else {
            table.rows #users {
                thead { tr { th scope="col" { "User" } th scope="col" { "Groups" } th scope="col" { "Declared in" } th scope="col" { "Access keys" } } }
                tbody {
                    @for (name, (groups, source)) in &users {
                        tr {
                            td { (name) }
                            td { (groups.join(", ")) }
                            td { (source) }
                            td {
                                @match keys.get(name) {
                                    None => { span.muted { "none" } }
                                    Some(list) => {
                                        ul {
                                            @for k in list {
                                                li {
                                                    code { (k.id) } " · created " (time(k.created_at_ms)) " "
                                                    a href=(key_path(&k.id)) { "Delete…" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @let orphans: Vec<&AccessKeyRecord> = keys.iter().filter(|(u, _)| !users.contains_key(*u)).flat_map(|(_, l)| l).collect();
        @if !orphans.is_empty() {
            h2 { "Access keys of users no longer declared" }
            ul {
                @for k in orphans {
                    li { code { (k.id) } " (" (k.user) ") " a href=(key_path(&k.id)) { "Delete…" } }
                }
            }
        }
    };
    ok(shell("Users", Some(&viewer), body))
}

fn key_id(id: &str) -> UiResult<&str> {
    if id.is_empty() || id.len() > MAX_KEY_ID {
        return Err(UiError::NotFound);
    }
    Ok(id)
}

/// `GET /ui/admin/keys/{id}/delete`: what deleting the key does.
pub async fn confirm_delete(
    State(console): State<Console>,
    Operator(viewer): Operator,
    Path(id): Path<String>,
) -> UiResult {
    let id = key_id(&id)?;
    let key = console
        .operators
        .credentials
        .access_key(id)
        .await?
        .ok_or(UiError::NotFound)?;
    let body = html! {
        (tabs("/ui/admin/users"))
        h1 { "Delete access key " code { (key.id) } "?" }
        p { "User " strong { (key.user) } ", created " (time(key.created_at_ms)) ". Requests signed with it (AWS SDKs, the CLI, agents) fail from now on; this cannot be undone." }
        form method="post" action=(key_path(&key.id)) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            button.danger type="submit" { "Delete access key" }
        }
        p { a href="/ui/admin/users" { "Cancel" } }
    };
    ok(shell("Delete access key", Some(&viewer), body))
}

#[derive(Deserialize)]
pub struct Confirmed {}

/// `POST /ui/admin/keys/{id}/delete`.
pub async fn delete(
    State(console): State<Console>,
    Operator(viewer): Operator,
    Path(id): Path<String>,
    CsrfForm(Confirmed {}): CsrfForm<Confirmed>,
) -> UiResult {
    let id = key_id(&id)?;
    let actor = viewer.principal.subject();
    let by = By {
        audit: &console.auth.audit,
        actor: &actor,
    };
    admin::revoke_access_key(console.operators.credentials.as_ref(), id, by)
        .await
        .map_err(admin_error)?;
    Ok(Redirect::to("/ui/admin/users?done=deleted").into_response())
}
