//! Images as the ECR API sees them: manifests with their tags and sizes,
//! untagging, deleting, and tag mutability settings.

use super::{Registry, RegistryError, Result};
use crate::oci::{Digest, Reference, RepoName, Tag};
use crate::storage::ImageRecord;

impl Registry {
    /// Every image of an existing repository.
    pub async fn images(&self, repo: &RepoName) -> Result<Vec<ImageRecord>> {
        self.repository(repo).await?;
        Ok(self.inner.meta.images(repo).await?)
    }

    pub async fn set_tag_mutability(
        &self,
        repo: &RepoName,
        mutability: &str,
        filters: &[String],
    ) -> Result<()> {
        if self
            .inner
            .meta
            .set_tag_mutability(repo, mutability, filters)
            .await?
        {
            Ok(())
        } else {
            Err(RegistryError::NameUnknown(repo.clone()))
        }
    }

    pub async fn update_repository_tags(
        &self,
        repo: &RepoName,
        add: &[(String, String)],
        remove: &[String],
    ) -> Result<()> {
        if self
            .inner
            .meta
            .update_repository_tags(repo, add, remove)
            .await?
        {
            Ok(())
        } else {
            Err(RegistryError::NameUnknown(repo.clone()))
        }
    }

    /// Removes a tag; when it was the image's last tag and no index lists the
    /// image, the image goes too. Returns the image's digest.
    pub async fn untag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        images: &[ImageRecord],
    ) -> Result<Digest> {
        let record = self
            .stat_manifest(repo, &Reference::Tag(tag.clone()))
            .await?;
        self.delete_manifest(repo, &Reference::Tag(tag.clone()))
            .await?;
        let image = images.iter().find(|i| i.manifest.digest == record.digest);
        let last_tag = image.is_some_and(|i| i.tags.iter().all(|t| t == tag.as_str()));
        if last_tag && !listed_by_index(images, &record.digest) {
            self.delete_manifest(repo, &Reference::Digest(record.digest.clone()))
                .await?;
        }
        Ok(record.digest)
    }

    /// Deletes an image and its tags, unless an index of the repository lists
    /// it: then false, and nothing is deleted.
    pub async fn delete_image(
        &self,
        repo: &RepoName,
        digest: &Digest,
        images: &[ImageRecord],
    ) -> Result<bool> {
        if listed_by_index(images, digest) {
            return Ok(false);
        }
        self.delete_manifest(repo, &Reference::Digest(digest.clone()))
            .await?;
        Ok(true)
    }
}

fn listed_by_index(images: &[ImageRecord], digest: &Digest) -> bool {
    images.iter().any(|i| i.children.contains(digest))
}
