//! `GET /ui/`: the repositories the viewer may pull (tags, size, last push),
//! searchable, by name, last push or size (largest first: the stored size
//! column, over its index), in keyset pages.

use axum::extract::State;
use axum::http::HeaderMap;
use maud::{Markup, html};

use super::access::{prepare, rights};
use super::error::UiResult;
use super::layout::{page as shell, size, time};
use super::paging::{Cursor, Params};
use super::session::Viewer;
use super::{Console, ok, repo_path};
use crate::http::{PeerAddr, Query};
use crate::oci::RepoName;
use crate::registry::{Listing, Order, RepositoryKey, RepositorySummary};

/// Keys read per batch: only names and last pushes, so a batch larger than
/// most pages costs little and keeps the batches (each a query) few.
const BATCH: u32 = 250;
/// Batches read to fill one page with repositories the viewer may see
/// (at most 2,000 rows scanned), before the page is shown as it is.
const MAX_BATCHES: usize = 8;

pub async fn page(
    State(console): State<Console>,
    viewer: Viewer,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    query: Query,
) -> UiResult {
    let params = Params::parse(&query, Order::Name)?;
    let (rows, next) = visible(&console, &viewer, &params).await?;
    let host = host_of(&console.auth.base_url(&headers, peer));
    ok(shell(
        "Repositories",
        Some(&viewer),
        render(&params, &rows, next.as_ref(), &host),
    ))
}

/// `host[:port]` of a base URL.
pub fn host_of(base_url: &str) -> String {
    base_url
        .split_once("://")
        .map_or(base_url, |(_, host)| host)
        .trim_end_matches('/')
        .to_string()
}

fn cursor(order: Order, r: &RepositoryKey) -> Cursor {
    Cursor {
        time_ms: match order {
            Order::Largest => i64::try_from(r.logical_bytes).unwrap_or(i64::MAX),
            Order::Name | Order::Newest => r.last_push_ms,
        },
        name: r.name.to_string(),
    }
}

/// One page of repositories the viewer may pull, and where the next starts.
/// Rows the viewer may not pull are skipped as if they did not exist: a
/// cursor is only ever taken from a row shown, and "Next page" is offered
/// only once one more row the viewer may pull has been seen, so neither the
/// link nor its presence tells of a hidden repository. When the scan budget
/// runs out first the page ends there without a link (the search narrows it).
async fn visible(
    console: &Console,
    viewer: &Viewer,
    params: &Params,
) -> UiResult<(Vec<RepositorySummary>, Option<Cursor>)> {
    let (keys, next) = visible_keys(console, viewer, params).await?;
    // Counts and sizes for the rows shown only, in one query.
    let rows = console.registry.repository_summaries(&keys).await?;
    Ok((rows, next))
}

/// The keys of [`visible`]'s rows, and where the next page starts.
async fn visible_keys(
    console: &Console,
    viewer: &Viewer,
    params: &Params,
) -> UiResult<(Vec<RepositoryKey>, Option<Cursor>)> {
    let limit = params.limit as usize;
    let batch_size = BATCH.max(params.limit + 1);
    let mut shown: Vec<RepositoryKey> = Vec::new();
    // Where the next batch is read from: internal only, never put in a link.
    let mut scanned = params.after.clone();
    for _ in 0..MAX_BATCHES {
        let batch = console
            .registry
            .browse_repositories(Listing {
                contains: params.filter.as_deref(),
                order: params.order,
                after: scanned.as_ref().map(Cursor::position),
                limit: batch_size,
            })
            .await?;
        let complete = batch.len() < batch_size as usize;
        let names: Vec<RepoName> = batch.iter().map(|r| r.name.clone()).collect();
        prepare(console, &names).await?;
        for row in batch {
            scanned = Some(cursor(params.order, &row));
            if !rights(console, &viewer.principal, &row.name).await?.pull {
                continue;
            }
            if shown.len() == limit {
                // One more visible row: there is a next page, after the last shown.
                let next = shown.last().map(|r| cursor(params.order, r));
                return Ok((shown, next));
            }
            shown.push(row);
        }
        if complete {
            break;
        }
    }
    Ok((shown, None))
}

fn render(
    params: &Params,
    rows: &[RepositorySummary],
    next: Option<&Cursor>,
    host: &str,
) -> Markup {
    html! {
        h1 { "Repositories" }
        form.toolbar method="get" action="/ui/" role="search" {
            label for="q" class="muted" { "Search" }
            input #q type="search" name="q" value=[params.filter.as_deref()]
                placeholder="Repository name" data-filter="repositories";
            label for="sort" class="muted" { "Sort" }
            select #sort name="sort" {
                option value="name" selected[params.order == Order::Name] { "Name" }
                option value="pushed" selected[params.order == Order::Newest] { "Last push" }
                option value="size" selected[params.order == Order::Largest] { "Size" }
            }
            button type="submit" { "Apply" }
        }
        @if rows.is_empty() {
            @if params.filter.is_some() || params.after.is_some() {
                p.muted { "No repositories match." }
            } @else {
                p.muted { "No repositories you may pull yet. Push an image to create one:" }
                @let push = format!("docker push {host}/team/app:1.0");
                div.cmdrow {
                    pre.cmd { code { "docker tag app " (host) "/team/app:1.0" "\n" (push) } }
                }
            }
        } @else {
            table.rows #repositories {
                thead { tr { th scope="col" { "Repository" } th.num scope="col" { "Tags" } th.num scope="col" { "Size" } th scope="col" { "Last push" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { a href=(repo_path(&r.name)) { (r.name) } }
                            td.num { (r.tags) }
                            td.num { (size(r.logical_bytes)) }
                            td { (time(r.last_push_ms)) }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if params.after.is_some() { a href=(params.link("/ui/", None)) { "First page" } }
            @if let Some(next) = next { a rel="next" href=(params.link("/ui/", Some(next))) { "Next page" } }
        }
    }
}
