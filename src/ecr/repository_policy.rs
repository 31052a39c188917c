//! Set/Get/DeleteRepositoryPolicy. The documents are enforced by auth on
//! both APIs; here they are only validated, stored and shown.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admitted, Call, EcrError};
use crate::auth::PolicyStoreError;
use crate::oci::RepoName;

super::named_by_repository_name!(PolicyInput);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PolicyInput {
    repository_name: String,
    policy_text: Option<String>,
    #[serde(default)]
    force: bool,
}

fn output(call: &Call<'_>, repo: &RepoName, text: &str) -> Value {
    json!({
        "registryId": call.state.settings.registry_id,
        "repositoryName": repo.as_str(),
        "policyText": text,
    })
}

fn not_found(repo: &RepoName) -> EcrError {
    EcrError::RepositoryPolicyNotFound(format!(
        "Repository policy does not exist for the repository with name '{repo}'"
    ))
}

pub async fn set(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<PolicyInput>,
) -> Result<Value, EcrError> {
    let text = input
        .policy_text
        .ok_or_else(|| EcrError::InvalidParameter("policyText is required".into()))?;
    let auth = &call.state.auth;
    let document = auth
        .repository_policies
        .parse(&text)
        .map_err(PolicyStoreError::from)?;
    // As ECR does, refuse to lock the caller out unless told to.
    if !input.force && !auth.judge_call(&call.principal, &repo, call.action()?, Some(&document)) {
        return Err(EcrError::InvalidParameter(
            "The repository policy would prevent you from setting another policy in the future; \
             set force to apply it anyway"
                .into(),
        ));
    }
    auth.repository_policies.set(&repo, Some(&text)).await?;
    Ok(output(call, &repo, &text))
}

pub async fn get(
    call: &Call<'_>,
    Admitted { repo, .. }: Admitted<PolicyInput>,
) -> Result<Value, EcrError> {
    call.state.registry.repository(&repo).await?;
    let text = call
        .state
        .auth
        .repository_policies
        .text(&repo)
        .await?
        .ok_or_else(|| not_found(&repo))?;
    Ok(output(call, &repo, &text))
}

pub async fn delete(
    call: &Call<'_>,
    Admitted { repo, .. }: Admitted<PolicyInput>,
) -> Result<Value, EcrError> {
    call.state.registry.repository(&repo).await?;
    let policies = &call.state.auth.repository_policies;
    let text = policies
        .text(&repo)
        .await?
        .ok_or_else(|| not_found(&repo))?;
    policies.set(&repo, None).await?;
    Ok(output(call, &repo, &text))
}
