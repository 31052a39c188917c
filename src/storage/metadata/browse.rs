//! What the web console lists: repositories with their tag count, last push
//! and size, tags with what each row shows (media type, sizes, child count), and
//! untagged manifests; each page is one indexed query over the rows of that
//! page (keyset paging), never a query per row (platforms of an index are
//! recorded at push for this). Depends only on the pure
//! `oci` types and this module's shared items.

use async_trait::async_trait;

use super::{ManifestRecord, Result};
use crate::oci::{Digest, RepoName};

/// Where a page starts: strictly after this row of the previous page. For
/// orders by name alone `time_ms` is ignored; for orders by time it breaks
/// ties by name (or digest), so a page never repeats or skips a row. For
/// [`Order::Largest`] `time_ms` carries the row's size in bytes instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position<'a> {
    pub time_ms: i64,
    pub name: &'a str,
}

/// How a listing is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By name, ascending (bytewise).
    Name,
    /// Newest first (last push for repositories, tagging time for tags),
    /// ties by name descending.
    Newest,
    /// Largest first (repositories only: their stored logical size), ties by
    /// name descending; other listings treat it as [`Order::Newest`].
    Largest,
}

/// One page of a listing: a name filter, an order, a start and a size.
#[derive(Debug, Clone, Copy)]
pub struct Listing<'a> {
    /// Only names containing this (case-insensitively).
    pub contains: Option<&'a str>,
    pub order: Order,
    pub after: Option<Position<'a>>,
    pub limit: u32,
}

/// A repository's place in a listing, all a page needs before it knows
/// which rows the viewer may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryKey {
    pub name: RepoName,
    /// The latest manifest push, else the repository's creation (Unix ms).
    pub last_push_ms: i64,
    /// Its stored logical size (see [`RepositorySummary::logical_bytes`]).
    pub logical_bytes: u64,
}

/// A repository as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySummary {
    pub name: RepoName,
    /// Tags, referrers' tags included.
    pub tags: u64,
    /// The latest manifest push, else the repository's creation (Unix ms).
    pub last_push_ms: i64,
    /// Every distinct blob and manifest the repository can serve, as `wharf
    /// du` counts its logical size (shared blobs count in each repository);
    /// stored, and kept exact by the database's triggers at every write.
    pub logical_bytes: u64,
}

/// A tag (or an untagged manifest) as the console lists it.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    /// `None` for an untagged manifest.
    pub tag: Option<String>,
    /// When the tag was last pointed (for an untagged manifest: its push), Unix ms.
    pub at_ms: i64,
    pub manifest: ManifestRecord,
    /// Distinct blob bytes the manifest needs, its children's included.
    pub content_bytes: u64,
    /// Manifests it lists, when it is an index.
    pub children: u64,
    /// The platforms an index lists, as recorded at push (empty for images,
    /// and for indexes pushed before platforms were recorded).
    pub platforms: Vec<String>,
}

/// How a manifest is linked inside its repository.
#[derive(Debug, Clone, Default)]
pub struct ManifestLinks {
    /// Tags naming it, in name order.
    pub tags: Vec<String>,
    /// Indexes listing it.
    pub parents: Vec<Digest>,
    /// The manifest it refers to, when it is a referrer.
    pub subject: Option<Digest>,
}

/// What deleting a manifest would let garbage collection reclaim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaim {
    /// Bytes of the blobs (the manifest itself, its config and layers, and
    /// for an index the children only it lists, with theirs) that no other
    /// manifest in any repository uses.
    pub bytes: u64,
    /// How many such blobs.
    pub blobs: u64,
    /// False when more manifests or children were given than are examined
    /// ([`MAX_RECLAIM_ROOTS`], [`MAX_RECLAIM_CHILDREN`]): `bytes` is then a
    /// lower bound.
    pub complete: bool,
}

/// What deleting manifests frees, by what garbage collection sweeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaimable {
    /// With any collection: the blobs only the deleted manifests use.
    pub direct: Reclaim,
    /// When collections also sweep untagged manifests (`gc`'s
    /// `untagged_after_seconds`, off by default): also what an index's
    /// children, or a manifest whose last tag goes, use alone.
    pub with_untagged: Reclaim,
}

/// The most children of indexes [`BrowseMetadata::reclaimable`] examines.
pub const MAX_RECLAIM_CHILDREN: u32 = 1_000;
/// The most manifests [`BrowseMetadata::reclaimable`] examines at once.
pub const MAX_RECLAIM_ROOTS: usize = 1_000;

/// The console's listings.
#[async_trait]
pub trait BrowseMetadata: Send + Sync + 'static {
    /// One page of repositories, keys only: what each row costs to show
    /// (tag count, size) is computed apart, for the rows a viewer may see.
    async fn browse_repositories(&self, page: Listing<'_>) -> Result<Vec<RepositoryKey>>;
    /// The summaries of `keys` (the rows a page shows), in their order; a
    /// repository deleted since it was listed is left out.
    async fn repository_summaries(&self, keys: &[RepositoryKey]) -> Result<Vec<RepositorySummary>>;
    /// One page of a repository's tags, referrers' tags left out (they are
    /// shown under their subject) unless their subject is missing.
    async fn browse_tags(&self, repo: &RepoName, page: Listing<'_>) -> Result<Vec<ImageSummary>>;
    /// One page of manifests no tag names, newest first, leaving out
    /// manifests an index lists and referrers whose subject is present;
    /// `after.name` is a digest.
    async fn browse_untagged(
        &self,
        repo: &RepoName,
        after: Option<Position<'_>>,
        limit: u32,
    ) -> Result<Vec<ImageSummary>>;
    /// The tags, parents and subject of one manifest.
    async fn manifest_links(&self, repo: &RepoName, digest: &Digest) -> Result<ManifestLinks>;
    /// What garbage collection could reclaim once `digests` go from `repo`:
    /// deleted outright, or (with `untag`, for one digest) once its tag
    /// `untag` goes. With `sweep_untagged` the collection also deletes the
    /// manifests that become untagged: the children only these indexes list,
    /// or the untagged manifest when `untag` was its last tag and nothing
    /// else keeps it (an index listing it, a subject, a runner pin); without
    /// it, untagging frees nothing. One statement over indexes; manifests
    /// beyond [`MAX_RECLAIM_ROOTS`] and children beyond
    /// [`MAX_RECLAIM_CHILDREN`] are not examined.
    async fn reclaimable(
        &self,
        repo: &RepoName,
        digests: &[Digest],
        untag: Option<&str>,
        sweep_untagged: bool,
    ) -> Result<Reclaim>;
}
