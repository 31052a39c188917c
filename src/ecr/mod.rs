//! ECR-compatible management API (AWS JSON 1.1): `POST /` with
//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Operation>`, SigV4
//! signed with Wharf-issued access keys. Handlers call the registry service;
//! errors map to ECR exception names in `error.rs`.

mod error;
mod images;
mod layers;
mod lifecycle;
mod referrers;
mod repositories;
mod repository_policy;
mod tags;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::FromRef;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::{Auth, Principal};
use crate::aws;
use crate::metrics::metrics;
use crate::notifications::{Notice, Notifier, Origin};
use crate::oci::RepoName;
use crate::registry::Registry;
pub use error::EcrError;

const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";

/// Every operation `dispatch` serves: the front door refuses others before
/// reading their body.
const OPERATIONS: &[&str] = &[
    "CreateRepository",
    "DescribeRepositories",
    "DeleteRepository",
    "GetAuthorizationToken",
    "ListImages",
    "DescribeImages",
    "BatchGetImage",
    "BatchDeleteImage",
    "PutImageTagMutability",
    "PutImage",
    "ListImageReferrers",
    "DescribeRegistry",
    "BatchCheckLayerAvailability",
    "InitiateLayerUpload",
    "UploadLayerPart",
    "CompleteLayerUpload",
    "GetDownloadUrlForLayer",
    "PutLifecyclePolicy",
    "GetLifecyclePolicy",
    "DeleteLifecyclePolicy",
    "StartLifecyclePolicyPreview",
    "GetLifecyclePolicyPreview",
    "SetRepositoryPolicy",
    "GetRepositoryPolicy",
    "DeleteRepositoryPolicy",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

/// Identity of this registry in ECR terms.
#[derive(Debug, Clone)]
pub struct EcrSettings {
    /// The 12-digit "account" in ARNs and `registryId`.
    pub registry_id: String,
    pub region: String,
}

#[derive(Clone)]
pub struct EcrState {
    pub registry: Registry,
    pub auth: Arc<Auth>,
    pub settings: EcrSettings,
    pub notifier: Notifier,
}

impl<S> FromRef<S> for EcrState
where
    Registry: FromRef<S>,
    Arc<Auth>: FromRef<S>,
    EcrSettings: FromRef<S>,
    Notifier: FromRef<S>,
{
    fn from_ref(state: &S) -> Self {
        EcrState {
            registry: Registry::from_ref(state),
            auth: Arc::<Auth>::from_ref(state),
            settings: EcrSettings::from_ref(state),
            notifier: Notifier::from_ref(state),
        }
    }
}

/// One admitted ECR request.
pub struct Call<'a> {
    pub state: &'a EcrState,
    pub principal: Principal,
    /// `host[:port]` clients reach this registry at (for repository URIs).
    pub host: String,
    pub scheme: &'static str,
    /// The ECR operation, e.g. `PutImage`; what `require` checks.
    pub operation: String,
    body: Bytes,
    /// Webhook events of this call, sent once it succeeded.
    notices: Mutex<Vec<Notice>>,
}

impl Call<'_> {
    /// Records a webhook event, sent when the call succeeds.
    pub fn notice(&self, notice: Notice) {
        self.notices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(notice);
    }

    /// The request document.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, EcrError> {
        serde_json::from_slice(aws::body_or_empty(&self.body))
            .map_err(|e| EcrError::InvalidParameter(format!("invalid request: {e}")))
    }

    /// Fails unless the caller may call this operation on `repo`.
    pub async fn require(&self, repo: &RepoName) -> Result<(), EcrError> {
        if self.may(repo).await? {
            Ok(())
        } else {
            metrics().auth_failure("forbidden");
            Err(EcrError::AccessDenied(format!(
                "User: {} is not authorized to perform: ecr:{} on resource: {}",
                self.principal.subject(),
                self.operation,
                self.repository_arn(repo)
            )))
        }
    }

    /// Whether the caller may call this operation on `repo` (configuration
    /// rules and the repository's policy).
    pub async fn may(&self, repo: &RepoName) -> Result<bool, EcrError> {
        self.state
            .auth
            .may_call(&self.principal, repo, &self.operation)
            .await
            .map_err(EcrError::from)
    }

    pub fn repository_arn(&self, repo: &RepoName) -> String {
        let s = &self.state.settings;
        format!(
            "arn:aws:ecr:{}:{}:repository/{repo}",
            s.region, s.registry_id
        )
    }
}

impl aws::Service for EcrState {
    const TARGET_PREFIX: &'static str = TARGET_PREFIX;
    const SIGNING_NAME: &'static str = "ecr";

    fn auth(&self) -> &Auth {
        &self.auth
    }

    fn body_limit(&self, operation: &str) -> Option<usize> {
        match operation {
            "UploadLayerPart" => Some(layers::MAX_PART_REQUEST_BYTES),
            // The manifest travels as a JSON string: escaping at most triples
            // it (`\u00e9` for a two-byte `é`), and it is checked against
            // `limits.max_manifest_bytes` once decoded.
            "PutImage" => Some(
                self.registry
                    .limits()
                    .max_manifest_bytes
                    .saturating_mul(3)
                    .saturating_add(aws::MAX_REQUEST_BYTES),
            ),
            _ => OPERATIONS
                .contains(&operation)
                .then_some(aws::MAX_REQUEST_BYTES),
        }
    }

    async fn call(self, request: aws::Request) -> Response {
        handle(self, request).await
    }
}

/// Serves one admitted ECR call.
async fn handle(state: EcrState, request: aws::Request) -> Response {
    let aws::Request {
        peer,
        request_id,
        method,
        headers,
        operation,
        principal,
        body,
    } = request;
    let result = async {
        let (scheme, host) = split_base(&state.auth.base_url(&headers, peer));
        let call = Call {
            state: &state,
            principal,
            host,
            scheme,
            operation,
            body,
            notices: Mutex::default(),
        };
        let output = dispatch(&call).await?;
        let notices = std::mem::take(&mut *call.notices.lock().unwrap_or_else(|p| p.into_inner()));
        if !notices.is_empty() {
            let origin = Origin::of_request(
                request_id,
                &headers,
                &method,
                state.auth.client_ip(&headers, peer),
                call.principal.subject(),
            );
            state.notifier.notify(&notices, &origin);
        }
        Ok::<Value, EcrError>(output)
    }
    .await;
    match result {
        Ok(output) => aws::output(output),
        Err(e) => e.into_response(),
    }
}

/// `https://host:port` -> ("https", "host:port").
fn split_base(base: &str) -> (&'static str, String) {
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let host = rest.split('/').next().unwrap_or_default().to_string();
    (if scheme == "https" { "https" } else { "http" }, host)
}

async fn dispatch(call: &Call<'_>) -> Result<Value, EcrError> {
    match call.operation.as_str() {
        "CreateRepository" => repositories::create(call).await,
        "DescribeRepositories" => repositories::describe(call).await,
        "DeleteRepository" => repositories::delete(call).await,
        "GetAuthorizationToken" => repositories::authorization_token(call).await,
        "ListImages" => images::list(call).await,
        "DescribeImages" => images::describe(call).await,
        "BatchGetImage" => images::batch_get(call).await,
        "BatchDeleteImage" => images::batch_delete(call).await,
        "PutImageTagMutability" => images::put_tag_mutability(call).await,
        "PutImage" => images::put(call).await,
        "ListImageReferrers" => referrers::list(call).await,
        "DescribeRegistry" => repositories::describe_registry(call).await,
        "BatchCheckLayerAvailability" => layers::check(call).await,
        "InitiateLayerUpload" => layers::initiate(call).await,
        "UploadLayerPart" => layers::upload_part(call).await,
        "CompleteLayerUpload" => layers::complete(call).await,
        "GetDownloadUrlForLayer" => layers::download_url(call).await,
        "PutLifecyclePolicy" => lifecycle::put(call).await,
        "GetLifecyclePolicy" => lifecycle::get(call).await,
        "DeleteLifecyclePolicy" => lifecycle::delete(call).await,
        "StartLifecyclePolicyPreview" => lifecycle::start_preview(call).await,
        "GetLifecyclePolicyPreview" => lifecycle::get_preview(call).await,
        "SetRepositoryPolicy" => repository_policy::set(call).await,
        "GetRepositoryPolicy" => repository_policy::get(call).await,
        "DeleteRepositoryPolicy" => repository_policy::delete(call).await,
        "TagResource" => tags::tag(call).await,
        "UntagResource" => tags::untag(call).await,
        "ListTagsForResource" => tags::list(call).await,
        other => Err(EcrError::UnknownOperation(format!(
            "operation {other} is not supported by this registry"
        ))),
    }
}
