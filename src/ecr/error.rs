//! ECR errors: each has its AWS exception name (`__type`) and status here, in
//! one place, and the registry's domain errors get ECR's wording here (the
//! messages the AWS CLI prints).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth::PolicyStoreError;
use crate::http::Fault;
use crate::registry::lifecycle::PolicyError;
use crate::registry::{LifecycleError, RegistryError, RepositoryError};
use crate::storage::MetadataError;

#[derive(Debug, thiserror::Error)]
pub enum EcrError {
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    UnknownOperation(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    InvalidTagParameter(String),
    #[error("{0}")]
    TooManyTags(String),
    #[error("{0}")]
    RepositoryNotFound(String),
    #[error("{0}")]
    RepositoryAlreadyExists(String),
    #[error("{0}")]
    RepositoryNotEmpty(String),
    #[error("{0}")]
    ImageNotFound(String),
    #[error("{0}")]
    LifecyclePolicyNotFound(String),
    #[error("{0}")]
    LifecyclePolicyPreviewNotFound(String),
    #[error("{0}")]
    ImageAlreadyExists(String),
    #[error("{0}")]
    ImageTagAlreadyExists(String),
    #[error("{0}")]
    ImageDigestDoesNotMatch(String),
    #[error("{0}")]
    LayersNotFound(String),
    #[error("{0}")]
    ReferencedImagesNotFound(String),
    #[error("{0}")]
    RepositoryPolicyNotFound(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    LayerPartTooSmall(String),
    #[error("{0}")]
    InvalidLayerPart(String),
    #[error("{0}")]
    UploadNotFound(String),
    #[error("{0}")]
    LayerAlreadyExists(String),
    #[error("{0}")]
    InvalidLayer(String),
    #[error("{0}")]
    EmptyUpload(String),
    #[error("{0}")]
    LayerInaccessible(String),
    /// Not the client's failure (500, or 503 with `Retry-After`); the cause
    /// is logged, never sent.
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl EcrError {
    fn wire(&self) -> (&'static str, StatusCode) {
        use EcrError::*;
        match self {
            AccessDenied(_) => ("AccessDeniedException", StatusCode::BAD_REQUEST),
            UnknownOperation(_) => ("UnknownOperationException", StatusCode::BAD_REQUEST),
            InvalidParameter(_) => ("InvalidParameterException", StatusCode::BAD_REQUEST),
            InvalidTagParameter(_) => ("InvalidTagParameterException", StatusCode::BAD_REQUEST),
            TooManyTags(_) => ("TooManyTagsException", StatusCode::BAD_REQUEST),
            RepositoryNotFound(_) => ("RepositoryNotFoundException", StatusCode::BAD_REQUEST),
            RepositoryAlreadyExists(_) => {
                ("RepositoryAlreadyExistsException", StatusCode::BAD_REQUEST)
            }
            RepositoryNotEmpty(_) => ("RepositoryNotEmptyException", StatusCode::BAD_REQUEST),
            ImageNotFound(_) => ("ImageNotFoundException", StatusCode::BAD_REQUEST),
            LifecyclePolicyNotFound(_) => {
                ("LifecyclePolicyNotFoundException", StatusCode::BAD_REQUEST)
            }
            LifecyclePolicyPreviewNotFound(_) => (
                "LifecyclePolicyPreviewNotFoundException",
                StatusCode::BAD_REQUEST,
            ),
            ImageAlreadyExists(_) => ("ImageAlreadyExistsException", StatusCode::BAD_REQUEST),
            ImageTagAlreadyExists(_) => ("ImageTagAlreadyExistsException", StatusCode::BAD_REQUEST),
            ImageDigestDoesNotMatch(_) => {
                ("ImageDigestDoesNotMatchException", StatusCode::BAD_REQUEST)
            }
            LayersNotFound(_) => ("LayersNotFoundException", StatusCode::BAD_REQUEST),
            ReferencedImagesNotFound(_) => {
                ("ReferencedImagesNotFoundException", StatusCode::BAD_REQUEST)
            }
            RepositoryPolicyNotFound(_) => {
                ("RepositoryPolicyNotFoundException", StatusCode::BAD_REQUEST)
            }
            LayerPartTooSmall(_) => ("LayerPartTooSmallException", StatusCode::BAD_REQUEST),
            InvalidLayerPart(_) => ("InvalidLayerPartException", StatusCode::BAD_REQUEST),
            UploadNotFound(_) => ("UploadNotFoundException", StatusCode::BAD_REQUEST),
            LayerAlreadyExists(_) => ("LayerAlreadyExistsException", StatusCode::BAD_REQUEST),
            InvalidLayer(_) => ("InvalidLayerException", StatusCode::BAD_REQUEST),
            EmptyUpload(_) => ("EmptyUploadException", StatusCode::BAD_REQUEST),
            LayerInaccessible(_) => ("LayerInaccessibleException", StatusCode::BAD_REQUEST),
            LimitExceeded(_) => ("LimitExceededException", StatusCode::BAD_REQUEST),
            Fault(fault) => ("ServerException", fault.status()),
        }
    }
}

impl From<MetadataError> for EcrError {
    fn from(e: MetadataError) -> Self {
        Fault::classify(e.is_unavailable(), e).into()
    }
}

impl From<RegistryError> for EcrError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        if e.is_unavailable() {
            return Fault::Unavailable(message).into();
        }
        match e {
            RegistryError::NameUnknown(name) => EcrError::RepositoryNotFound(format!(
                "The repository with name '{name}' does not exist in the registry"
            )),
            RegistryError::QuotaExceeded { .. } => EcrError::LimitExceeded(message),
            _ => Fault::Internal(message).into(),
        }
    }
}

impl From<RepositoryError> for EcrError {
    fn from(e: RepositoryError) -> Self {
        match e {
            RepositoryError::Exists(name) => EcrError::RepositoryAlreadyExists(format!(
                "The repository with name '{name}' already exists in the registry"
            )),
            RepositoryError::NotEmpty(name) => EcrError::RepositoryNotEmpty(format!(
                "The repository with name '{name}' cannot be deleted because it still contains images"
            )),
            RepositoryError::Registry(e) => e.into(),
        }
    }
}

impl From<LifecycleError> for EcrError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Invalid(PolicyError(m)) => EcrError::InvalidParameter(format!(
                "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: '{m}'"
            )),
            LifecycleError::NoPolicy(name) => EcrError::LifecyclePolicyNotFound(format!(
                "Lifecycle policy does not exist for the repository with name '{name}'"
            )),
            LifecycleError::NoPreview(name) => EcrError::LifecyclePolicyPreviewNotFound(format!(
                "There is no lifecycle policy preview for the repository with name '{name}'"
            )),
            LifecycleError::Registry(e) => e.into(),
        }
    }
}

impl From<PolicyStoreError> for EcrError {
    fn from(e: PolicyStoreError) -> Self {
        match e {
            PolicyStoreError::Invalid(e) => EcrError::InvalidParameter(format!(
                "Invalid parameter at 'PolicyText' failed to satisfy constraint: '{e}'"
            )),
            PolicyStoreError::NoRepository(name) => RegistryError::NameUnknown(name).into(),
            PolicyStoreError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for EcrError {
    fn into_response(self) -> Response {
        let (name, status) = self.wire();
        match self {
            EcrError::Fault(fault) => crate::aws::fault(fault),
            other => crate::aws::error(status, name, other.to_string()),
        }
    }
}
