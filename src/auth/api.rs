//! The token endpoint (`/token`): GET with HTTP Basic (Docker token spec,
//! `token.md`) and POST with the OAuth2 form (`oauth.md`).

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{
    Access, Auth, Authenticated, LoginError, Principal, Scope, decode_basic, strip_scheme,
};
use crate::body::{BodyLimits, SmallForm};
use crate::http::{Fault, PeerAddr, Query};
use crate::storage::MetadataError;

/// `/token`, GET and POST.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Auth>: FromRef<S>,
    BodyLimits: FromRef<S>,
{
    Router::new().route("/token", get(get_token).post(post_token))
}

/// The largest OAuth2 form accepted: credentials, a refresh token and scopes
/// fit many times over, and the form is read before anyone is known.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Failures of the token endpoint, mapped to a status and OCI-style body in one place.
#[derive(Debug)]
enum EndpointError {
    BadRequest(String),
    /// Bad credentials: 401 with a Basic challenge, as clients expect from a token server.
    Unauthorized(String),
    /// The credential store failed or does not answer now.
    Fault(Fault),
    /// Too many login attempts now: 429 with `Retry-After` (seconds).
    Throttled(u64),
}

impl From<MetadataError> for EndpointError {
    fn from(e: MetadataError) -> Self {
        EndpointError::Fault(Fault::classify(e.is_unavailable(), e))
    }
}

impl IntoResponse for EndpointError {
    fn into_response(self) -> Response {
        let (status, code, message) = match &self {
            EndpointError::BadRequest(m) => (StatusCode::BAD_REQUEST, "UNSUPPORTED", m.as_str()),
            EndpointError::Unauthorized(m) => {
                (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", m.as_str())
            }
            EndpointError::Fault(fault @ Fault::Internal(_)) => {
                (fault.status(), "UNKNOWN", fault.public_message())
            }
            EndpointError::Fault(fault @ Fault::Unavailable(_)) => {
                (fault.status(), "UNAVAILABLE", fault.public_message())
            }
            EndpointError::Throttled(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                "too many login attempts; retry later",
            ),
        };
        let mut response = (
            status,
            Json(json!({ "errors": [{ "code": code, "message": message }] })),
        )
            .into_response();
        match self {
            EndpointError::Unauthorized(_) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Basic realm=\"wharf\""),
                );
            }
            EndpointError::Fault(fault) => fault.mark(&mut response),
            EndpointError::Throttled(seconds) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            }
            EndpointError::BadRequest(_) => {}
        }
        response
    }
}

impl From<LoginError> for EndpointError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Invalid => {
                EndpointError::Unauthorized("invalid username or password".into())
            }
            LoginError::Throttled { retry_after } => {
                EndpointError::Throttled(retry_after.as_secs().max(1))
            }
            LoginError::Store(e) => e.into(),
        }
    }
}

fn parse_scopes<'a>(scopes: impl Iterator<Item = &'a str>) -> Result<Vec<Scope>, EndpointError> {
    scopes
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Scope>()
                .map_err(|e| EndpointError::BadRequest(e.to_string()))
        })
        .collect()
}

fn check_service(auth: &Auth, service: Option<&str>) -> Result<(), EndpointError> {
    match service {
        Some(s) if !s.is_empty() && s != auth.tokens.service => {
            Err(EndpointError::BadRequest(format!("unknown service {s:?}")))
        }
        _ => Ok(()),
    }
}

/// Issues the token response for `principal`, granting what it may of `asked`.
async fn respond(
    auth: &Auth,
    principal: &Principal,
    asked: &[Scope],
    refresh: Option<String>,
    oauth: bool,
) -> Result<Response, EndpointError> {
    let granted: Vec<Access> = auth.grant(principal, asked).await?;
    let scope_text = granted
        .iter()
        .map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
        .collect::<Vec<_>>()
        .join(" ");
    let issued = auth
        .tokens
        .issue(&principal.subject(), granted)
        .map_err(|e| EndpointError::Fault(Fault::Internal(e.to_string())))?;
    let issued_at = time::OffsetDateTime::from(issued.issued_at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut body = json!({
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued_at,
    });
    if oauth {
        body["scope"] = scope_text.into();
    }
    if let Some(refresh) = refresh {
        body["refresh_token"] = refresh.into();
    }
    Ok(Json(body).into_response())
}

/// A refresh token for a login, bound to the credential it proved and never
/// outliving it.
async fn refresh_for(auth: &Auth, login: &Authenticated) -> Result<String, EndpointError> {
    let (binding, not_after) = auth.login.refresh_binding(&login.credential).await?;
    auth.tokens
        .issue_refresh(&login.principal.subject(), binding, not_after)
        .map_err(|e| EndpointError::Fault(Fault::Internal(e.to_string())))
}

/// GET /token?service=&scope=&account=&offline_token=&client_id= with optional HTTP Basic.
async fn get_token(
    State(auth): State<Arc<Auth>>,
    PeerAddr(peer): PeerAddr,
    query: Query,
    headers: HeaderMap,
) -> Result<Response, EndpointError> {
    check_service(&auth, query.get("service"))?;
    let asked = parse_scopes(query.all("scope").flat_map(|v| v.split(' ')))?;
    let client = auth.client_ip(&headers, peer);
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| strip_scheme(v, "basic"))
        .and_then(decode_basic);
    let login = match basic {
        Some((user, password)) => Some(auth.sign_in(&user, &password, client, "token").await?),
        None => None,
    };
    let refresh = match &login {
        Some(login) if query.get("offline_token") == Some("true") => {
            Some(refresh_for(&auth, login).await?)
        }
        _ => None,
    };
    let principal = login.map_or(Principal::Anonymous, |l| l.principal);
    respond(&auth, &principal, &asked, refresh, false).await
}

#[derive(Deserialize)]
struct OAuthForm {
    grant_type: String,
    service: Option<String>,
    scope: Option<String>,
    access_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
}

/// POST /token with `grant_type=password` or `grant_type=refresh_token`.
async fn post_token(
    State(auth): State<Arc<Auth>>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    SmallForm(form): SmallForm<OAuthForm, MAX_FORM_BYTES>,
) -> Result<Response, EndpointError> {
    check_service(&auth, form.service.as_deref())?;
    let asked = parse_scopes(form.scope.as_deref().unwrap_or("").split(' '))?;
    let client = auth.client_ip(&headers, peer);
    let (principal, refresh) = match form.grant_type.as_str() {
        "password" => {
            let (Some(user), Some(password)) = (form.username.as_deref(), form.password.as_deref())
            else {
                return Err(EndpointError::BadRequest(
                    "username and password are required".into(),
                ));
            };
            let login = auth.sign_in(user, password, client, "token").await?;
            let offline = form.access_type.as_deref() == Some("offline");
            let refresh = if offline {
                Some(refresh_for(&auth, &login).await?)
            } else {
                None
            };
            (login.principal, refresh)
        }
        "refresh_token" => {
            let token = form
                .refresh_token
                .clone()
                .ok_or_else(|| EndpointError::BadRequest("refresh_token is required".into()))?;
            let claims = auth
                .tokens
                .verify_refresh(&token)
                .map_err(|e| EndpointError::Unauthorized(e.to_string()))?;
            (auth.login.refresh(&claims).await?, Some(token))
        }
        other => {
            return Err(EndpointError::BadRequest(format!(
                "unsupported grant_type {other:?}"
            )));
        }
    };
    respond(&auth, &principal, &asked, refresh, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/token` answers a fault in the OCI error format, without its cause.
    #[tokio::test]
    async fn faults_answer_without_their_cause() {
        let cases = [
            (
                Fault::Unavailable("db at /data down".into()),
                503,
                "UNAVAILABLE",
                "temporarily unavailable; retry later",
            ),
            (
                Fault::Internal("bug at /src".into()),
                500,
                "UNKNOWN",
                "internal server error",
            ),
        ];
        for (fault, status, code, message) in cases {
            let response = EndpointError::Fault(fault).into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(
                response.headers().contains_key(header::RETRY_AFTER),
                status == 503
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                body,
                json!({ "errors": [{ "code": code, "message": message }] })
            );
        }
    }
}
