//! Repositories as things of their own: created with settings (as the ECR API
//! does), listed, deleted with everything in them.

use super::{Registry, RegistryError, RepositoryError, Result};
use crate::oci::RepoName;
use crate::storage::{Page, RepositoryDeletion, RepositoryRecord};

/// Settings a repository is created with.
#[derive(Debug, Clone, Default)]
pub struct RepositorySettings {
    pub tag_mutability: String,
    pub mutability_filters: Vec<String>,
    pub tags: Vec<(String, String)>,
}

impl Registry {
    pub async fn create_repository(
        &self,
        name: &RepoName,
        settings: RepositorySettings,
    ) -> Result<RepositoryRecord, RepositoryError> {
        let record = RepositoryRecord {
            name: name.clone(),
            created_at_ms: super::now_ms(),
            tag_mutability: settings.tag_mutability,
            mutability_filters: settings.mutability_filters,
            tags: settings.tags,
        };
        if !self.inner.meta.create_repository(&record).await? {
            return Err(RepositoryError::Exists(name.clone()));
        }
        Ok(record)
    }

    pub async fn repository(&self, name: &RepoName) -> Result<RepositoryRecord> {
        self.inner
            .meta
            .repository(name)
            .await?
            .ok_or_else(|| RegistryError::NameUnknown(name.clone()))
    }

    /// One page of repositories in name order, and whether more follow.
    pub async fn repositories(
        &self,
        last: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<RepositoryRecord>, bool)> {
        let mut repos = self
            .inner
            .meta
            .repositories(Page {
                last,
                limit: limit.saturating_add(1),
            })
            .await?;
        let more = repos.len() > limit as usize;
        repos.truncate(limit as usize);
        Ok((repos, more))
    }

    /// Deletes a repository; without `force` only when it holds no image.
    pub async fn delete_repository(
        &self,
        name: &RepoName,
        force: bool,
    ) -> Result<RepositoryRecord, RepositoryError> {
        let outcome = self.inner.meta.delete_repository(name, force).await?;
        self.inner.manifests.invalidate(name);
        match outcome {
            RepositoryDeletion::Deleted(record) => Ok(record),
            RepositoryDeletion::NotEmpty => Err(RepositoryError::NotEmpty(name.clone())),
            RepositoryDeletion::NotFound => Err(RegistryError::NameUnknown(name.clone()).into()),
        }
    }
}
