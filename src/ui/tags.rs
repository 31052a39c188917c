//! `GET /ui/r/{repo}`: a repository's tags, newest first (or by name),
//! filtered, in keyset pages with the cursor in the URL; untagged manifests
//! behind `show=untagged`. One query per page (see `storage::metadata::browse`).

use maud::{Markup, html};

use super::access::Rights;
use super::error::{UiError, UiResult};
use super::layout::{copy_button, is_index, kind, page as shell, short_digest, size, time};
use super::paging::{Cursor, Params};
use super::session::Viewer;
use super::{Console, delete_path, image_path, lifecycle_path, ok, repo_path};
use crate::http::Query;
use crate::oci::{Reference, RepoName};
use crate::registry::{ImageSummary, Listing, Order};

pub async fn page(
    console: &Console,
    viewer: &Viewer,
    rights: Rights,
    repo: &RepoName,
    query: &Query,
) -> UiResult {
    let params = Params::parse(query, Order::Newest)?;
    if params.order == Order::Largest {
        return Err(UiError::BadRequest("tags sort by name or push"));
    }
    let after = params.after.as_ref().map(Cursor::position);
    // One more than shown tells whether another page follows.
    let mut rows = if params.untagged {
        console
            .registry
            .browse_untagged(repo, after, params.limit + 1)
            .await?
    } else {
        let listing = Listing {
            contains: params.filter.as_deref(),
            order: params.order,
            after,
            limit: params.limit + 1,
        };
        console.registry.browse_tags(repo, listing).await?
    };
    let more = rows.len() > params.limit as usize;
    rows.truncate(params.limit as usize);
    let next = more.then(|| rows.last().map(cursor)).flatten();
    let notice = query.get("done").and_then(Done::parse);
    let body = render(repo, rights, &params, &rows, next.as_ref(), notice);
    ok(shell(repo.as_str(), Some(viewer), body))
}

fn cursor(row: &ImageSummary) -> Cursor {
    Cursor {
        time_ms: row.at_ms,
        name: row
            .tag
            .clone()
            .unwrap_or_else(|| row.manifest.digest.to_string()),
    }
}

/// What a delete just did, shown after its redirect (a fixed set: no text
/// from the URL reaches the page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Untagged,
    Deleted,
}

impl Done {
    pub fn parse(s: &str) -> Option<Done> {
        match s {
            "untagged" => Some(Done::Untagged),
            "deleted" => Some(Done::Deleted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Done::Untagged => "untagged",
            Done::Deleted => "deleted",
        }
    }
}

fn render(
    repo: &RepoName,
    rights: Rights,
    params: &Params,
    rows: &[ImageSummary],
    next: Option<&Cursor>,
    notice: Option<Done>,
) -> Markup {
    let base = repo_path(repo);
    html! {
        p.crumbs { a href="/ui/" { "Repositories" } " / " }
        h1 { (repo) }
        p { a #lifecycle-link href=(lifecycle_path(repo)) { "Lifecycle policy and tag immutability" } }
        @match notice {
            Some(Done::Untagged) => p.notice role="status" { "The tag was removed; the manifest stays." }
            Some(Done::Deleted) => p.notice role="status" { "The manifest and its tags were deleted. Its blobs are reclaimed by the next garbage collection." }
            None => {}
        }
        nav.toolbar aria-label="Show" {
            @if params.untagged {
                a href=(base) { "Tags" } " · " strong { "Untagged manifests" }
            } @else {
                strong { "Tags" } " · " a href={ (base) "?show=untagged" } { "Untagged manifests" }
            }
        }
        @if !params.untagged {
            form.toolbar method="get" action=(base) role="search" {
                label for="q" class="muted" { "Filter" }
                input #q type="search" name="q" value=[params.filter.as_deref()]
                    placeholder="Tag name" data-filter="tags";
                label for="sort" class="muted" { "Sort" }
                select #sort name="sort" {
                    option value="pushed" selected[params.order == Order::Newest] { "Newest first" }
                    option value="name" selected[params.order == Order::Name] { "Name" }
                }
                button type="submit" { "Apply" }
            }
        }
        @if rows.is_empty() {
            p.muted {
                @if params.untagged { "No untagged manifests." }
                @else if params.filter.is_some() { "No tags match." }
                @else { "No tags." }
            }
        } @else {
            table.rows #tags {
                thead {
                    tr {
                        th scope="col" { @if params.untagged { "Manifest" } @else { "Tag" } }
                        th scope="col" { "Digest" }
                        th scope="col" { "Type" }
                        th.num scope="col" { "Size" }
                        th scope="col" { @if params.untagged { "Pushed" } @else { "Tagged" } }
                        @if rights.delete { th scope="col" { span.muted { "Actions" } } }
                    }
                }
                tbody {
                    @for row in rows { (render_row(repo, rights, row)) }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if params.after.is_some() { a href=(params.link(&base, None)) { "First page" } }
            @if let Some(next) = next { a rel="next" href=(params.link(&base, Some(next))) { "Next page" } }
        }
    }
}

fn render_row(repo: &RepoName, rights: Rights, row: &ImageSummary) -> Markup {
    let digest = &row.manifest.digest;
    let reference = match &row.tag {
        Some(tag) => tag
            .parse()
            .map(Reference::Tag)
            .unwrap_or_else(|_| Reference::Digest(digest.clone())),
        None => Reference::Digest(digest.clone()),
    };
    let by_digest = Reference::Digest(digest.clone());
    html! {
        tr {
            td {
                a href=(image_path(repo, &reference)) {
                    @match &row.tag { Some(tag) => (tag), None => (short_digest(digest)) }
                }
            }
            td {
                a.mono href=(image_path(repo, &by_digest)) title=(digest) { (short_digest(digest)) }
                (copy_button(&digest.to_string(), "Copy digest"))
            }
            td {
                (kind(&row.manifest.media_type))
                @if is_index(&row.manifest.media_type) {
                    @if row.platforms.is_empty() {
                        " " span.badge { (row.children) " manifests" }
                    } @else {
                        @for p in &row.platforms { " " span.badge.platform { (p) } }
                    }
                }
            }
            td.num { (size(row.content_bytes + row.manifest.size)) }
            td { (time(row.at_ms)) }
            @if rights.delete {
                td.actions { a href=(delete_path(repo, &reference)) { "Delete…" } }
            }
        }
    }
}
