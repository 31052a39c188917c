//! `/ui/admin/tokens`: access tokens (machine credentials limited to their
//! scopes): the list, creation with scopes and an expiry (the secret is
//! shown once, on the response to the creating POST, and never again: only
//! its hash is stored), and revocation behind a confirmation page. Through
//! `crate::admin`, as `wharf token` does.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;

use super::users::admin_error;
use super::{Operator, field, tabs};
use crate::admin::{self, AdminError, By};
use crate::http::Query;
use crate::storage::AccessTokenRecord;
use crate::ui::error::{UiError, UiResult};
use crate::ui::layout::{copy_button, html as render, page as shell, time};
use crate::ui::session::{CsrfForm, Viewer, encode};
use crate::ui::{Console, ok};

/// The most scopes one token may carry.
pub const MAX_SCOPES: usize = 20;
/// The longest scope accepted (`repository:NAME:ACTIONS`; names ≤ 255).
const MAX_SCOPE: usize = 300;
/// The expiries offered; `admin::parse_duration` reads each.
const EXPIRIES: [(&str, &str); 6] = [
    ("1d", "1 day"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("90d", "90 days"),
    ("365d", "1 year"),
    ("never", "Never"),
];

fn revoke_path(name: &str) -> String {
    format!("/ui/admin/tokens/{}/revoke", encode(name))
}

fn list(viewer: &Viewer, tokens: &[AccessTokenRecord], message: Option<&str>) -> Markup {
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    html! {
        (tabs("/ui/admin/tokens"))
        h1 { "Access tokens" }
        @if let Some(m) = message { p.warning role="alert" { (m) } }
        @if tokens.is_empty() {
            p.muted { "No access tokens." }
        } @else {
            table.rows #tokens {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Scopes" } th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "Actions" } } }
                tbody {
                    @for t in tokens {
                        tr {
                            td { (t.name) }
                            td { @for s in &t.scopes { code { (s) } " " } }
                            td { (time(t.created_at_ms)) }
                            td {
                                @match t.expires_at_ms {
                                    None => { "never" }
                                    Some(at) => { (time(at)) @if at <= now { " " span.badge { "expired" } } }
                                }
                            }
                            td { a href=(revoke_path(&t.name)) { "Revoke…" } }
                        }
                    }
                }
            }
            p.muted { "Last use is not recorded; sign-ins with a token appear in the audit log." }
        }
        h2 { "Create an access token" }
        form.signin method="post" action="/ui/admin/tokens" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            label for="name" { "Name" }
            input #name name="name" required maxlength="64" pattern="[A-Za-z0-9._@\\-]{1,64}";
            label for="scopes" { "Scopes, one per line (at most " (MAX_SCOPES) ")" }
            textarea #scopes name="scopes" rows="4" required placeholder="repository:team/app:pull,push" {}
            label for="expires" { "Expires after" }
            select #expires name="expires" {
                @for (value, label) in EXPIRIES {
                    option value=(value) selected[value == "90d"] { (label) }
                }
            }
            button.primary type="submit" { "Create token" }
        }
        p.muted { "A scope is " code { "repository:NAME:ACTIONS" } " (" code { "*" } " in a name matches anything; actions " code { "pull" } ", " code { "push" } ", " code { "delete" } " or " code { "*" } ")." }
    }
}

async fn tokens(console: &Console) -> UiResult<Vec<AccessTokenRecord>> {
    let mut tokens = console.operators.credentials.access_tokens().await?;
    tokens.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tokens)
}

pub async fn page(
    State(console): State<Console>,
    Operator(viewer): Operator,
    query: Query,
) -> UiResult {
    let tokens = tokens(&console).await?;
    let mut body = list(&viewer, &tokens, None);
    if query.get("done") == Some("revoked") {
        body = html! { p.notice role="status" { "Access token revoked." } (body) };
    }
    ok(shell("Access tokens", Some(&viewer), body))
}

#[derive(Deserialize)]
pub struct NewToken {
    name: String,
    scopes: String,
    expires: String,
}

/// The scopes typed, one per line (or separated by spaces), bounded.
fn scopes(text: &str) -> Result<Vec<String>, &'static str> {
    let scopes: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if scopes.len() > MAX_SCOPES {
        return Err("Too many scopes: at most 20.");
    }
    if scopes.iter().any(|s| s.len() > MAX_SCOPE) {
        return Err("A scope is too long.");
    }
    Ok(scopes)
}

/// `POST /ui/admin/tokens`: creates the token and shows its secret, once.
pub async fn create(
    State(console): State<Console>,
    Operator(viewer): Operator,
    CsrfForm(form): CsrfForm<NewToken>,
) -> UiResult {
    let name = field(&form.name, 64)?;
    let expires = field(&form.expires, 16)?;
    let refuse = |message: String, tokens: Vec<AccessTokenRecord>| {
        let page = shell(
            "Access tokens",
            Some(&viewer),
            list(&viewer, &tokens, Some(&message)),
        );
        Ok((StatusCode::BAD_REQUEST, render(page)).into_response())
    };
    let scopes = match scopes(&form.scopes) {
        Ok(s) => s,
        Err(why) => return refuse(why.into(), tokens(&console).await?),
    };
    let actor = viewer.principal.subject();
    let by = By {
        audit: &console.auth.audit,
        actor: &actor,
    };
    let created = match admin::parse_duration(expires) {
        Ok(expiry) => {
            admin::create_token(
                console.operators.credentials.as_ref(),
                name,
                &scopes,
                expiry,
                by,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let secret = match created {
        Ok(secret) => secret,
        // What was typed wrong is the operator's own input: say it.
        Err(AdminError::Invalid(message)) => {
            return refuse(message, tokens(&console).await?);
        }
        Err(e) => return Err(admin_error(e)),
    };
    let body = html! {
        (tabs("/ui/admin/tokens"))
        h1 { "Access token " code { (name) } " created" }
        p.warning role="alert" { "Copy the secret now: it is shown only this once and cannot be shown again." }
        div.cmdrow {
            pre.cmd #secret { code { (secret) } }
            (copy_button(&secret, "Copy the secret"))
        }
        p { "Use it as the password, with any user name:" }
        pre.cmd { code { "docker login -u " (name) " --password-stdin HOST" } }
        p { a href="/ui/admin/tokens" { "Back to access tokens" } }
    };
    ok(shell("Access token created", Some(&viewer), body))
}

fn token_name(name: &str) -> UiResult<&str> {
    if name.is_empty() || name.len() > 64 {
        return Err(UiError::NotFound);
    }
    Ok(name)
}

/// `GET /ui/admin/tokens/{name}/revoke`: what revoking does.
pub async fn confirm_revoke(
    State(console): State<Console>,
    Operator(viewer): Operator,
    Path(name): Path<String>,
) -> UiResult {
    let name = token_name(&name)?;
    let token = tokens(&console)
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or(UiError::NotFound)?;
    let body = html! {
        (tabs("/ui/admin/tokens"))
        h1 { "Revoke access token " code { (token.name) } "?" }
        p { "Scopes: " @for s in &token.scopes { code { (s) } " " } }
        p { "Clients using it (CI jobs, deploy scripts, console sessions opened with it) are refused from now on; this cannot be undone." }
        form method="post" action=(revoke_path(&token.name)) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            button.danger type="submit" { "Revoke" }
        }
        p { a href="/ui/admin/tokens" { "Cancel" } }
    };
    ok(shell("Revoke access token", Some(&viewer), body))
}

#[derive(Deserialize)]
pub struct Confirmed {}

/// `POST /ui/admin/tokens/{name}/revoke`.
pub async fn revoke(
    State(console): State<Console>,
    Operator(viewer): Operator,
    Path(name): Path<String>,
    CsrfForm(Confirmed {}): CsrfForm<Confirmed>,
) -> UiResult {
    let name = token_name(&name)?;
    let actor = viewer.principal.subject();
    let by = By {
        audit: &console.auth.audit,
        actor: &actor,
    };
    admin::revoke_token(console.operators.credentials.as_ref(), name, by)
        .await
        .map_err(admin_error)?;
    Ok(Redirect::to("/ui/admin/tokens?done=revoked").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_bounded() {
        assert_eq!(
            scopes("repository:a:pull\n repository:b:push ").unwrap(),
            ["repository:a:pull", "repository:b:push"]
        );
        let many = "repository:a:pull\n".repeat(MAX_SCOPES + 1);
        assert!(scopes(&many).is_err());
        assert!(scopes(&"x".repeat(MAX_SCOPE + 1)).is_err());
    }
}
