//! Application Auto Scaling errors: each has its AWS exception name
//! (`__type`) here, in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::http::Fault;
use crate::runner::RunnerError;
use crate::runner::engine::EngineError;
use crate::scaling::ScalingError;
use crate::storage::MetadataError;

#[derive(Debug, thiserror::Error)]
pub enum AutoScalingError {
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    ObjectNotFound(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    ConcurrentUpdate(String),
    /// Not the client's failure (500, or 503 with `Retry-After`); the cause
    /// is logged, never sent.
    #[error(transparent)]
    Internal(#[from] Fault),
}

impl AutoScalingError {
    fn wire(&self) -> (&'static str, StatusCode) {
        use AutoScalingError::*;
        let bad = StatusCode::BAD_REQUEST;
        match self {
            AccessDenied(_) => ("AccessDeniedException", bad),
            Validation(_) => ("ValidationException", bad),
            ObjectNotFound(_) => ("ObjectNotFoundException", bad),
            LimitExceeded(_) => ("LimitExceededException", bad),
            ConcurrentUpdate(_) => ("ConcurrentUpdateException", bad),
            Internal(fault) => ("InternalServiceException", fault.status()),
        }
    }
}

impl From<MetadataError> for AutoScalingError {
    fn from(e: MetadataError) -> Self {
        Fault::classify(e.is_unavailable(), e).into()
    }
}

impl From<RunnerError> for AutoScalingError {
    fn from(e: RunnerError) -> Self {
        match e {
            RunnerError::Store(e) => e.into(),
            RunnerError::Engine(EngineError::Unavailable(cause)) => {
                Fault::Unavailable(format!("container engine: {cause}")).into()
            }
            other => Fault::Internal(other.to_string()).into(),
        }
    }
}

impl From<ScalingError> for AutoScalingError {
    fn from(e: ScalingError) -> Self {
        match e {
            ScalingError::Validation(m) => AutoScalingError::Validation(m),
            ScalingError::ObjectNotFound(m) => AutoScalingError::ObjectNotFound(m),
            ScalingError::LimitExceeded(m) => AutoScalingError::LimitExceeded(m),
            ScalingError::ConcurrentUpdate(m) => AutoScalingError::ConcurrentUpdate(m),
            ScalingError::Runner(e) => e.into(),
            ScalingError::Store(e) => e.into(),
            ScalingError::Corrupt(m) => Fault::Internal(format!("corrupt record: {m}")).into(),
        }
    }
}

impl IntoResponse for AutoScalingError {
    fn into_response(self) -> Response {
        let (name, status) = self.wire();
        match self {
            AutoScalingError::Internal(fault) => {
                let mut response =
                    crate::aws::error(status, name, fault.public_message().to_string());
                fault.mark(&mut response);
                response
            }
            other => crate::aws::error(status, name, other.to_string()),
        }
    }
}
