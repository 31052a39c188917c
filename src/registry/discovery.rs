//! Content discovery: tag listing, the catalog and the referrers API.

use super::{Registry, RegistryError, Result};
use crate::oci::{Digest, RepoName};
use crate::storage::Page;

/// One page of tags or repository names, and whether more follow.
pub struct TagPage {
    pub items: Vec<String>,
    pub more: bool,
}

/// A manifest that names a subject, as the referrers index lists it.
pub struct Referrer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<serde_json::Value>,
}

/// Fetches one more than asked to learn whether another page exists.
fn paged(mut items: Vec<String>, limit: u32) -> TagPage {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    TagPage { items, more }
}

impl Registry {
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<TagPage> {
        let page = Page {
            last,
            limit: limit.saturating_add(1),
        };
        let tags = self
            .inner
            .meta
            .list_tags(repo, page)
            .await?
            .ok_or_else(|| RegistryError::NameUnknown(repo.clone()))?;
        Ok(paged(tags, limit))
    }

    pub async fn catalog(&self, last: Option<&str>, limit: u32) -> Result<TagPage> {
        let page = Page {
            last,
            limit: limit.saturating_add(1),
        };
        Ok(paged(self.inner.meta.list_repositories(page).await?, limit))
    }

    /// Manifests in `repo` whose subject is `subject`; never an error for an unknown subject.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let records = self
            .inner
            .meta
            .referrers(repo, subject, artifact_type)
            .await?;
        Ok(records
            .into_iter()
            .map(|r| Referrer {
                media_type: r.media_type,
                digest: r.digest,
                size: r.size,
                artifact_type: r.artifact_type,
                annotations: r.annotations.and_then(|a| serde_json::from_str(&a).ok()),
            })
            .collect())
    }
}
