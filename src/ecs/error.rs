//! ECS errors: each has its AWS exception name (`__type`) here, in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::http::Fault;
use crate::runner::RunnerError;
use crate::runner::engine::EngineError;
use crate::storage::MetadataError;

#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    UnknownOperation(String),
    #[error("{0}")]
    Client(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("Cluster not found.")]
    ClusterNotFound,
    #[error("Service not found.")]
    ServiceNotFound,
    #[error("Service was not ACTIVE.")]
    ServiceNotActive,
    #[error("The Cluster cannot be deleted while Services are active.")]
    ClusterContainsServices,
    #[error("The Cluster cannot be deleted while Tasks are active.")]
    ClusterContainsTasks,
    #[error("The Cluster cannot be deleted while Container Instances are active or draining.")]
    ClusterContainsContainerInstances,
    #[error("{0}")]
    AttributeLimitExceeded(String),
    #[error("{0}")]
    TargetNotFound(String),
    /// Not the client's failure (500, or 503 with `Retry-After`); the cause
    /// is logged, never sent.
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl EcsError {
    fn wire(&self) -> (&'static str, StatusCode) {
        use EcsError::*;
        let bad = StatusCode::BAD_REQUEST;
        match self {
            AccessDenied(_) => ("AccessDeniedException", bad),
            UnknownOperation(_) => ("UnknownOperationException", bad),
            Client(_) => ("ClientException", bad),
            InvalidParameter(_) => ("InvalidParameterException", bad),
            ClusterNotFound => ("ClusterNotFoundException", bad),
            ServiceNotFound => ("ServiceNotFoundException", bad),
            ServiceNotActive => ("ServiceNotActiveException", bad),
            ClusterContainsServices => ("ClusterContainsServicesException", bad),
            ClusterContainsTasks => ("ClusterContainsTasksException", bad),
            ClusterContainsContainerInstances => {
                ("ClusterContainsContainerInstancesException", bad)
            }
            AttributeLimitExceeded(_) => ("AttributeLimitExceededException", bad),
            TargetNotFound(_) => ("TargetNotFoundException", bad),
            Fault(fault) => ("ServerException", fault.status()),
        }
    }
}

impl From<MetadataError> for EcsError {
    fn from(e: MetadataError) -> Self {
        Fault::classify(e.is_unavailable(), e).into()
    }
}

impl From<RunnerError> for EcsError {
    fn from(e: RunnerError) -> Self {
        match e {
            RunnerError::Client(m) => EcsError::Client(m),
            RunnerError::InvalidParameter(m) => EcsError::InvalidParameter(m),
            RunnerError::ClusterNotFound => EcsError::ClusterNotFound,
            RunnerError::ServiceNotFound => EcsError::ServiceNotFound,
            RunnerError::ServiceNotActive => EcsError::ServiceNotActive,
            RunnerError::ClusterContainsTasks => EcsError::ClusterContainsTasks,
            RunnerError::ClusterContainsServices => EcsError::ClusterContainsServices,
            RunnerError::ClusterContainsInstances => EcsError::ClusterContainsContainerInstances,
            RunnerError::AttributeLimitExceeded(m) => EcsError::AttributeLimitExceeded(m),
            RunnerError::TargetNotFound(m) => EcsError::TargetNotFound(m),
            RunnerError::AccessDenied(m) => EcsError::AccessDenied(m),
            other => fault(other).into(),
        }
    }
}

/// The 503/500 split of a runner failure that is not the caller's (the ECS
/// API and the task logs endpoint both answer with it): the database or the
/// container engine not answering is a 503, anything else our fault.
pub(super) fn fault(e: RunnerError) -> Fault {
    match e {
        RunnerError::Store(e) => Fault::classify(e.is_unavailable(), e),
        RunnerError::Engine(EngineError::Unavailable(cause)) => {
            Fault::Unavailable(format!("container engine: {cause}"))
        }
        other => Fault::Internal(other.to_string()),
    }
}

impl IntoResponse for EcsError {
    fn into_response(self) -> Response {
        let (name, status) = self.wire();
        match self {
            EcsError::Fault(fault) => crate::aws::fault(fault),
            other => crate::aws::error(status, name, other.to_string()),
        }
    }
}
