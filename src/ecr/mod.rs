//! ECR-compatible management API (AWS JSON 1.1): `POST /` with
//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Operation>`, SigV4
//! signed with Wharf-issued access keys. Handlers call the registry service;
//! errors map to ECR exception names in `error.rs`.

mod error;
mod images;
mod layers;
mod lifecycle;
mod operation;
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

use crate::auth::{Auth, EcrAction, EcrNeed, Principal};
use crate::aws;
use crate::metrics::metrics;
use crate::notifications::{Notice, Notifier, Origin};
use crate::oci::RepoName;
use crate::registry::Registry;
pub use error::EcrError;
pub use operation::Operation;

const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";

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
    /// The ECR operation; its need is what `admit` and `require` check.
    pub operation: Operation,
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

    /// The one check of an operation that acts on the repository its input
    /// names, before its handler runs: the input parsed (its errors come
    /// first), the repository named, then the operation's need judged.
    async fn admit<I: Named>(&self) -> Result<Admitted<I>, EcrError> {
        let input: I = self.input()?;
        let repo = input.repository(self)?;
        self.require(&repo).await?;
        Ok(Admitted { input, repo })
    }

    /// The signed-in user an operation that needs one ([`EcrNeed::User`]) acts for.
    fn user(&self) -> Result<&str, EcrError> {
        match &self.principal {
            Principal::User { name, .. } => Ok(name),
            _ => Err(EcrError::AccessDenied(
                "an authorization token needs a signed-in user".into(),
            )),
        }
    }

    /// The action this operation needs on a repository.
    fn action(&self) -> Result<EcrAction, EcrError> {
        match self.operation.authorization() {
            EcrNeed::Repository(action) | EcrNeed::EachRepository(action) => Ok(action),
            EcrNeed::Admitted | EcrNeed::User => Err(crate::http::Fault::Internal(format!(
                "{} acts on no repository",
                self.operation.name()
            ))
            .into()),
        }
    }

    /// Fails unless the caller may call this operation on `repo`.
    pub async fn require(&self, repo: &RepoName) -> Result<(), EcrError> {
        if self.may(repo).await? {
            Ok(())
        } else {
            metrics().auth_failure("forbidden");
            Err(EcrError::AccessDenied(format!(
                "User: {} is not authorized to perform: {} on resource: {}",
                self.principal.subject(),
                self.operation.iam_name(),
                self.repository_arn(repo)
            )))
        }
    }

    /// Whether the caller may call this operation on `repo` (configuration
    /// rules and the repository's policy).
    pub async fn may(&self, repo: &RepoName) -> Result<bool, EcrError> {
        self.state
            .auth
            .may_call(&self.principal, repo, self.action()?)
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

    type Operation = Operation;

    fn operation(name: &str) -> Option<Operation> {
        Operation::parse(name)
    }

    fn body_limit(&self, operation: &Operation) -> usize {
        match operation {
            Operation::UploadLayerPart => layers::MAX_PART_REQUEST_BYTES,
            // The manifest travels as a JSON string: escaping at most triples
            // it (`\u00e9` for a two-byte `é`), and it is checked against
            // `limits.max_manifest_bytes` once decoded.
            Operation::PutImage => self
                .registry
                .limits()
                .max_manifest_bytes
                .saturating_mul(3)
                .saturating_add(aws::MAX_REQUEST_BYTES),
            _ => aws::MAX_REQUEST_BYTES,
        }
    }

    async fn call(self, request: aws::Request<Operation>) -> Response {
        handle(self, request).await
    }
}

/// Serves one admitted ECR call.
async fn handle(state: EcrState, request: aws::Request<Operation>) -> Response {
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
        if let Some(action) = call.operation.audited() {
            let repository = serde_json::from_slice::<Value>(&call.body)
                .ok()
                .and_then(|v| v.get("repositoryName")?.as_str().map(str::to_string))
                .unwrap_or_default();
            let client = state.auth.client_ip(&headers, peer);
            state
                .auth
                .audit
                .record(
                    &call.principal.subject(),
                    action,
                    &repository,
                    "",
                    &format!("via=ecr client={client}"),
                )
                .await;
        }
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

/// Runs the operation's handler once its need is met: operations on one
/// repository are admitted here ([`Call::admit`]); DescribeRepositories
/// checks each repository it names or lists ([`Call::may`]).
async fn dispatch(call: &Call<'_>) -> Result<Value, EcrError> {
    use Operation as Op;
    match call.operation {
        Op::DescribeRegistry => repositories::describe_registry(call).await,
        Op::GetAuthorizationToken => repositories::authorization_token(call, call.user()?).await,
        Op::DescribeRepositories => repositories::describe(call).await,
        Op::CreateRepository => repositories::create(call, call.admit().await?).await,
        Op::DeleteRepository => repositories::delete(call, call.admit().await?).await,
        Op::ListImages => images::list(call, call.admit().await?).await,
        Op::DescribeImages => images::describe(call, call.admit().await?).await,
        Op::BatchGetImage => images::batch_get(call, call.admit().await?).await,
        Op::BatchDeleteImage => images::batch_delete(call, call.admit().await?).await,
        Op::PutImageTagMutability => images::put_tag_mutability(call, call.admit().await?).await,
        Op::PutImage => images::put(call, call.admit().await?).await,
        Op::ListImageReferrers => referrers::list(call, call.admit().await?).await,
        Op::BatchCheckLayerAvailability => layers::check(call, call.admit().await?).await,
        Op::InitiateLayerUpload => layers::initiate(call, call.admit().await?).await,
        Op::UploadLayerPart => layers::upload_part(call, call.admit().await?).await,
        Op::CompleteLayerUpload => layers::complete(call, call.admit().await?).await,
        Op::GetDownloadUrlForLayer => layers::download_url(call, call.admit().await?).await,
        Op::PutLifecyclePolicy => lifecycle::put(call, call.admit().await?).await,
        Op::GetLifecyclePolicy => lifecycle::get(call, call.admit().await?).await,
        Op::DeleteLifecyclePolicy => lifecycle::delete(call, call.admit().await?).await,
        Op::StartLifecyclePolicyPreview => {
            lifecycle::start_preview(call, call.admit().await?).await
        }
        Op::GetLifecyclePolicyPreview => lifecycle::get_preview(call, call.admit().await?).await,
        Op::SetRepositoryPolicy => repository_policy::set(call, call.admit().await?).await,
        Op::GetRepositoryPolicy => repository_policy::get(call, call.admit().await?).await,
        Op::DeleteRepositoryPolicy => repository_policy::delete(call, call.admit().await?).await,
        Op::TagResource => tags::tag(call, call.admit().await?).await,
        Op::UntagResource => tags::untag(call, call.admit().await?).await,
        Op::ListTagsForResource => tags::list(call, call.admit().await?).await,
    }
}

/// An input that names the one repository its operation acts on.
trait Named: DeserializeOwned {
    fn repository(&self, call: &Call<'_>) -> Result<RepoName, EcrError>;
}

/// Inputs that name their repository by `repositoryName`.
macro_rules! named_by_repository_name {
    ($($input:ty),* $(,)?) => {$(
        impl super::Named for $input {
            fn repository(
                &self,
                _: &super::Call<'_>,
            ) -> Result<crate::oci::RepoName, super::EcrError> {
                super::repositories::repo_name(&self.repository_name)
            }
        }
    )*};
}
use named_by_repository_name;

/// A parsed input whose repository the caller may act on ([`Call::admit`]).
struct Admitted<I> {
    input: I,
    repo: RepoName,
}
