//! Who is looking, and proof that a form came from our own page.
//!
//! Sessions are stateless: the cookie holds a session token signed with the
//! registry's token key (ES256, the key every replica shares), bound like a
//! refresh token to the credential it was opened with. So any replica
//! accepts it, and a new password, a removed user or a revoked access token
//! ends it at once; otherwise it ends at its expiry ([`SESSION_TTL`]).
//! Signing out deletes the cookie; a copy taken before stays valid until it
//! expires (there is no server-side list to strike it from).
//!
//! CSRF: every browser gets a random secret in an HttpOnly, SameSite=Lax
//! cookie ([`Cookie::Csrf`]), replaced at sign-in; every state-changing form
//! carries it back in a hidden field, and a session is bound to the secret
//! it was opened with. The secret's cookie is Lax, not Strict like the
//! session's, so that a link from another site (a top-level GET) carries it
//! and the console never mistakes the browser for a new one and overwrites
//! the secret, which would end the session: any site could sign users out
//! with a link. Cross-site POSTs still carry neither cookie (Lax), are
//! refused on `Sec-Fetch-Site`, and cannot know the secret (double submit).
//! Nor is the secret issued to a cross-site request other than a top-level
//! GET (which would have carried the Lax cookie had there been one), or on
//! the assets under `/ui/static/`, which are cached publicly.
//! [`CsrfForm`] checks all of it in one place, for every POST.
//!
//! Over HTTPS both cookies are `__Host-` cookies (Secure, `Path=/`, no
//! domain): no sibling subdomain and no plain-HTTP page can plant a CSRF
//! secret of its own. Over plain HTTP the prefix is not allowed, and the
//! cookies are scoped to `/ui` instead.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::Console;
use super::error::UiError;
use super::runner::access::may_see_runner;
use crate::auth::{EcsNeed, Mode, Principal, SessionClaims};
use crate::http::PeerAddr;

/// The console's two cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookie {
    Session,
    Csrf,
}

impl Cookie {
    /// Its name: `__Host-` prefixed when the browser uses HTTPS.
    pub fn name(self, secure: bool) -> &'static str {
        match (self, secure) {
            (Cookie::Session, false) => "wharf_session",
            (Cookie::Csrf, false) => "wharf_csrf",
            (Cookie::Session, true) => "__Host-wharf_session",
            (Cookie::Csrf, true) => "__Host-wharf_csrf",
        }
    }
}
/// How long a browser keeps its CSRF secret.
pub const CSRF_TTL: Duration = Duration::from_secs(400 * 24 * 3600);
/// How long a session lasts at most.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The largest form body read: room for a lifecycle policy at ECR's 30 KiB
/// cap, percent-encoded.
const MAX_FORM_BYTES: usize = 128 * 1024;

/// This request's CSRF secret (from its cookie, or new), set by [`guard`].
#[derive(Debug, Clone)]
pub struct CsrfSecret(pub String);

/// Percent-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for the console; `max_age` 0 deletes it. The CSRF
/// secret's cookie is `SameSite=Lax`, the session's `Strict` (see the module
/// documentation for why).
pub fn set_cookie(kind: Cookie, value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let name = kind.name(secure);
    // `__Host-` cookies must be Secure with `Path=/`.
    let (path, secure) = if secure {
        ("/", "; Secure")
    } else {
        ("/ui", "")
    };
    let same_site = if kind == Cookie::Csrf {
        "Lax"
    } else {
        "Strict"
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    ))
    .ok()
}

/// 32 random bytes, URL-safe base64.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Whether a request that came without a CSRF cookie may be given one: not
/// for the public assets, and from another site only for a top-level GET
/// navigation, which carries the Lax cookie when the browser has one (so a
/// cross-site request can never replace the secret of a signed-in browser).
fn may_issue(request: &Request) -> bool {
    if request.uri().path().starts_with("/ui/static/") {
        return false;
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    match header("sec-fetch-site").as_deref() {
        None | Some("same-origin") | Some("none") => true,
        Some(_) => {
            request.method() == Method::GET
                && header("sec-fetch-mode").as_deref() == Some("navigate")
        }
    }
}

/// Middleware: gives every console request a CSRF secret, setting the
/// cookie when the browser has none (or a malformed one) and [`may_issue`]
/// allows it (otherwise the secret serves this response only), and notes
/// whether the browser reached us over HTTPS (cookies are then `Secure`).
pub async fn guard(
    State(console): State<Console>,
    PeerAddr(peer): PeerAddr,
    mut request: Request,
    next: Next,
) -> Response {
    let secure = console
        .auth
        .base_url(request.headers(), peer)
        .starts_with("https://");
    request.extensions_mut().insert(Secure(secure));
    let existing = cookie(request.headers(), Cookie::Csrf.name(secure))
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string);
    let fresh = existing.is_none() && may_issue(&request);
    let secret = existing.unwrap_or_else(random_secret);
    request.extensions_mut().insert(CsrfSecret(secret.clone()));
    let mut response = next.run(request).await;
    if fresh && let Some(v) = set_cookie(Cookie::Csrf, &secret, CSRF_TTL.as_secs(), secure) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// Whether the browser reached us over HTTPS (set by [`guard`]).
#[derive(Debug, Clone, Copy)]
pub struct Secure(pub bool);

/// Who is looking at a console page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub principal: Principal,
    /// The signed-in name; `None` in open mode or for an anonymous visitor.
    pub name: Option<String>,
    /// The CSRF token this viewer's forms carry.
    pub csrf: String,
    /// Whether sign-in exists at all (not open mode).
    pub enforced: bool,
    /// Whether the viewer may see the runner pages (the "Runner" link).
    pub runner: bool,
    /// Whether the viewer may use the operator pages (`ui::admin`).
    pub operator: bool,
}

/// The session's claims when the cookie holds a valid one bound to `csrf`.
fn session(
    console: &Console,
    headers: &HeaderMap,
    csrf: &str,
    secure: bool,
) -> Option<SessionClaims> {
    let token = cookie(headers, Cookie::Session.name(secure))?;
    let claims = console.auth.tokens.verify_session(token).ok()?;
    same(&claims.csrf, csrf).then_some(claims)
}

impl<S> FromRequestParts<S> for Viewer
where
    S: Send + Sync,
    Console: FromRef<S>,
{
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UiError> {
        let console = Console::from_ref(state);
        let csrf = parts
            .extensions
            .get::<CsrfSecret>()
            .map(|c| c.0.clone())
            .ok_or(UiError::Csrf)?;
        if console.auth.mode == Mode::Open {
            return Ok(Viewer {
                runner: may_see_runner(
                    &console.auth,
                    console.runner.as_ref(),
                    &Principal::Anonymous,
                ),
                principal: Principal::Anonymous,
                name: None,
                csrf,
                enforced: false,
                // Open mode has no sign-in: nobody may mint credentials or
                // delete keys that would outlive it.
                operator: false,
            });
        }
        let secure = parts.extensions.get::<Secure>().is_some_and(|s| s.0);
        if let Some(claims) = session(&console, &parts.headers, &csrf, secure) {
            match console.auth.login.refresh(&claims.refresh_claims()).await {
                Ok(principal) => {
                    return Ok(Viewer {
                        // A user, never a token: a token with every scope
                        // must not mint credentials that outlive it.
                        operator: matches!(principal, Principal::User { .. })
                            && console.auth.admits_ecs(&principal, EcsNeed::Operator),
                        name: Some(principal.subject()),
                        runner: may_see_runner(&console.auth, console.runner.as_ref(), &principal),
                        principal,
                        csrf,
                        enforced: true,
                    });
                }
                Err(crate::auth::LoginError::Store(e)) => return Err(e.into()),
                // The credential is gone or changed: as if signed out.
                Err(_) => {}
            }
        }
        // Without a session a visitor sees what anonymous pulls may see; when
        // those see nothing, the sign-in form is the only useful page.
        if console.auth.policy.anonymous_pull.is_empty() {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .filter(|_| parts.method == Method::GET)
                .unwrap_or_else(|| "/ui/".into());
            return Err(UiError::SignIn { next });
        }
        Ok(Viewer {
            principal: Principal::Anonymous,
            name: None,
            csrf,
            enforced: true,
            runner: false,
            operator: false,
        })
    }
}

/// A POSTed form of `T`, admitted only with the right CSRF token in its
/// `csrf` field; the one CSRF check. Bodies over 128 KiB are refused.
pub struct CsrfForm<T>(pub T);

impl<S, T> FromRequest<S> for CsrfForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = UiError;

    async fn from_request(request: Request<Body>, _: &S) -> Result<Self, UiError> {
        let secret = request
            .extensions()
            .get::<CsrfSecret>()
            .map(|c| c.0.clone())
            .ok_or(UiError::Csrf)?;
        // Browsers say where a request comes from; another site's is refused
        // before the body is read (SameSite already keeps our cookies off it).
        let site = request
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok());
        if site.is_some_and(|s| s != "same-origin" && s != "none") {
            return Err(UiError::Csrf);
        }
        let bytes = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| UiError::BadRequest("the form is too large"))?;
        let sent = form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if !same(&sent, &secret) {
            return Err(UiError::Csrf);
        }
        serde_urlencoded::from_bytes(&bytes)
            .map(CsrfForm)
            .map_err(|_| UiError::BadRequest("the form is not valid"))
    }
}

/// Where sign-in may send the browser afterwards: a console path of ours,
/// never another origin (`//host`, `/\host`), anything outside `/ui/`, nor a
/// `.` or `..` segment (plain or percent-encoded) that would leave it.
pub fn local_next(next: Option<&str>) -> String {
    let dotted = |n: &str| {
        let path = n.split(['?', '#']).next().unwrap_or_default();
        path.split('/').any(|segment| {
            let segment = segment.to_ascii_lowercase().replace("%2e", ".");
            segment == "." || segment == ".."
        })
    };
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && n.len() <= 2048
                && !n.contains('\\')
                && !n.contains("//")
                && !dotted(n)
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => "/ui/".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_local() {
        assert_eq!(
            local_next(Some("/ui/r/app?sort=name")),
            "/ui/r/app?sort=name"
        );
        for bad in [
            None,
            Some("https://evil.example/"),
            Some("//evil.example/ui/"),
            Some("/ui//evil.example"),
            Some("/ui/\\evil"),
            Some("/v2/"),
            Some("/ui/\nx"),
            Some("/ui/../v2/"),
            Some("/ui/./x"),
            Some("/ui/r/%2e%2E/x"),
            Some("/ui/.."),
        ] {
            assert_eq!(local_next(bad), "/ui/", "{bad:?}");
        }
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; wharf_csrf=xyz; b=2"),
        );
        assert_eq!(cookie(&headers, Cookie::Csrf.name(false)), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
