//! Resource tags on repositories: TagResource, UntagResource, ListTagsForResource.
//! Repositories are named by ARN: `arn:aws:ecr:REGION:ACCOUNT:repository/NAME`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::repositories::{MAX_TAGS, ResourceTag, repo_name, valid_tag_key};
use super::{Admitted, Call, EcrError, Named};
use crate::oci::RepoName;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TagInput {
    resource_arn: String,
    #[serde(default)]
    tags: Vec<ResourceTag>,
    #[serde(default)]
    tag_keys: Vec<String>,
}

impl Named for TagInput {
    fn repository(&self, call: &Call<'_>) -> Result<RepoName, EcrError> {
        repository_of(call, &self.resource_arn)
    }
}

/// The repository an ARN of this registry names.
fn repository_of(call: &Call<'_>, arn: &str) -> Result<RepoName, EcrError> {
    let prefix = format!(
        "arn:aws:ecr:{}:{}:repository/",
        call.state.settings.region, call.state.settings.registry_id
    );
    let name = arn
        .strip_prefix(&prefix)
        .ok_or_else(|| EcrError::InvalidParameter(format!("Invalid parameter at 'resourceArn': {arn:?} is not a repository ARN of this registry (expected {prefix}NAME)")))?;
    repo_name(name)
}

pub async fn tag(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<TagInput>,
) -> Result<Value, EcrError> {
    if input.tags.is_empty() {
        return Err(EcrError::InvalidParameter("tags must not be empty".into()));
    }
    if let Some(bad) = input.tags.iter().find(|t| !t.is_valid()) {
        return Err(EcrError::InvalidTagParameter(format!(
            "invalid tag key {:?}",
            bad.key
        )));
    }
    let current = call.state.registry.repository(&repo).await?;
    let mut keys: Vec<&str> = current.tags.iter().map(|(k, _)| k.as_str()).collect();
    keys.extend(input.tags.iter().map(|t| t.key.as_str()));
    keys.sort_unstable();
    keys.dedup();
    if keys.len() > MAX_TAGS {
        return Err(EcrError::TooManyTags(format!(
            "a repository holds at most {MAX_TAGS} tags"
        )));
    }
    let add: Vec<(String, String)> = input.tags.into_iter().map(|t| (t.key, t.value)).collect();
    call.state
        .registry
        .update_repository_tags(&repo, &add, &[])
        .await?;
    Ok(json!({}))
}

pub async fn untag(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<TagInput>,
) -> Result<Value, EcrError> {
    if let Some(bad) = input.tag_keys.iter().find(|k| !valid_tag_key(k)) {
        return Err(EcrError::InvalidTagParameter(format!(
            "invalid tag key {bad:?}"
        )));
    }
    call.state
        .registry
        .update_repository_tags(&repo, &[], &input.tag_keys)
        .await?;
    Ok(json!({}))
}

pub async fn list(
    call: &Call<'_>,
    Admitted { repo, .. }: Admitted<TagInput>,
) -> Result<Value, EcrError> {
    let record = call.state.registry.repository(&repo).await?;
    let tags: Vec<Value> = record
        .tags
        .iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    Ok(json!({ "tags": tags }))
}
