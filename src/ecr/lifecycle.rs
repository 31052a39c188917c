//! Lifecycle policy operations: Put/Get/DeleteLifecyclePolicy and the
//! preview pair. Evaluation itself lives in the registry.

use serde::Deserialize;
use serde_json::{Value, json};

use super::images::ImageId;
use super::repositories::epoch_seconds;
use super::{Admitted, Call, EcrError};

super::named_by_repository_name!(PolicyInput, PreviewInput);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PolicyInput {
    repository_name: String,
    lifecycle_policy_text: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PreviewFilter {
    tag_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PreviewInput {
    repository_name: String,
    image_ids: Option<Vec<ImageId>>,
    next_token: Option<String>,
    max_results: Option<u32>,
    #[serde(default)]
    filter: PreviewFilter,
}

pub async fn put(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<PolicyInput>,
) -> Result<Value, EcrError> {
    let text = input
        .lifecycle_policy_text
        .ok_or_else(|| EcrError::InvalidParameter("lifecyclePolicyText is required".into()))?;
    call.state
        .registry
        .put_lifecycle_policy(&repo, &text)
        .await?;
    Ok(json!({
        "registryId": call.state.settings.registry_id,
        "repositoryName": repo.as_str(),
        "lifecyclePolicyText": text,
    }))
}

fn policy_output(call: &Call<'_>, repo: &str, record: &crate::storage::LifecycleRecord) -> Value {
    let mut out = json!({
        "registryId": call.state.settings.registry_id,
        "repositoryName": repo,
        "lifecyclePolicyText": record.text,
    });
    if let Some(at) = record.last_evaluated_at_ms {
        out["lastEvaluatedAt"] = epoch_seconds(at).into();
    }
    out
}

pub async fn get(
    call: &Call<'_>,
    Admitted { repo, .. }: Admitted<PolicyInput>,
) -> Result<Value, EcrError> {
    let record = call.state.registry.lifecycle_policy(&repo).await?;
    Ok(policy_output(call, repo.as_str(), &record))
}

pub async fn delete(
    call: &Call<'_>,
    Admitted { repo, .. }: Admitted<PolicyInput>,
) -> Result<Value, EcrError> {
    let record = call.state.registry.delete_lifecycle_policy(&repo).await?;
    Ok(policy_output(call, repo.as_str(), &record))
}

pub async fn start_preview(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<PolicyInput>,
) -> Result<Value, EcrError> {
    let preview = call
        .state
        .registry
        .preview_lifecycle(&repo, input.lifecycle_policy_text.as_deref())
        .await?;
    Ok(json!({
        "registryId": call.state.settings.registry_id,
        "repositoryName": repo.as_str(),
        "lifecyclePolicyText": preview.text,
        "status": preview.status,
    }))
}

pub async fn get_preview(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<PreviewInput>,
) -> Result<Value, EcrError> {
    let preview = call.state.registry.lifecycle_preview(&repo).await?;
    let results: Vec<Value> = serde_json::from_str(&preview.results)
        .map_err(|e| EcrError::from(crate::http::Fault::Internal(e.to_string())))?;
    let wanted = |r: &Value| {
        let tags = r["tags"].as_array().map_or(0, Vec::len);
        let status_ok = match input.filter.tag_status.as_deref() {
            Some("TAGGED") => tags > 0,
            Some("UNTAGGED") => tags == 0,
            _ => true,
        };
        let id_ok = input.image_ids.as_ref().is_none_or(|ids| {
            ids.iter().any(|id| {
                id.digest().is_some_and(|d| r["digest"] == d)
                    || id.tag().is_some_and(|t| {
                        r["tags"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x == t))
                    })
            })
        });
        status_ok && id_ok
    };
    let selected: Vec<Value> = results
        .iter()
        .filter(|r| wanted(r))
        .map(|r| {
            let mut v = json!({
                "imageDigest": r["digest"],
                "imagePushedAt": epoch_seconds(r["pushed_at_ms"].as_i64().unwrap_or(0)),
                "action": { "type": "EXPIRE" },
                "appliedRulePriority": r["rule_priority"],
            });
            if r["tags"].as_array().is_some_and(|a| !a.is_empty()) {
                v["imageTags"] = r["tags"].clone();
            }
            v
        })
        .collect();
    let limit = input.max_results.unwrap_or(100);
    if !(1..=100).contains(&limit) {
        return Err(EcrError::InvalidParameter(
            "maxResults must be between 1 and 100".into(),
        ));
    }
    let start: usize = match &input.next_token {
        Some(t) => t
            .parse()
            .map_err(|_| EcrError::InvalidParameter("invalid nextToken".into()))?,
        None => 0,
    };
    // Saturating: a token near usize::MAX wrapped to a page back at the start.
    let end = start.saturating_add(limit as usize).min(selected.len());
    let mut out = json!({
        "registryId": call.state.settings.registry_id,
        "repositoryName": repo.as_str(),
        "lifecyclePolicyText": preview.text,
        "status": preview.status,
        "previewResults": selected.get(start..end).map(<[Value]>::to_vec).unwrap_or_default(),
        "summary": { "expiringImageTotalCount": results.len() },
    });
    if end < selected.len() {
        out["nextToken"] = end.to_string().into();
    }
    Ok(out)
}
