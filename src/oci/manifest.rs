//! Manifest and index documents: media types, parsing and the structural
//! checks the spec asks for before a manifest is accepted. Pure data.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest media type Wharf stores and serves.
pub const SUPPORTED: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// Layers of these kinds live elsewhere by design, so a manifest may reference them
/// without the blob being in the registry.
fn is_non_distributable(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.nondistributable.")
        || media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
}

/// A content descriptor as it appears inside manifests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
}

/// Whether a document lists blobs (an image manifest) or other manifests (an index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Index,
}

/// What the registry needs to know about an accepted manifest.
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    pub media_type: String,
    pub kind: Kind,
    /// Blobs that must exist in the repository (config and distributable layers).
    pub blobs: Vec<Digest>,
    /// Manifests an index points at; they must exist in the repository.
    pub children: Vec<Digest>,
    pub subject: Option<Descriptor>,
    /// `artifactType`, else the config media type: what the referrers API reports.
    pub artifact_type: Option<String>,
    pub annotations: Option<Value>,
    /// For an index: the platforms it lists (`os/architecture[/variant]`),
    /// distinct, in order, without `unknown/unknown` (attestation manifests).
    pub platforms: Vec<String>,
}

/// The platforms of an index's entries, read apart from the descriptors.
#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    manifests: Vec<RawEntry>,
}

#[derive(Deserialize)]
struct RawEntry {
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    variant: Option<String>,
}

/// The most platforms recorded for one index: enough for any real
/// multi-platform image, and a bound on what a push can make every listing
/// of its repository carry.
pub const MAX_PLATFORMS: usize = 32;
/// The longest platform name recorded (`os/architecture/variant`, bytes);
/// longer ones are left out.
pub const MAX_PLATFORM_NAME: usize = 64;

/// See [`ParsedManifest::platforms`]; an index whose platforms do not parse
/// has none; at most [`MAX_PLATFORMS`] names of at most [`MAX_PLATFORM_NAME`]
/// bytes are kept.
fn platforms(bytes: &[u8]) -> Vec<String> {
    let Ok(index) = serde_json::from_slice::<RawIndex>(bytes) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for p in index.manifests.into_iter().filter_map(|m| m.platform) {
        if p.os.is_empty()
            || p.architecture.is_empty()
            || (p.os == "unknown" && p.architecture == "unknown")
        {
            continue;
        }
        let mut name = format!("{}/{}", p.os, p.architecture);
        if let Some(v) = p.variant.filter(|v| !v.is_empty()) {
            name.push('/');
            name.push_str(&v);
        }
        // Names are stored space-separated: keep them free of spaces.
        let name = name.replace(char::is_whitespace, "_");
        if name.len() > MAX_PLATFORM_NAME || out.contains(&name) {
            continue;
        }
        out.push(name);
        if out.len() == MAX_PLATFORMS {
            break;
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("Docker schema 1 manifests are not supported; push schema 2 or OCI manifests")]
    Schema1,
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("media type {header:?} does not match the manifest's mediaType {body:?}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("manifest is not valid: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<Value>,
}

/// Strips parameters such as `; charset=utf-8` from a Content-Type value.
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Parses and checks a manifest; `content_type` is the request's Content-Type, if any.
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<ParsedManifest, ManifestError> {
    let header = content_type.map(essence).filter(|h| !h.is_empty());
    if matches!(header, Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED)) {
        return Err(ManifestError::Schema1);
    }
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid(e.to_string()))?;
    if raw.schema_version == Some(1)
        || matches!(
            raw.media_type.as_deref(),
            Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED)
        )
    {
        return Err(ManifestError::Schema1);
    }
    if raw.schema_version != Some(2) {
        return Err(ManifestError::Invalid("schemaVersion must be 2".into()));
    }
    let header = header.filter(|h| SUPPORTED.contains(h));
    let media_type = match (header, raw.media_type.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(ManifestError::MediaTypeMismatch {
                header: h.into(),
                body: b.into(),
            });
        }
        (Some(h), _) => h.to_string(),
        (None, Some(b)) if SUPPORTED.contains(&b) => b.to_string(),
        (None, Some(b)) => return Err(ManifestError::UnsupportedMediaType(b.into())),
        // OCI documents may omit mediaType; infer it from their shape.
        (None, None) if raw.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) if raw.config.is_some() => OCI_MANIFEST.to_string(),
        (None, None) => {
            return Err(ManifestError::Invalid(
                "cannot determine the media type".into(),
            ));
        }
    };
    let kind = if media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST {
        Kind::Index
    } else {
        Kind::Image
    };

    match kind {
        Kind::Image => {
            let config = raw.config.ok_or_else(|| {
                ManifestError::Invalid("an image manifest needs a config descriptor".into())
            })?;
            let layers = raw
                .layers
                .ok_or_else(|| ManifestError::Invalid("an image manifest needs layers".into()))?;
            if raw.manifests.is_some() {
                return Err(ManifestError::Invalid(
                    "an image manifest cannot list manifests".into(),
                ));
            }
            let mut blobs = vec![config.digest.clone()];
            blobs.extend(
                layers
                    .iter()
                    .filter(|l| !is_non_distributable(&l.media_type))
                    .map(|l| l.digest.clone()),
            );
            let artifact_type = raw.artifact_type.or(Some(config.media_type));
            Ok(ParsedManifest {
                media_type,
                kind,
                blobs,
                children: Vec::new(),
                subject: raw.subject,
                artifact_type,
                annotations: raw.annotations,
                platforms: Vec::new(),
            })
        }
        Kind::Index => {
            let manifests = raw
                .manifests
                .ok_or_else(|| ManifestError::Invalid("an index needs a manifests list".into()))?;
            if raw.config.is_some() || raw.layers.is_some() {
                return Err(ManifestError::Invalid(
                    "an index cannot have config or layers".into(),
                ));
            }
            Ok(ParsedManifest {
                media_type,
                kind,
                blobs: Vec::new(),
                children: manifests.into_iter().map(|m| m.digest).collect(),
                subject: raw.subject,
                artifact_type: raw.artifact_type,
                annotations: raw.annotations,
                platforms: platforms(bytes),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D}","size":0}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"{D}","size":0}}]{extra}}}"#
        )
    }

    #[test]
    fn image_manifest() {
        let m = parse(Some(OCI_MANIFEST), image("").as_bytes()).unwrap();
        assert_eq!(m.kind, Kind::Image);
        assert_eq!(
            m.blobs.len(),
            1,
            "non-distributable layers are not required"
        );
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn subject_and_artifact_type() {
        let extra = format!(
            r#","artifactType":"application/x-sig","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1}}"#
        );
        let m = parse(None, image(&extra).as_bytes()).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some("application/x-sig"));
        assert_eq!(m.subject.unwrap().digest.to_string(), D);
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            parse(Some(DOCKER_SCHEMA1_SIGNED), b"{}"),
            Err(ManifestError::Schema1)
        ));
        assert!(matches!(
            parse(None, br#"{"schemaVersion":1}"#),
            Err(ManifestError::Schema1)
        ));
        assert!(matches!(
            parse(Some(OCI_INDEX), image("").as_bytes()),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            parse(Some(OCI_MANIFEST), b"not json"),
            Err(ManifestError::Invalid(_))
        ));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":2}}]}}"#
        );
        let m = parse(None, index.as_bytes()).unwrap();
        assert_eq!((m.kind, m.children.len()), (Kind::Index, 1));
        assert!(m.platforms.is_empty());
    }

    #[test]
    fn index_platforms() {
        let entry = |platform: &str| {
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":2,"platform":{platform}}}"#
            )
        };
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{},{},{}]}}"#,
            entry(r#"{"os":"linux","architecture":"amd64"}"#),
            entry(r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#),
            entry(r#"{"os":"unknown","architecture":"unknown"}"#),
            entry(r#"{"os":"linux","architecture":"amd64"}"#),
        );
        let m = parse(None, index.as_bytes()).unwrap();
        assert_eq!(m.platforms, ["linux/amd64", "linux/arm64/v8"]);
    }

    #[test]
    fn index_platforms_are_bounded() {
        let long = "x".repeat(MAX_PLATFORM_NAME);
        let entries: Vec<String> = (0..100)
            .map(|i| {
                let arch = if i == 0 { long.clone() } else { format!("arch{i}") };
                format!(
                    r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":2,"platform":{{"os":"linux","architecture":"{arch}"}}}}"#
                )
            })
            .collect();
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            entries.join(",")
        );
        let m = parse(None, index.as_bytes()).unwrap();
        assert_eq!(m.platforms.len(), MAX_PLATFORMS);
        assert_eq!(m.platforms[0], "linux/arch1");
        assert!(m.platforms.iter().all(|p| p.len() <= MAX_PLATFORM_NAME));
    }
}
