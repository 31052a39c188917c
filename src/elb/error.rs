//! ELBv2 errors: each has its wire code (the exception name without
//! `Exception`) and HTTP status here, in one `match`.

use axum::http::StatusCode;
use axum::response::Response;

use crate::aws::query;
use crate::balancer::BalancerError;
use crate::http::Fault;

#[derive(Debug, thiserror::Error)]
pub enum ElbError {
    #[error("{0}")]
    AccessDenied(String),
    /// A parameter missing or malformed before the balancer saw it.
    #[error("{0}")]
    Validation(String),
    #[error(transparent)]
    Balancer(#[from] BalancerError),
    /// Not the client's failure (500, or 503 with `Retry-After`); the cause
    /// is logged, never sent.
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl ElbError {
    /// The wire code and status; `None` for faults, which answer alone.
    fn wire(&self) -> Option<(&'static str, StatusCode)> {
        use BalancerError as B;
        let bad = StatusCode::BAD_REQUEST;
        Some(match self {
            ElbError::AccessDenied(_) => ("AccessDenied", StatusCode::FORBIDDEN),
            ElbError::Validation(_) | ElbError::Balancer(B::Validation(_)) => {
                ("ValidationError", bad)
            }
            ElbError::Balancer(e) => match e {
                B::InvalidConfiguration(_) => ("InvalidConfigurationRequest", bad),
                B::TargetGroupNotFound => ("TargetGroupNotFound", bad),
                B::DuplicateTargetGroupName(_) => ("DuplicateTargetGroupName", bad),
                B::LoadBalancerNotFound => ("LoadBalancerNotFound", bad),
                B::DuplicateLoadBalancerName(_) => ("DuplicateLoadBalancerName", bad),
                B::ListenerNotFound => ("ListenerNotFound", bad),
                B::DuplicateListener(_) => ("DuplicateListener", bad),
                B::InvalidTarget(_) => ("InvalidTarget", bad),
                B::ResourceInUse(_) => ("ResourceInUse", bad),
                B::TooMany(code, _) => (*code, bad),
                B::Validation(_) | B::Store(_) | B::Corrupt(_) => return None,
            },
            ElbError::Fault(_) => return None,
        })
    }

    /// The answer to a failed call.
    pub fn into_response(self, xmlns: &str, request_id: &str) -> Response {
        match self.wire() {
            Some((code, status)) => {
                query::error(xmlns, request_id, status, code, &self.to_string())
            }
            None => query::fault(xmlns, request_id, self.into_fault()),
        }
    }

    fn into_fault(self) -> Fault {
        match self {
            ElbError::Fault(fault) => fault,
            ElbError::Balancer(BalancerError::Store(e)) => Fault::classify(e.is_unavailable(), e),
            other => Fault::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn codes_and_statuses() {
        let cases: Vec<(ElbError, u16, &str)> = vec![
            (ElbError::AccessDenied("no".into()), 403, "AccessDenied"),
            (ElbError::Validation("x".into()), 400, "ValidationError"),
            (
                BalancerError::Validation("x".into()).into(),
                400,
                "ValidationError",
            ),
            (
                BalancerError::TargetGroupNotFound.into(),
                400,
                "TargetGroupNotFound",
            ),
            (
                BalancerError::DuplicateListener(80).into(),
                400,
                "DuplicateListener",
            ),
            (
                BalancerError::TooMany("TooManyTargets", "x".into()).into(),
                400,
                "TooManyTargets",
            ),
            (
                BalancerError::Corrupt("secret cause".into()).into(),
                500,
                "InternalFailure",
            ),
        ];
        for (error, status, code) in cases {
            let response = error.into_response("urn:x", "r");
            assert_eq!(response.status().as_u16(), status, "{code}");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let body = String::from_utf8(body.to_vec()).unwrap();
            assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
            assert!(!body.contains("secret cause"), "{body}");
        }
    }
}
