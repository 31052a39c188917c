//! Storage quotas: a repository (or every repository of a namespace pattern,
//! together) may hold at most so many bytes of distinct content. Checked when
//! content is about to be linked, before anything becomes visible. Concurrent
//! pushes into one quota may overshoot it by what is in flight at once.

use serde::{Deserialize, Serialize};

use super::{Registry, RegistryError, Result};
use crate::glob::glob_match;
use crate::oci::{Digest, RepoName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaScope {
    /// Each matching repository has its own limit.
    #[default]
    Repository,
    /// All matching repositories share one limit.
    Namespace,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Repository name pattern; `*` matches any characters, `/` included.
    pub repositories: String,
    pub max_bytes: u64,
    #[serde(default)]
    pub per: QuotaScope,
}

impl Registry {
    /// Refuses adding `size` bytes of `digest` to `repo` when that would take
    /// its quota over the limit; content already counted adds nothing.
    pub(super) async fn check_quota(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let Some(quota) = self
            .inner
            .limits
            .quotas
            .iter()
            .find(|q| glob_match(&q.repositories, repo.as_str()))
        else {
            return Ok(());
        };
        let pattern = match quota.per {
            QuotaScope::Repository => repo.as_str(),
            QuotaScope::Namespace => quota.repositories.as_str(),
        };
        let (used, counted) = self.inner.meta.quota_usage(pattern, digest).await?;
        if counted || used.saturating_add(size) <= quota.max_bytes {
            return Ok(());
        }
        Err(RegistryError::QuotaExceeded {
            scope: pattern.to_string(),
            limit: quota.max_bytes,
            used,
            adding: size,
        })
    }
}
