//! OCI error responses: every failure of the `/v2/` API becomes one of the
//! spec's error codes, with the status chosen here and nowhere else.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::http::Fault;
use crate::registry::RegistryError;

/// Error codes of distribution-spec "Error Codes", plus the few non-spec
/// conditions clients meet (each with its own status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// An upload chunk that does not continue the session (416).
    ChunkOutOfOrder,
    /// A blob `Range` outside the blob (416).
    RangeInvalid,
    /// A manifest body over the configured cap (413).
    ManifestTooLarge,
    /// A blob that a manifest still needs cannot be deleted (405, as the
    /// spec's conformance suite expects of registries that refuse a delete).
    BlobInUse,
    /// No such endpoint (404).
    NotFound,
    /// Known endpoint, wrong method (405).
    MethodNotAllowed,
    /// A dependency (the blob store, the database) does not answer now (503
    /// with `Retry-After`); the detail is logged, never sent.
    Unavailable,
    /// A fault of ours (500); the detail is logged, never sent.
    Internal,
}

impl Code {
    /// The wire code and HTTP status, in one table.
    pub fn wire(self) -> (&'static str, StatusCode) {
        use Code::*;
        match self {
            BlobUnknown => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND),
            BlobUploadInvalid => ("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST),
            BlobUploadUnknown => ("BLOB_UPLOAD_UNKNOWN", StatusCode::NOT_FOUND),
            DigestInvalid => ("DIGEST_INVALID", StatusCode::BAD_REQUEST),
            ManifestBlobUnknown => ("MANIFEST_BLOB_UNKNOWN", StatusCode::BAD_REQUEST),
            ManifestInvalid => ("MANIFEST_INVALID", StatusCode::BAD_REQUEST),
            ManifestUnknown => ("MANIFEST_UNKNOWN", StatusCode::NOT_FOUND),
            NameInvalid => ("NAME_INVALID", StatusCode::BAD_REQUEST),
            NameUnknown => ("NAME_UNKNOWN", StatusCode::NOT_FOUND),
            SizeInvalid => ("SIZE_INVALID", StatusCode::BAD_REQUEST),
            TagInvalid => ("TAG_INVALID", StatusCode::BAD_REQUEST),
            Unauthorized => ("UNAUTHORIZED", StatusCode::UNAUTHORIZED),
            Denied => ("DENIED", StatusCode::FORBIDDEN),
            Unsupported => ("UNSUPPORTED", StatusCode::BAD_REQUEST),
            TooManyRequests => ("TOOMANYREQUESTS", StatusCode::TOO_MANY_REQUESTS),
            ChunkOutOfOrder => ("BLOB_UPLOAD_INVALID", StatusCode::RANGE_NOT_SATISFIABLE),
            RangeInvalid => ("RANGE_INVALID", StatusCode::RANGE_NOT_SATISFIABLE),
            ManifestTooLarge => ("SIZE_INVALID", StatusCode::PAYLOAD_TOO_LARGE),
            BlobInUse => ("DENIED", StatusCode::METHOD_NOT_ALLOWED),
            NotFound => ("NOT_FOUND", StatusCode::NOT_FOUND),
            MethodNotAllowed => ("UNSUPPORTED", StatusCode::METHOD_NOT_ALLOWED),
            Unavailable => ("UNAVAILABLE", StatusCode::SERVICE_UNAVAILABLE),
            Internal => ("UNKNOWN", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

/// An error response of the `/v2/` API.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// Boxed, like the headers, to keep `Result<_, ApiError>` small on the happy path.
    pub detail: Option<Box<Value>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.retain(|(n, _)| n != name);
            self.headers.push((name, v));
        }
        self
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        let message = e.to_string();
        let unavailable = e.is_unavailable();
        match e {
            E::BlobUnknown(d) => {
                ApiError::new(Code::BlobUnknown, message).with_detail(json!({ "digest": d }))
            }
            E::RangeNotSatisfiable { size, .. } => ApiError::new(Code::RangeInvalid, message)
                .with_header(
                    axum::http::header::CONTENT_RANGE,
                    &format!("bytes */{size}"),
                ),
            E::UploadUnknown => ApiError::new(Code::BlobUploadUnknown, message),
            E::ChunkOutOfOrder { size } => ApiError::new(Code::ChunkOutOfOrder, message)
                .with_header(axum::http::header::RANGE, &super::upload_range(size)),
            E::UploadInvalid(_) => ApiError::new(Code::BlobUploadInvalid, message),
            E::DigestMismatch { .. } => ApiError::new(Code::DigestInvalid, message),
            E::SizeInvalid(_) => ApiError::new(Code::SizeInvalid, message),
            E::ManifestUnknown(r) => {
                ApiError::new(Code::ManifestUnknown, message).with_detail(json!({ "reference": r }))
            }
            E::ManifestInvalid(_) => ApiError::new(Code::ManifestInvalid, message),
            E::ManifestTooLarge { .. } => ApiError::new(Code::ManifestTooLarge, message),
            E::ManifestBlobUnknown(missing) => ApiError::new(Code::ManifestBlobUnknown, message)
                .with_detail(json!({ "digests": missing })),
            E::NameUnknown(n) => {
                ApiError::new(Code::NameUnknown, message).with_detail(json!({ "name": n.as_str() }))
            }
            E::TagImmutable(t) => {
                ApiError::new(Code::Denied, message).with_detail(json!({ "tag": t }))
            }
            E::QuotaExceeded { limit, used, .. } => ApiError::new(Code::Denied, message)
                .with_detail(json!({ "quotaBytes": limit, "usedBytes": used })),
            E::BlobInUse(d) => {
                ApiError::new(Code::BlobInUse, message).with_detail(json!({ "digest": d }))
            }
            // A dependency that does not answer passes; our own faults do not.
            E::Storage(_) | E::Metadata(_) => Fault::classify(unavailable, message).into(),
        }
    }
}

impl From<Fault> for ApiError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Unavailable(cause) => ApiError::new(Code::Unavailable, cause),
            Fault::Internal(cause) => ApiError::new(Code::Internal, cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.code.wire();
        let fault = match self.code {
            Code::Unavailable => Some(Fault::Unavailable(self.message.clone())),
            Code::Internal => Some(Fault::Internal(self.message.clone())),
            _ => None,
        };
        let message = match &fault {
            Some(Fault::Unavailable(_)) => "storage temporarily unavailable; retry later",
            Some(Fault::Internal(_)) => "internal server error",
            None => self.message.as_str(),
        };
        let mut error = json!({ "code": code, "message": message });
        if let Some(detail) = self.detail {
            error["detail"] = *detail;
        }
        let mut response = (status, Json(json!({ "errors": [error] }))).into_response();
        response.headers_mut().extend(self.headers);
        if let Some(fault) = fault {
            fault.mark(&mut response);
        }
        response
    }
}
