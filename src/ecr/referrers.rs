//! ListImageReferrers: the referrers API (signatures, SBOMs...) in ECR's shape.

use serde::Deserialize;
use serde_json::{Value, json};

use super::images::{page_bounds, paged};
use super::{Admitted, Call, EcrError};
use crate::oci::Digest;

super::named_by_repository_name!(Input);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubjectId {
    image_digest: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    artifact_types: Vec<String>,
    artifact_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Input {
    repository_name: String,
    subject_id: SubjectId,
    #[serde(default)]
    filter: Filter,
    next_token: Option<String>,
    max_results: Option<u32>,
}

pub async fn list(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<Input>,
) -> Result<Value, EcrError> {
    call.state.registry.repository(&repo).await?;
    let subject: Digest = input.subject_id.image_digest.parse().map_err(|_| {
        EcrError::InvalidParameter(format!(
            "Invalid image digest {:?}",
            input.subject_id.image_digest
        ))
    })?;
    let (start, limit) = page_bounds(input.max_results, input.next_token.as_deref(), 20, 50)?;
    // Wharf keeps no archive: every stored referrer is ACTIVE.
    let active = match input.filter.artifact_status.as_deref() {
        None | Some("ACTIVE" | "ANY") => true,
        Some("ARCHIVED" | "ACTIVATING") => false,
        Some(other) => {
            return Err(EcrError::InvalidParameter(format!(
                "Invalid artifactStatus {other}"
            )));
        }
    };
    let mut referrers = if active {
        call.state.registry.referrers(&repo, &subject, None).await?
    } else {
        Vec::new()
    };
    let types = &input.filter.artifact_types;
    referrers.retain(|r| {
        types.is_empty() || r.artifact_type.as_ref().is_some_and(|t| types.contains(t))
    });
    referrers.sort_by_cached_key(|r| r.digest.to_string());
    let items = referrers
        .into_iter()
        .map(|r| {
            let mut item = json!({
                "digest": r.digest.to_string(),
                "mediaType": r.media_type,
                "size": r.size,
                "artifactStatus": "ACTIVE",
            });
            if let Some(t) = r.artifact_type {
                item["artifactType"] = t.into();
            }
            if let Some(a) = r.annotations {
                item["annotations"] = a;
            }
            item
        })
        .collect();
    Ok(paged(json!({}), "referrers", items, start, limit))
}
