//! Image operations: ListImages, DescribeImages, BatchGetImage,
//! BatchDeleteImage, PutImageTagMutability.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::repositories::{ExclusionFilter, epoch_seconds, mutability_settings};
use super::{Admitted, Call, EcrError};
use crate::notifications::{Action, Notice};
use crate::oci::manifest::{DOCKER_MANIFEST_LIST, OCI_INDEX};
use crate::oci::{Digest, Reference, RepoName, Tag};
use crate::registry::RegistryError;
use crate::storage::ImageRecord;

super::named_by_repository_name!(BatchInput, ListInput, MutabilityInput, PutImageInput);

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageId {
    #[serde(skip_serializing_if = "Option::is_none")]
    image_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_tag: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    tag_status: Option<String>,
}

impl ImageId {
    pub fn digest(&self) -> Option<&str> {
        self.image_digest.as_deref()
    }

    pub fn tag(&self) -> Option<&str> {
        self.image_tag.as_deref()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListInput {
    repository_name: String,
    #[serde(default)]
    filter: Filter,
    max_results: Option<u32>,
    next_token: Option<String>,
    image_ids: Option<Vec<ImageId>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BatchInput {
    repository_name: String,
    image_ids: Vec<ImageId>,
    accepted_media_types: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MutabilityInput {
    repository_name: String,
    image_tag_mutability: Option<String>,
    #[serde(default)]
    image_tag_mutability_exclusion_filters: Vec<ExclusionFilter>,
}

/// One per-image failure of a batch operation, with ECR's failure codes.
fn failure(id: &ImageId, code: &str, reason: String) -> Value {
    json!({ "imageId": id, "failureCode": code, "failureReason": reason })
}

/// Start and length of the page asked for; `maxResults` defaults to `default` and may not exceed `max`.
pub(super) fn page_bounds(
    max_results: Option<u32>,
    next_token: Option<&str>,
    default: u32,
    max: u32,
) -> Result<(usize, usize), EcrError> {
    let limit = max_results.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(EcrError::InvalidParameter(format!(
            "maxResults must be between 1 and {max}"
        )));
    }
    let start = match next_token {
        Some(t) => STANDARD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| EcrError::InvalidParameter("invalid nextToken".into()))?,
        None => 0,
    };
    Ok((start, limit as usize))
}

/// Slices one page out of `items` and adds `nextToken` when more follow.
pub(super) fn paged(
    mut output: Value,
    key: &str,
    items: Vec<Value>,
    start: usize,
    limit: usize,
) -> Value {
    // Saturating: a token near usize::MAX wrapped to a page back at the start.
    let end = start.saturating_add(limit).min(items.len());
    let page: Vec<Value> = items
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    output[key] = Value::Array(page);
    if end < items.len() {
        output["nextToken"] = STANDARD.encode(end.to_string()).into();
    }
    output
}

fn tag_status_matches(filter: &Filter, image: &ImageRecord) -> Result<bool, EcrError> {
    Ok(match filter.tag_status.as_deref() {
        None | Some("ANY") => true,
        Some("TAGGED") => !image.tags.is_empty(),
        Some("UNTAGGED") => image.tags.is_empty(),
        Some(other) => {
            return Err(EcrError::InvalidParameter(format!(
                "invalid tagStatus {other:?}"
            )));
        }
    })
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// An index's size is the largest of its children's (as ECR reports it).
fn image_size(image: &ImageRecord, all: &[ImageRecord]) -> u64 {
    if is_index(&image.manifest.media_type) {
        all.iter()
            .filter(|i| image.children.contains(&i.manifest.digest))
            .map(|i| i.blob_bytes)
            .max()
            .unwrap_or(0)
    } else {
        image.blob_bytes
    }
}

/// Finds the image an identifier names; `Err` holds the failure code and reason.
fn find<'a>(
    images: &'a [ImageRecord],
    id: &ImageId,
    repo: &RepoName,
) -> Result<&'a ImageRecord, (&'static str, String)> {
    let not_found = || {
        (
            "ImageNotFound",
            format!("Requested image not found in repository {repo}"),
        )
    };
    match (&id.image_digest, &id.image_tag) {
        (None, None) => Err((
            "MissingDigestAndTag",
            "Either imageDigest or imageTag must be given".into(),
        )),
        (Some(d), tag) => {
            let digest: Digest = d
                .parse()
                .map_err(|_| ("InvalidImageDigest", format!("Invalid image digest {d:?}")))?;
            let image = images
                .iter()
                .find(|i| i.manifest.digest == digest)
                .ok_or_else(not_found)?;
            match tag {
                Some(t) if !image.tags.contains(t) => Err((
                    "ImageTagDoesNotMatchDigest",
                    format!("Tag {t} does not point at {d}"),
                )),
                _ => Ok(image),
            }
        }
        (None, Some(t)) => {
            t.parse::<Tag>()
                .map_err(|_| ("InvalidImageTag", format!("Invalid image tag {t:?}")))?;
            images
                .iter()
                .find(|i| i.tags.contains(t))
                .ok_or_else(not_found)
        }
    }
}

pub async fn list(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<ListInput>,
) -> Result<Value, EcrError> {
    let (start, limit) = page_bounds(input.max_results, input.next_token.as_deref(), 100, 1000)?;
    let images = call.state.registry.images(&repo).await?;
    let mut ids = Vec::new();
    for image in &images {
        if !tag_status_matches(&input.filter, image)? {
            continue;
        }
        let digest = image.manifest.digest.to_string();
        if image.tags.is_empty() {
            ids.push(json!({ "imageDigest": digest }));
        }
        for tag in &image.tags {
            ids.push(json!({ "imageDigest": digest, "imageTag": tag }));
        }
    }
    Ok(paged(json!({}), "imageIds", ids, start, limit))
}

pub async fn describe(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<ListInput>,
) -> Result<Value, EcrError> {
    let images = call.state.registry.images(&repo).await?;
    let selected: Vec<&ImageRecord> = match &input.image_ids {
        Some(ids) => {
            let mut out = Vec::new();
            for id in ids {
                let image = find(&images, id, &repo).map_err(|(_, reason)| {
                    EcrError::ImageNotFound(format!(
                        "The image with imageId {} does not exist within the repository with name '{repo}' \
                         in the registry with id '{}' ({reason})",
                        serde_json::to_string(id).unwrap_or_default(),
                        call.state.settings.registry_id
                    ))
                })?;
                if !out
                    .iter()
                    .any(|i: &&ImageRecord| i.manifest.digest == image.manifest.digest)
                {
                    out.push(image);
                }
            }
            out
        }
        None => {
            let mut out = Vec::new();
            for image in &images {
                if tag_status_matches(&input.filter, image)? {
                    out.push(image);
                }
            }
            out
        }
    };
    let details: Vec<Value> = selected
        .iter()
        .map(|image| {
            let m = &image.manifest;
            let mut d = json!({
                "registryId": call.state.settings.registry_id,
                "repositoryName": repo.as_str(),
                "imageDigest": m.digest.to_string(),
                "imageSizeInBytes": image_size(image, &images),
                "imagePushedAt": epoch_seconds(m.pushed_at_ms),
                "imageManifestMediaType": m.media_type,
                "imageStatus": "ACTIVE",
            });
            if !image.tags.is_empty() {
                d["imageTags"] = json!(image.tags);
            }
            if let Some(t) = &m.artifact_type {
                d["artifactMediaType"] = t.clone().into();
            }
            if let Some(s) = &image.subject {
                d["subjectManifestDigest"] = s.to_string().into();
            }
            d
        })
        .collect();
    let (start, limit) = page_bounds(input.max_results, input.next_token.as_deref(), 100, 1000)?;
    Ok(paged(json!({}), "imageDetails", details, start, limit))
}

fn check_batch(ids: &[ImageId]) -> Result<(), EcrError> {
    if ids.is_empty() || ids.len() > 100 {
        return Err(EcrError::InvalidParameter(
            "imageIds takes 1 to 100 identifiers".into(),
        ));
    }
    Ok(())
}

pub async fn batch_get(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<BatchInput>,
) -> Result<Value, EcrError> {
    check_batch(&input.image_ids)?;
    let images = call.state.registry.images(&repo).await?;
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for id in &input.image_ids {
        let image = match find(&images, id, &repo) {
            Ok(image) => image,
            Err((code, reason)) => {
                failures.push(failure(id, code, reason));
                continue;
            }
        };
        let media_type = &image.manifest.media_type;
        if let Some(accepted) = &input.accepted_media_types
            && !accepted.iter().any(|a| a == media_type)
        {
            failures.push(failure(
                id,
                "UnsupportedImageType",
                format!("The image is a {media_type}"),
            ));
            continue;
        }
        let read = call
            .state
            .registry
            .get_manifest(&repo, &Reference::Digest(image.manifest.digest.clone()))
            .await?;
        let manifest = String::from_utf8(read.bytes.to_vec())
            .map_err(|e| EcrError::from(crate::http::Fault::Internal(e.to_string())))?;
        found.push(json!({
            "registryId": call.state.settings.registry_id,
            "repositoryName": repo.as_str(),
            "imageId": { "imageDigest": image.manifest.digest.to_string(), "imageTag": id.image_tag },
            "imageManifest": manifest,
            "imageManifestMediaType": media_type,
        }));
    }
    Ok(json!({ "images": found, "failures": failures }))
}

pub async fn batch_delete(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<BatchInput>,
) -> Result<Value, EcrError> {
    check_batch(&input.image_ids)?;
    let registry = &call.state.registry;
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for id in &input.image_ids {
        // Each deletion changes what the next one sees (the last tag of an image).
        let images = registry.images(&repo).await?;
        let image = match find(&images, id, &repo) {
            Ok(image) => image,
            Err((code, reason)) => {
                failures.push(failure(id, code, reason));
                continue;
            }
        };
        let digest = image.manifest.digest.clone();
        let outcome = match (&id.image_digest, &id.image_tag) {
            // `find` has checked that the tag parses.
            (None, Some(tag)) => match tag.parse::<Tag>() {
                Ok(tag) => registry.untag(&repo, &tag, &images).await.map(|_| true),
                Err(e) => Err(RegistryError::ManifestInvalid(e.to_string())),
            },
            _ => registry.delete_image(&repo, &digest, &images).await,
        };
        match outcome {
            Ok(true) => {
                call.notice(Notice {
                    action: Action::Delete,
                    repository: repo.to_string(),
                    media_type: None,
                    digest: id.image_tag.is_none().then(|| digest.to_string()),
                    size: None,
                    tag: id.image_tag.clone(),
                });
                deleted.push(json!({ "imageDigest": digest.to_string(), "imageTag": id.image_tag }))
            }
            Ok(false) => failures.push(failure(
                id,
                "ImageReferencedByManifestList",
                "The image is listed by an image index; delete the index first".into(),
            )),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json!({ "imageIds": deleted, "failures": failures }))
}

pub async fn put_tag_mutability(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<MutabilityInput>,
) -> Result<Value, EcrError> {
    let (mutability, filters) = mutability_settings(
        input.image_tag_mutability,
        input.image_tag_mutability_exclusion_filters,
    )?;
    call.state
        .registry
        .set_tag_mutability(&repo, &mutability, &filters)
        .await?;
    let mut output = json!({
        "registryId": call.state.settings.registry_id,
        "repositoryName": repo.as_str(),
        "imageTagMutability": mutability,
    });
    if !filters.is_empty() {
        output["imageTagMutabilityExclusionFilters"] = filters
            .iter()
            .map(|f| json!({ "filterType": "WILDCARD", "filter": f }))
            .collect();
    }
    Ok(output)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PutImageInput {
    repository_name: String,
    image_manifest: String,
    image_manifest_media_type: Option<String>,
    image_tag: Option<String>,
    image_digest: Option<String>,
}

/// PutImage: a manifest (and optionally a tag) for blobs that are already there.
pub async fn put(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<PutImageInput>,
) -> Result<Value, EcrError> {
    let registry = &call.state.registry;
    // ECR never creates repositories on PutImage.
    registry.repository(&repo).await?;
    let bytes = bytes::Bytes::from(input.image_manifest.clone().into_bytes());
    let digest = Digest::compute(crate::oci::Algorithm::Sha256, &bytes);
    if let Some(given) = &input.image_digest
        && given != &digest.to_string()
    {
        return Err(EcrError::ImageDigestDoesNotMatch(format!(
            "Invalid parameter at 'imageDigest': the manifest hashes to {digest}, not {given}"
        )));
    }
    let tag = input
        .image_tag
        .as_deref()
        .map(|t| {
            t.parse::<Tag>()
                .map_err(|e| EcrError::InvalidParameter(e.to_string()))
        })
        .transpose()?;
    let images = registry.images(&repo).await?;
    let existing = images.iter().find(|i| i.manifest.digest == digest);
    let already = match (&tag, existing) {
        (Some(t), Some(image)) => image.tags.iter().any(|x| x == t.as_str()),
        (None, Some(_)) => true,
        _ => false,
    };
    if already {
        return Err(EcrError::ImageAlreadyExists(format!(
            "Image with digest '{digest}'{} already exists in the repository with name '{repo}'",
            tag.as_ref()
                .map(|t| format!(" and tag '{t}'"))
                .unwrap_or_default()
        )));
    }
    let reference = match &tag {
        Some(t) => Reference::Tag(t.clone()),
        None => Reference::Digest(digest.clone()),
    };
    let media_type = input.image_manifest_media_type.as_deref();
    let pushed = registry.put_manifest(&repo, &reference, &[], media_type, bytes).await.map_err(|e| match e {
        RegistryError::TagImmutable(t) => EcrError::ImageTagAlreadyExists(format!(
            "The image tag '{t}' already exists in the '{repo}' repository and cannot be overwritten because the tag is immutable."
        )),
        RegistryError::ManifestBlobUnknown(missing) => {
            let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
            if media_type.is_some_and(is_index) || input.image_manifest.contains("\"manifests\"") {
                EcrError::ReferencedImagesNotFound(format!("Some of the referenced images were not found: {}", list.join(", ")))
            } else {
                EcrError::LayersNotFound(format!("Layers were not found: {}", list.join(", ")))
            }
        }
        RegistryError::ManifestInvalid(m) => EcrError::InvalidParameter(m),
        other => other.into(),
    })?;
    let record = registry
        .stat_manifest(&repo, &Reference::Digest(pushed.digest.clone()))
        .await?;
    call.notice(Notice {
        action: Action::Push,
        repository: repo.to_string(),
        media_type: Some(record.media_type.clone()),
        digest: Some(record.digest.to_string()),
        size: Some(record.size),
        tag: tag.as_ref().map(ToString::to_string),
    });
    Ok(json!({
        "image": {
            "registryId": call.state.settings.registry_id,
            "repositoryName": repo.as_str(),
            "imageId": ImageId { image_digest: Some(pushed.digest.to_string()), image_tag: input.image_tag },
            "imageManifest": input.image_manifest,
            "imageManifestMediaType": record.media_type,
        }
    }))
}
