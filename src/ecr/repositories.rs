//! Repository operations and GetAuthorizationToken.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admitted, Call, EcrError};
use crate::oci::RepoName;
use crate::registry::RepositorySettings;
use crate::storage::RepositoryRecord;

super::named_by_repository_name!(CreateInput, DeleteInput);

/// ECR's GetAuthorizationToken lifetime.
const LOGIN_TTL: Duration = Duration::from_secs(12 * 3600);
const MUTABILITIES: [&str; 4] = [
    "MUTABLE",
    "IMMUTABLE",
    "IMMUTABLE_WITH_EXCLUSION",
    "MUTABLE_WITH_EXCLUSION",
];
pub(super) const MAX_TAGS: usize = 50;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ResourceTag {
    pub key: String,
    pub value: String,
}

impl ResourceTag {
    /// ECR's limits: keys 1 to 128 characters, values up to 256, both of
    /// AWS's tag characters.
    pub fn is_valid(&self) -> bool {
        valid_tag_key(&self.key) && self.value.chars().count() <= 256 && tag_chars(&self.value)
    }
}

/// AWS's tag alphabet (`[\p{L}\p{Z}\p{N}_.:/=+\-@]*`): letters, digits,
/// spaces and `_.:/=+-@`. Control characters (NUL, which PostgreSQL refuses
/// in text) are not among them.
fn tag_chars(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
    })
}

/// A tag key: 1 to 128 of AWS's tag characters.
pub fn valid_tag_key(key: &str) -> bool {
    (1..=128).contains(&key.chars().count()) && tag_chars(key)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExclusionFilter {
    filter_type: String,
    filter: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateInput {
    repository_name: String,
    #[serde(default)]
    tags: Vec<ResourceTag>,
    image_tag_mutability: Option<String>,
    #[serde(default)]
    image_tag_mutability_exclusion_filters: Vec<ExclusionFilter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeInput {
    repository_names: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeleteInput {
    repository_name: String,
    #[serde(default)]
    force: bool,
}

/// ECR names are the OCI grammar, 2 to 256 characters.
pub(super) fn repo_name(name: &str) -> Result<RepoName, EcrError> {
    let invalid = || {
        EcrError::InvalidParameter(format!(
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression \
             '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*' and length 2-256' ({name:?})"
        ))
    };
    if name.len() < 2 {
        return Err(invalid());
    }
    name.parse().map_err(|_| invalid())
}

/// Checks a tag mutability setting and its exclusion filters (1 to 5, only
/// with the `*_WITH_EXCLUSION` settings); returns the setting and the patterns.
pub(super) fn mutability_settings(
    mutability: Option<String>,
    filters: Vec<ExclusionFilter>,
) -> Result<(String, Vec<String>), EcrError> {
    let mutability = mutability.unwrap_or_else(|| "MUTABLE".into());
    if !MUTABILITIES.contains(&mutability.as_str()) {
        return Err(EcrError::InvalidParameter(format!(
            "invalid imageTagMutability {mutability:?}"
        )));
    }
    let with_exclusion = mutability.ends_with("_WITH_EXCLUSION");
    if with_exclusion == filters.is_empty() || filters.len() > 5 {
        return Err(EcrError::InvalidParameter(
            "imageTagMutabilityExclusionFilters (1 to 5) go with, and only with, the *_WITH_EXCLUSION settings".into(),
        ));
    }
    if let Some(bad) = filters
        .iter()
        .find(|f| f.filter_type != "WILDCARD" || !valid_filter(&f.filter))
    {
        return Err(EcrError::InvalidParameter(format!(
            "invalid exclusion filter {:?}",
            bad.filter
        )));
    }
    Ok((mutability, filters.into_iter().map(|f| f.filter).collect()))
}

fn valid_filter(f: &str) -> bool {
    (1..=128).contains(&f.len())
        && f.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._*-".contains(&b))
}

pub(super) fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn repository_json(call: &Call<'_>, r: &RepositoryRecord) -> Value {
    let mut v = json!({
        "repositoryArn": call.repository_arn(&r.name),
        "registryId": call.state.settings.registry_id,
        "repositoryName": r.name.as_str(),
        "repositoryUri": format!("{}/{}", call.host, r.name),
        "createdAt": epoch_seconds(r.created_at_ms),
        "imageTagMutability": r.tag_mutability,
        "imageScanningConfiguration": { "scanOnPush": false },
        "encryptionConfiguration": { "encryptionType": "AES256" },
    });
    if !r.mutability_filters.is_empty() {
        v["imageTagMutabilityExclusionFilters"] = r
            .mutability_filters
            .iter()
            .map(|f| json!({ "filterType": "WILDCARD", "filter": f }))
            .collect();
    }
    v
}

pub async fn create(
    call: &Call<'_>,
    Admitted { input, repo: name }: Admitted<CreateInput>,
) -> Result<Value, EcrError> {
    let (mutability, filters) = mutability_settings(
        input.image_tag_mutability,
        input.image_tag_mutability_exclusion_filters,
    )?;
    if input.tags.len() > MAX_TAGS {
        return Err(EcrError::TooManyTags(format!("at most {MAX_TAGS} tags")));
    }
    if let Some(bad) = input.tags.iter().find(|t| !t.is_valid()) {
        return Err(EcrError::InvalidTagParameter(format!(
            "invalid tag key {:?}",
            bad.key
        )));
    }
    let settings = RepositorySettings {
        tag_mutability: mutability,
        mutability_filters: filters,
        tags: input.tags.into_iter().map(|t| (t.key, t.value)).collect(),
    };
    let record = call
        .state
        .registry
        .create_repository(&name, settings)
        .await?;
    Ok(json!({ "repository": repository_json(call, &record) }))
}

pub async fn describe(call: &Call<'_>) -> Result<Value, EcrError> {
    let input: DescribeInput = call.input()?;
    if let Some(names) = input.repository_names {
        if input.next_token.is_some() || input.max_results.is_some() {
            return Err(EcrError::InvalidParameter(
                "maxResults and nextToken cannot be used with repositoryNames".into(),
            ));
        }
        if names.is_empty() || names.len() > 100 {
            return Err(EcrError::InvalidParameter(
                "repositoryNames takes 1 to 100 names".into(),
            ));
        }
        let mut out = Vec::new();
        for name in names {
            let name = repo_name(&name)?;
            call.require(&name).await?;
            out.push(repository_json(
                call,
                &call.state.registry.repository(&name).await?,
            ));
        }
        return Ok(json!({ "repositories": out }));
    }
    let limit = input.max_results.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(EcrError::InvalidParameter(
            "maxResults must be between 1 and 1000".into(),
        ));
    }
    let last = match input.next_token {
        Some(token) => Some(
            STANDARD
                .decode(&token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| EcrError::InvalidParameter("invalid nextToken".into()))?,
        ),
        None => None,
    };
    // Only repositories the caller may pull are listed; a page holds up to `limit` of those.
    let mut out = Vec::new();
    let mut cursor = last;
    let mut remaining = true;
    while remaining && out.len() < limit as usize {
        let (page, more) = call
            .state
            .registry
            .repositories(cursor.as_deref(), limit)
            .await?;
        let count = page.len();
        remaining = more;
        for (i, r) in page.into_iter().enumerate() {
            cursor = Some(r.name.to_string());
            if call.may(&r.name).await? {
                out.push(repository_json(call, &r));
            }
            if out.len() == limit as usize {
                remaining = more || i + 1 < count;
                break;
            }
        }
    }
    let mut output = json!({ "repositories": out });
    if let Some(c) = cursor.filter(|_| remaining) {
        output["nextToken"] = STANDARD.encode(c).into();
    }
    Ok(output)
}

pub async fn delete(
    call: &Call<'_>,
    Admitted { input, repo: name }: Admitted<DeleteInput>,
) -> Result<Value, EcrError> {
    let record = call
        .state
        .registry
        .delete_repository(&name, input.force)
        .await?;
    Ok(json!({ "repository": repository_json(call, &record) }))
}

/// DescribeRegistry: this registry's id; Wharf does not replicate.
pub async fn describe_registry(call: &Call<'_>) -> Result<Value, EcrError> {
    Ok(json!({
        "registryId": call.state.settings.registry_id,
        "replicationConfiguration": { "rules": [] },
    }))
}

/// A base64 `AWS:<password>` valid for 12 hours, usable with `docker login -u AWS`.
pub async fn authorization_token(call: &Call<'_>, name: &str) -> Result<Value, EcrError> {
    // Bound to the user's credential generation: a new password, removal or a
    // revoked access key ends it before its 12 hours are up.
    let generation = call.state.auth.login.generation(name).await?;
    let (password, expires) = call
        .state
        .auth
        .tokens
        .issue_login_password(name, generation, LOGIN_TTL)
        .map_err(|e| EcrError::from(crate::http::Fault::Internal(e.to_string())))?;
    let expires_at = expires
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(json!({
        "authorizationData": [{
            "authorizationToken": STANDARD.encode(format!("AWS:{password}")),
            "expiresAt": expires_at,
            "proxyEndpoint": format!("{}://{}", call.scheme, call.host),
        }]
    }))
}

#[cfg(test)]
mod tag_tests {
    use super::*;

    #[test]
    fn tag_keys_use_aws_characters() {
        for good in ["env", "team:app/x=1+2-3@4", "Größe", "a b"] {
            assert!(valid_tag_key(good), "{good:?}");
        }
        for bad in ["", "\0", "a\tb", "semi;colon", &"k".repeat(129)] {
            assert!(!valid_tag_key(bad), "{bad:?}");
        }
    }
}
