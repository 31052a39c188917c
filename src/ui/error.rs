//! The console's one error type and its one mapping to a response: a page
//! with a status, never an internal cause (that rides on the response for
//! the request log, as on every API).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::layout;
use crate::auth::Denial;
use crate::http::Fault;
use crate::registry::{LifecycleError, RegistryError};
use crate::storage::MetadataError;

#[derive(Debug)]
pub enum UiError {
    /// Missing, or not to be seen by this viewer: the same page either way.
    NotFound,
    /// Seen, but this action is not the viewer's to do.
    Forbidden,
    BadRequest(&'static str),
    /// A state-changing form without the right CSRF token.
    Csrf,
    /// No session where one is needed: to the sign-in form, then back to `next`.
    SignIn {
        next: String,
    },
    Throttled {
        retry_after: u64,
    },
    Fault(Fault),
}

pub type UiResult<T = Response> = Result<T, UiError>;

impl From<RegistryError> for UiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NameUnknown(_)
            | RegistryError::ManifestUnknown(_)
            | RegistryError::BlobUnknown(_) => UiError::NotFound,
            e => UiError::Fault(Fault::classify(e.is_unavailable(), e)),
        }
    }
}

impl From<LifecycleError> for UiError {
    fn from(e: LifecycleError) -> Self {
        match e {
            // The lifecycle page shows a policy's own complaint beside its
            // form; this is only for a text that should have been valid.
            LifecycleError::Invalid(_) => UiError::BadRequest("the lifecycle policy is not valid"),
            LifecycleError::NoPolicy(_) => {
                UiError::BadRequest("the repository has no lifecycle policy")
            }
            LifecycleError::NoPreview(_) => UiError::NotFound,
            LifecycleError::Registry(e) => e.into(),
        }
    }
}

impl From<MetadataError> for UiError {
    fn from(e: MetadataError) -> Self {
        UiError::Fault(Fault::classify(e.is_unavailable(), e))
    }
}

impl From<Denial> for UiError {
    fn from(d: Denial) -> Self {
        match d {
            Denial::Fault(f) => UiError::Fault(f),
            Denial::Throttled { retry_after } => UiError::Throttled { retry_after },
            Denial::Unauthorized { .. } | Denial::Forbidden(_) => UiError::Forbidden,
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title, text) = match &self {
            UiError::SignIn { next } => {
                let to = format!("/ui/login?next={}", super::session::encode(next));
                return Redirect::to(&to).into_response();
            }
            UiError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or nothing you may see.",
            ),
            UiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Your account may not do this.",
            ),
            UiError::BadRequest(why) => (StatusCode::BAD_REQUEST, "Bad request", *why),
            UiError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not sent from this console's page, or the page is too old. Go back, reload and try again.",
            ),
            UiError::Throttled { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Too many sign-in attempts; wait a moment and try again.",
            ),
            UiError::Fault(f) => (f.status(), "Error", f.public_message()),
        };
        let mut response = (status, layout::html(layout::error_page(title, text))).into_response();
        match self {
            UiError::Throttled { retry_after } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            UiError::Fault(f) => f.mark(&mut response),
            _ => {}
        }
        response
    }
}
