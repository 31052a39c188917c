//! Layer plumbing: BatchCheckLayerAvailability, the Initiate/UploadLayerPart/
//! CompleteLayerUpload trio (on the same upload sessions as `/v2/`), and
//! GetDownloadUrlForLayer (a URL that needs no other credential for an hour).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Admitted, Call, EcrError};
use crate::auth::DOWNLOAD_TOKEN;
use crate::oci::{Digest, RepoName};
use crate::registry::{ChunkRange, RegistryError};

super::named_by_repository_name!(
    CompleteInput,
    DownloadInput,
    InitiateInput,
    LayersInput,
    PartInput
);

/// ECR's limits on layer parts.
const MAX_PART_BYTES: u64 = 20 * 1024 * 1024;
const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// The largest UploadLayerPart request: a whole part in base64 (the protocol
/// leaves no way to stream it), and room for the other fields.
pub(super) const MAX_PART_REQUEST_BYTES: usize =
    (MAX_PART_BYTES as usize).div_ceil(3) * 4 + 64 * 1024;
/// What InitiateLayerUpload advises clients to send per part.
const PART_SIZE: u64 = 10 * 1024 * 1024;
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(3600);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LayersInput {
    repository_name: String,
    layer_digests: Vec<String>,
}

/// BatchCheckLayerAvailability: which blobs the repository has.
pub async fn check(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<LayersInput>,
) -> Result<Value, EcrError> {
    call.state.registry.repository(&repo).await?;
    if input.layer_digests.is_empty() || input.layer_digests.len() > 100 {
        return Err(EcrError::InvalidParameter(
            "layerDigests takes 1 to 100 digests".into(),
        ));
    }
    let mut layers = Vec::new();
    let mut failures = Vec::new();
    for d in &input.layer_digests {
        let Ok(digest) = d.parse::<Digest>() else {
            failures.push(json!({ "layerDigest": d, "failureCode": "InvalidLayerDigest", "failureReason": "Invalid layer digest" }));
            continue;
        };
        match call.state.registry.stat_blob(&repo, &digest).await {
            Ok(size) => layers.push(json!({
                "layerDigest": d, "layerAvailability": "AVAILABLE", "layerSize": size,
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            })),
            Err(RegistryError::BlobUnknown(_)) => {
                layers.push(json!({ "layerDigest": d, "layerAvailability": "UNAVAILABLE" }))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json!({ "layers": layers, "failures": failures }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InitiateInput {
    repository_name: String,
}

pub async fn initiate(
    call: &Call<'_>,
    Admitted { repo, .. }: Admitted<InitiateInput>,
) -> Result<Value, EcrError> {
    let id = call.state.registry.start_upload(&repo).await?;
    Ok(json!({ "uploadId": id.to_string(), "partSize": PART_SIZE }))
}

fn upload_id(text: &str) -> Result<Uuid, EcrError> {
    text.parse()
        .map_err(|_| EcrError::UploadNotFound(format!("The upload with id '{text}' is not found")))
}

fn upload_error(e: RegistryError, id: &str) -> EcrError {
    match e {
        RegistryError::UploadUnknown => {
            EcrError::UploadNotFound(format!("The upload with id '{id}' is not found"))
        }
        RegistryError::ChunkOutOfOrder { size } => EcrError::InvalidLayerPart(format!(
            "The layer part is not the next part of upload '{id}'; lastValidByteReceived: {}",
            size as i64 - 1
        )),
        RegistryError::UploadInvalid(m) | RegistryError::SizeInvalid(m) => {
            EcrError::InvalidLayerPart(m)
        }
        other => other.into(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PartInput {
    repository_name: String,
    upload_id: String,
    part_first_byte: u64,
    part_last_byte: u64,
    layer_part_blob: String,
}

pub async fn upload_part(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<PartInput>,
) -> Result<Value, EcrError> {
    let id = upload_id(&input.upload_id)?;
    let part = STANDARD
        .decode(&input.layer_part_blob)
        .map_err(|_| EcrError::InvalidParameter("layerPartBlob is not base64".into()))?;
    let (first, last) = (input.part_first_byte, input.part_last_byte);
    if part.is_empty() || last < first || last - first + 1 != part.len() as u64 {
        return Err(EcrError::InvalidLayerPart(format!(
            "partFirstByte {first} and partLastByte {last} do not match the {} bytes sent",
            part.len()
        )));
    }
    if part.len() as u64 > MAX_PART_BYTES {
        return Err(EcrError::InvalidLayerPart(format!(
            "layer parts may hold at most {MAX_PART_BYTES} bytes"
        )));
    }
    let registry = &call.state.registry;
    let session = registry
        .session(&repo, id)
        .await
        .map_err(|e| upload_error(e, &input.upload_id))?;
    // Only a part that is followed by another is known not to be the last.
    if session.size > 0 && session.last_append < MIN_PART_BYTES {
        return Err(EcrError::LayerPartTooSmall(format!(
            "Layer parts other than the last must be at least {MIN_PART_BYTES} bytes"
        )));
    }
    let size = part.len() as u64;
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(part))]);
    let total = registry
        .append_upload(
            &repo,
            id,
            Some(ChunkRange {
                start: first,
                end: last,
            }),
            Some(size),
            body,
        )
        .await
        .map_err(|e| upload_error(e, &input.upload_id))?;
    Ok(json!({
        "registryId": call.state.settings.registry_id,
        "repositoryName": repo.as_str(),
        "uploadId": input.upload_id,
        "lastByteReceived": total - 1,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CompleteInput {
    repository_name: String,
    upload_id: String,
    layer_digests: Vec<String>,
}

pub async fn complete(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<CompleteInput>,
) -> Result<Value, EcrError> {
    let id = upload_id(&input.upload_id)?;
    let [digest] = input.layer_digests.as_slice() else {
        return Err(EcrError::InvalidParameter(
            "layerDigests must hold exactly one digest".into(),
        ));
    };
    let digest: Digest = digest
        .parse()
        .map_err(|_| EcrError::InvalidLayer(format!("Invalid layer digest {digest:?}")))?;
    let registry = &call.state.registry;
    let session = registry
        .session(&repo, id)
        .await
        .map_err(|e| upload_error(e, &input.upload_id))?;
    if session.size == 0 {
        return Err(EcrError::EmptyUpload(format!(
            "The upload with id '{}' has no layer parts",
            input.upload_id
        )));
    }
    if registry.stat_blob(&repo, &digest).await.is_ok() {
        registry
            .cancel_upload(&repo, id)
            .await
            .map_err(|e| upload_error(e, &input.upload_id))?;
        return Err(EcrError::LayerAlreadyExists(format!(
            "The layer {digest} already exists in the repository with name '{repo}'"
        )));
    }
    let empty = futures::stream::empty::<std::io::Result<Bytes>>();
    match registry
        .complete_upload(&repo, id, &digest, None, None, empty)
        .await
    {
        Ok(_) => Ok(json!({
            "registryId": call.state.settings.registry_id,
            "repositoryName": repo.as_str(),
            "uploadId": input.upload_id,
            "layerDigest": digest.to_string(),
        })),
        Err(RegistryError::DigestMismatch { expected, actual }) => Err(EcrError::InvalidLayer(
            format!("The layer digest {expected} does not match the uploaded content ({actual})"),
        )),
        Err(e) => Err(upload_error(e, &input.upload_id)),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DownloadInput {
    repository_name: String,
    layer_digest: String,
}

pub async fn download_url(
    call: &Call<'_>,
    Admitted { input, repo }: Admitted<DownloadInput>,
) -> Result<Value, EcrError> {
    call.state.registry.repository(&repo).await?;
    let digest: Digest = input.layer_digest.parse().map_err(|_| {
        EcrError::InvalidParameter(format!("Invalid layer digest {:?}", input.layer_digest))
    })?;
    let missing = || {
        EcrError::LayersNotFound(format!(
            "The layer {digest} does not exist in the repository with name '{repo}'"
        ))
    };
    match call.state.registry.stat_blob(&repo, &digest).await {
        Ok(_) => {}
        Err(RegistryError::BlobUnknown(_)) => return Err(missing()),
        Err(e) => return Err(e.into()),
    }
    let url = download_location(call, &repo, &digest)?;
    Ok(json!({ "downloadUrl": url, "layerDigest": digest.to_string() }))
}

fn download_location(
    call: &Call<'_>,
    repo: &RepoName,
    digest: &Digest,
) -> Result<String, EcrError> {
    let (token, _expires) = call
        .state
        .auth
        .tokens
        .issue_download(
            &call.principal.subject(),
            repo.as_str(),
            &digest.to_string(),
            DOWNLOAD_URL_TTL,
        )
        .map_err(|e| EcrError::from(crate::http::Fault::Internal(e.to_string())))?;
    Ok(format!(
        "{}://{}/v2/{repo}/blobs/{digest}?{DOWNLOAD_TOKEN}={token}",
        call.scheme, call.host
    ))
}
