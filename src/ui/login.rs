//! Signing in and out of the console with the users `docker login` knows
//! (and access tokens), checked by the same `Authenticator`: the same
//! throttling and the same bound on concurrent password hashing.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::Console;
use super::error::{UiError, UiResult};
use super::layout::{html as render, page};
use super::session::{
    CSRF_TTL, Cookie, CsrfForm, CsrfSecret, SESSION_TTL, Secure, local_next, random_secret,
    set_cookie,
};
use crate::auth::{LoginError, Mode};
use crate::http::{PeerAddr, Query};

/// `GET /ui/login`: the form.
pub async fn form(
    State(console): State<Console>,
    Extension(CsrfSecret(csrf)): Extension<CsrfSecret>,
    query: Query,
) -> UiResult {
    let next = local_next(query.get("next"));
    if console.auth.mode == Mode::Open {
        return Ok(Redirect::to(&next).into_response());
    }
    Ok(sign_in_page(&csrf, &next, None).into_response())
}

fn sign_in_page(csrf: &str, next: &str, failed: Option<&str>) -> impl IntoResponse {
    render(page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            p.muted { "Use the name and password (or access token) you give " code { "docker login" } "." }
            @if let Some(message) = failed {
                p.warning role="alert" { (message) }
            }
            form.signin method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="username" { "User name" }
                input #username name="username" autocomplete="username" required autofocus;
                label for="password" { "Password or access token" }
                input #password name="password" type="password" autocomplete="current-password" required;
                button.primary type="submit" { "Sign in" }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct SignIn {
    username: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /ui/login`: checks the credential and opens a session bound to it
/// and to this browser's CSRF secret.
pub async fn submit(
    State(console): State<Console>,
    PeerAddr(peer): PeerAddr,
    Extension(CsrfSecret(current)): Extension<CsrfSecret>,
    Extension(Secure(secure)): Extension<Secure>,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<SignIn>,
) -> UiResult {
    let next = local_next(form.next.as_deref());
    let client = console.auth.client_ip(&headers, peer);
    let login = &console.auth.login;
    let signed_in = console
        .auth
        .sign_in(&form.username, &form.password, client, "console")
        .await;
    let authenticated = match signed_in {
        Ok(a) => a,
        Err(LoginError::Invalid) => {
            let page = sign_in_page(&current, &next, Some("Wrong user name or password."));
            return Ok((axum::http::StatusCode::UNAUTHORIZED, page).into_response());
        }
        Err(LoginError::Throttled { retry_after }) => {
            return Err(UiError::Throttled {
                retry_after: retry_after.as_secs().max(1),
            });
        }
        Err(LoginError::Store(e)) => return Err(e.into()),
    };
    let (binding, not_after) = login.refresh_binding(&authenticated.credential).await?;
    // A new CSRF secret for the new session: one planted in the browser
    // before sign-in (by a sibling host, say) is worth nothing after it.
    let csrf = random_secret();
    let token = console
        .auth
        .tokens
        .issue_session(
            &authenticated.principal.subject(),
            binding,
            not_after,
            SESSION_TTL,
            &csrf,
        )
        .map_err(|e| UiError::Fault(crate::http::Fault::Internal(e.to_string())))?;
    tracing::info!(user = %authenticated.principal.subject(), client = %client, "console sign-in");
    let mut response = Redirect::to(&next).into_response();
    let cookies = [
        set_cookie(Cookie::Session, &token, SESSION_TTL.as_secs(), secure),
        set_cookie(Cookie::Csrf, &csrf, CSRF_TTL.as_secs(), secure),
    ];
    for cookie in cookies.into_iter().flatten() {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct SignOut {}

/// `POST /ui/logout`: deletes the session cookie and gives the browser a new
/// CSRF secret, so forms of the old session no longer pass.
pub async fn logout(
    Extension(Secure(secure)): Extension<Secure>,
    CsrfForm(SignOut {}): CsrfForm<SignOut>,
) -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    let headers = response.headers_mut();
    for cookie in [
        set_cookie(Cookie::Session, "", 0, secure),
        set_cookie(Cookie::Csrf, "", 0, secure),
    ]
    .into_iter()
    .flatten()
    {
        headers.append(header::SET_COOKIE, cookie);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
