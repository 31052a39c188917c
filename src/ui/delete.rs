//! Honest deletes: untagging (the tag goes, the manifest stays) and deleting
//! a manifest (it and every tag naming it go), as two separate forms behind
//! a confirmation page that says what else goes with them. Both call the
//! registry's `delete_manifest`, as `DELETE /v2/{repo}/manifests/{ref}` does.

use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::error::{UiError, UiResult};
use super::layout::{MAX_LISTED, more, page as shell, short_digest, size};
use super::session::Viewer;
use super::tags::Done;
use super::{Console, delete_path, image_path, ok, repo_path};
use crate::notifications::{Action, Notice};
use crate::oci::{Reference, RepoName};
use crate::registry::{Reclaim, Reclaimable};

/// `GET /ui/r/{repo}/-/delete/{reference}`: what untagging or deleting would do.
pub async fn confirm(
    console: &Console,
    viewer: &Viewer,
    repo: &RepoName,
    reference: &Reference,
) -> UiResult {
    let registry = &console.registry;
    let record = registry.stat_manifest(repo, reference).await?;
    let links = registry.manifest_links(repo, &record.digest).await?;
    let referrers = registry.referrers(repo, &record.digest, None).await?;
    // Both figures, before the viewer chooses: the untag's (nothing unless
    // it is the last tag) and the manifest delete's.
    let untag_reclaim = match reference {
        Reference::Tag(t) => Some(
            registry
                .reclaimable(repo, std::slice::from_ref(&record.digest), Some(t.as_str()))
                .await?,
        ),
        Reference::Digest(_) => None,
    };
    let delete_reclaim = registry
        .reclaimable(repo, std::slice::from_ref(&record.digest), None)
        .await?;
    let by_digest = Reference::Digest(record.digest.clone());
    let action = delete_path(repo, reference);
    let others: Vec<&String> = match reference {
        Reference::Tag(t) => links.tags.iter().filter(|x| *x != t.as_str()).collect(),
        Reference::Digest(_) => links.tags.iter().collect(),
    };
    let body = html! {
        p.crumbs { a href="/ui/" { "Repositories" } " / " a href=(repo_path(repo)) { (repo) } " / " }
        h1 { "Delete " (reference) "?" }
        p { "Manifest " a.mono href=(image_path(repo, &by_digest)) { (record.digest) } }
        @if let Reference::Tag(tag) = reference {
            h2 { "Untag " code { (tag) } }
            p {
                "Removes the tag " code { (tag) } " only. The manifest stays and can still be pulled by digest"
                @if others.is_empty() { "; no other tag names it, so it becomes untagged." }
                @else { " and by its other tags." }
            }
            @if let Some(r) = untag_reclaim { p #untag-reclaim { (reclaim_text(r)) } }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="what" value="untag";
                button.danger type="submit" { "Untag " (tag) }
            }
        }
        h2 { "Delete the manifest" }
        @if others.is_empty() {
            p { "Deletes the manifest" @if let Reference::Tag(t) = reference { " and its tag " code { (t) } } "." }
        } @else {
            p { "Deletes the manifest and every tag that names it:" }
            ul #shared-tags {
                @if let Reference::Tag(t) = reference { li { code { (t) } } }
                @for t in others.iter().take(MAX_LISTED) { li { code { (t) } } }
            }
            (more(others.len()))
        }
        @if !links.parents.is_empty() {
            p.warning {
                "An index lists this manifest ("
                @for (n, p) in links.parents.iter().take(MAX_LISTED).enumerate() {
                    @if n > 0 { ", " }
                    a.mono href=(image_path(repo, &Reference::Digest(p.clone()))) { (short_digest(p)) }
                }
                @if links.parents.len() > MAX_LISTED { " " (more(links.parents.len())) }
                "); pulling that index for this platform will fail once it is gone."
            }
        }
        @if !referrers.is_empty() {
            p.warning { (referrers.len()) " referrer(s) (signatures, SBOMs…) point at it; they stay until garbage collection removes orphans." }
        }
        p #delete-reclaim { (reclaim_text(delete_reclaim)) }
        form method="post" action=(delete_path(repo, &by_digest)) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="what" value="manifest";
            button.danger type="submit" { "Delete manifest " (short_digest(&record.digest)) }
        }
        p { a href=(repo_path(repo)) { "Cancel" } }
    };
    ok(shell("Delete", Some(viewer), body))
}

/// "N bytes reclaimable after the next garbage collection", honestly:
/// nothing when every blob stays in use, and apart what only collections
/// that sweep untagged manifests free.
pub fn reclaim_text(r: Reclaimable) -> maud::Markup {
    let (direct, all) = (r.direct, r.with_untagged);
    let at_least = |c: &Reclaim| if c.complete { "" } else { "at least " };
    html! {
        @if all.bytes == 0 {
            "Frees nothing: every blob it uses stays in use (by this manifest, its other tags, or other manifests in any repository). "
            span.reclaim data-bytes="0" { "0 B" } " reclaimable."
        } @else {
            (at_least(&direct))
            span.reclaim data-bytes=(direct.bytes) { (size(direct.bytes)) }
            " reclaimable after the next garbage collection"
            @if direct.blobs > 0 { " (" (direct.blobs) " blob(s) no other manifest in any repository uses)" }
            "."
            @if all.bytes > direct.bytes {
                " " (at_least(&all))
                span.reclaim-untagged data-bytes=(all.bytes) { (size(all.bytes)) }
                " in all when garbage collection also sweeps untagged manifests (gc.untagged_after_seconds), which this leaves behind."
            }
            @if !all.complete { " More manifests are involved than were examined." }
        }
    }
}

/// The form of either action.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    /// `untag` or `manifest`.
    what: String,
}

impl DeleteForm {
    /// From a form's fields (unknown ones ignored).
    pub fn from_pairs(pairs: &[(String, String)]) -> DeleteForm {
        let what = pairs
            .iter()
            .find(|(k, _)| k == "what")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        DeleteForm { what }
    }
}

/// `POST /ui/r/{repo}/-/delete/{reference}` (already authorized for
/// delete): the redirect to the repository, and the webhook event the same
/// `DELETE` on `/v2/` would send.
pub async fn submit(
    console: &Console,
    repo: &RepoName,
    reference: &Reference,
    form: DeleteForm,
) -> UiResult<(Response, Notice)> {
    let registry = &console.registry;
    let notice = |tag: Option<String>, digest: Option<String>| Notice {
        action: Action::Delete,
        repository: repo.to_string(),
        media_type: None,
        digest,
        size: None,
        tag,
    };
    let (done, notice) = match (form.what.as_str(), reference) {
        // Untag: DELETE /v2/{repo}/manifests/{tag}.
        ("untag", Reference::Tag(tag)) => {
            registry.delete_manifest(repo, reference).await?;
            (Done::Untagged, notice(Some(tag.to_string()), None))
        }
        // Delete the manifest: DELETE /v2/{repo}/manifests/{digest}; a tag
        // is resolved first, so the form acts on what the page showed.
        ("manifest", _) => {
            let digest = registry.stat_manifest(repo, reference).await?.digest;
            registry
                .delete_manifest(repo, &Reference::Digest(digest.clone()))
                .await?;
            (Done::Deleted, notice(None, Some(digest.to_string())))
        }
        _ => return Err(UiError::BadRequest("unknown action")),
    };
    tracing::info!(repo = %repo, reference = %reference, action = done.as_str(), "console delete");
    let to = format!("{}?done={}", repo_path(repo), done.as_str());
    Ok((Redirect::to(&to).into_response(), notice))
}
