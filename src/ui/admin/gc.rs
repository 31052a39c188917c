//! `/ui/admin/gc`: garbage collection with the configured policy, as
//! `wharf gc` and the schedule run it (`Registry::collect_garbage_now`: the
//! same code, the same lease, so two never run at once): a dry run that
//! lists what would go and the bytes it frees, a run, and the history (the
//! audit log's `gc.` entries). Both are POSTs: a dry run changes nothing
//! but reads every stored blob's listing, not something a link should cost.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::html;
use serde::Deserialize;

use super::{Operator, tabs};
use crate::registry::GcReport;
use crate::storage::AuditQuery;
use crate::ui::error::{UiError, UiResult};
use crate::ui::layout::{MAX_LISTED, html as render, more, page as shell, short_digest, size};
use crate::ui::session::{CsrfForm, Viewer};
use crate::ui::{Console, image_path, ok};

/// History entries shown.
const HISTORY: u32 = 20;

fn forms(viewer: &Viewer) -> maud::Markup {
    html! {
        div.actions {
            form method="post" action="/ui/admin/gc" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="what" value="dry_run";
                button type="submit" { "Dry run" }
            }
            " "
            form method="post" action="/ui/admin/gc" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="what" value="run";
                button.danger type="submit" { "Collect garbage now" }
            }
        }
    }
}

pub async fn page(State(console): State<Console>, Operator(viewer): Operator) -> UiResult {
    let history = console
        .operators
        .audit_log
        .audit_entries(&AuditQuery {
            action: Some("gc.".into()),
            limit: HISTORY,
            ..Default::default()
        })
        .await?;
    let body = html! {
        (tabs("/ui/admin/gc"))
        h1 { "Garbage collection" }
        p { "Removes untagged manifests and orphaned referrers as configured, blob links no manifest uses, blobs nothing references (after the grace period) and idle uploads. It runs online, while pushes and pulls go on. A dry run changes nothing and shows what a run would remove now." }
        (forms(&viewer))
        h2 { "History" }
        @if history.is_empty() {
            p.muted { "No collections recorded yet." }
        } @else {
            (super::log::table(&history))
            p { a href="/ui/admin/audit?action=gc." { "All collections in the audit log" } }
        }
    };
    ok(shell("Garbage collection", Some(&viewer), body))
}

#[derive(Deserialize)]
pub struct GcForm {
    /// `dry_run` or `run`.
    what: String,
}

/// `POST /ui/admin/gc`: a dry run or a run, and its report.
pub async fn submit(
    State(console): State<Console>,
    Operator(viewer): Operator,
    CsrfForm(form): CsrfForm<GcForm>,
) -> UiResult {
    let dry_run = match form.what.as_str() {
        "dry_run" => true,
        "run" => false,
        _ => return Err(UiError::BadRequest("unknown action")),
    };
    let actor = viewer.principal.subject();
    let report = console
        .registry
        .collect_garbage_now(
            &console.operators.gc,
            dry_run,
            &console.auth.audit,
            &actor,
            &|_| {},
        )
        .await?;
    let Some(report) = report else {
        let body = html! {
            (tabs("/ui/admin/gc"))
            h1 { "A collection is running" }
            p { "Another garbage collection (scheduled, from " code { "wharf gc" } ", or another replica) holds the lease. Try again when it is done." }
            p { a href="/ui/admin/gc" { "Back" } }
        };
        let page = shell("Garbage collection", Some(&viewer), body);
        return Ok((StatusCode::CONFLICT, render(page)).into_response());
    };
    tracing::info!(
        dry_run,
        manifests = report.manifests.len(),
        blobs = report.blobs.len(),
        bytes = report.bytes(),
        "console garbage collection"
    );
    ok(shell(
        "Garbage collection",
        Some(&viewer),
        result(&viewer, dry_run, &report),
    ))
}

fn result(viewer: &Viewer, dry_run: bool, r: &GcReport) -> maud::Markup {
    let verb = if dry_run { "Would remove" } else { "Removed" };
    html! {
        (tabs("/ui/admin/gc"))
        h1 { @if dry_run { "Dry run" } @else { "Collected" } }
        p #summary.notice role="status" {
            (verb) " " (r.manifests.len()) " manifest(s), " (r.links) " blob link(s), "
            (r.blobs.len()) " blob(s) (" strong { (size(r.bytes())) } ", " (r.bytes()) " bytes) and "
            (r.uploads) " upload(s)."
        }
        @if !r.manifests.is_empty() {
            h2 { "Manifests" }
            ul #manifests {
                @for (repo, digest) in r.manifests.iter().take(MAX_LISTED) {
                    li {
                        (repo) " "
                        @if dry_run {
                            a.mono href=(image_path(repo, &crate::oci::Reference::Digest(digest.clone()))) { (short_digest(digest)) }
                        } @else { code { (digest) } }
                    }
                }
            }
            (more(r.manifests.len()))
        }
        @if !r.blobs.is_empty() {
            h2 { "Blobs" }
            table.rows #blobs {
                thead { tr { th scope="col" { "Digest" } th.num scope="col" { "Size" } } }
                tbody {
                    @for (digest, bytes) in r.blobs.iter().take(MAX_LISTED) {
                        tr { td { code { (digest) } } td.num { (size(*bytes)) } }
                    }
                }
            }
            (more(r.blobs.len()))
        }
        @if dry_run { (forms(viewer)) }
        p { a href="/ui/admin/gc" { "Back to garbage collection" } }
    }
}
