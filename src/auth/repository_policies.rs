//! Stored repository policies, parsed once and cached briefly: every Basic
//! `/v2/` request and every token request consults them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::iam::{InvalidPolicy, RepositoryPolicy};
use crate::oci::RepoName;
use crate::storage::{MetadataError, MetadataStore};

/// Other replicas' policy changes are seen within this time; this process's own at once.
const CACHE_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum PolicyStoreError {
    #[error(transparent)]
    Invalid(#[from] InvalidPolicy),
    #[error("repository {0} does not exist")]
    NoRepository(RepoName),
    #[error(transparent)]
    Store(#[from] MetadataError),
}

/// When it was read, the policy, and the length of its text (its weight).
type Cached = (Instant, Option<Arc<RepositoryPolicy>>, usize);

/// Memory for cached policies: documents run to 10 KiB, so counting entries
/// would not bound it.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// Weighs a cached policy by the length of its text, twice over for the
/// parsed form, plus the key and the entry's bookkeeping.
#[derive(Clone)]
struct PolicyWeight;

impl quick_cache::Weighter<RepoName, Cached> for PolicyWeight {
    fn weight(&self, repo: &RepoName, (_, _, text): &Cached) -> u64 {
        (repo.as_str().len() + 2 * text) as u64 + 128
    }
}

pub struct RepositoryPolicies {
    store: Arc<dyn MetadataStore>,
    registry_id: String,
    cache: quick_cache::sync::Cache<RepoName, Cached, PolicyWeight>,
}

impl RepositoryPolicies {
    pub fn new(store: Arc<dyn MetadataStore>, registry_id: String) -> Self {
        Self {
            store,
            registry_id,
            cache: quick_cache::sync::Cache::with_weighter(10_000, CACHE_BYTES, PolicyWeight),
        }
    }

    pub fn parse(&self, text: &str) -> Result<RepositoryPolicy, InvalidPolicy> {
        RepositoryPolicy::parse(text, &self.registry_id)
    }

    /// The repository's policy, if it has one.
    pub async fn get(
        &self,
        repo: &RepoName,
    ) -> Result<Option<Arc<RepositoryPolicy>>, MetadataError> {
        if let Some((at, policy, _)) = self.cache.get(repo)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(policy);
        }
        let text = self.store.repository_policy(repo).await?;
        let weight = text.as_ref().map_or(0, String::len);
        // Stored documents were validated when set.
        let policy = text.and_then(|text| self.parsed(repo, &text));
        self.cache
            .insert(repo.clone(), (Instant::now(), policy.clone(), weight));
        Ok(policy)
    }

    /// Reads the policies of `repos` not cached lately, in one query, so
    /// that [`get`](Self::get) finds each of them cached (a page that
    /// authorizes many repositories costs one query, not one per row).
    pub async fn prefetch(&self, repos: &[RepoName]) -> Result<(), MetadataError> {
        let stale: Vec<RepoName> = repos
            .iter()
            .filter(|r| {
                self.cache
                    .get(*r)
                    .is_none_or(|(at, _, _)| at.elapsed() >= CACHE_TTL)
            })
            .cloned()
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let mut texts: std::collections::HashMap<RepoName, String> = self
            .store
            .repository_policies(&stale)
            .await?
            .into_iter()
            .collect();
        let now = Instant::now();
        for repo in stale {
            let text = texts.remove(&repo);
            let weight = text.as_ref().map_or(0, String::len);
            let policy = text.and_then(|text| self.parsed(&repo, &text));
            self.cache.insert(repo, (now, policy, weight));
        }
        Ok(())
    }

    /// A stored document, parsed; one that no longer parses (written by a
    /// newer Wharf) is ignored, loudly.
    fn parsed(&self, repo: &RepoName, text: &str) -> Option<Arc<RepositoryPolicy>> {
        match self.parse(text) {
            Ok(policy) => Some(Arc::new(policy)),
            Err(e) => {
                tracing::warn!(repository = %repo, error = %e, "ignoring stored repository policy");
                None
            }
        }
    }

    /// The stored text of the repository's policy.
    pub async fn text(&self, repo: &RepoName) -> Result<Option<String>, MetadataError> {
        self.store.repository_policy(repo).await
    }

    /// Validates and stores (`Some`) or deletes (`None`) a policy.
    pub async fn set(&self, repo: &RepoName, text: Option<&str>) -> Result<(), PolicyStoreError> {
        if let Some(text) = text {
            self.parse(text)?;
        }
        let found = self.store.set_repository_policy(repo, text).await?;
        self.cache.remove(repo);
        if found {
            Ok(())
        } else {
            Err(PolicyStoreError::NoRepository(repo.clone()))
        }
    }
}
