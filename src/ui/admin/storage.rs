//! `GET /ui/admin/storage`: storage per repository (what it can serve, what
//! only it holds, what it shares) and the registry's totals, from the same
//! store functions `wharf du` prints.

use axum::extract::State;
use maud::html;

use super::{Operator, page_size, tabs};
use crate::http::Query;
use crate::storage::RepositoryUsage;
use crate::ui::error::{UiError, UiResult};
use crate::ui::layout::{page as shell, size};
use crate::ui::{Console, ok, repo_path};

/// How rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Name,
    Logical,
    Unique,
    Shared,
}

impl Sort {
    fn parse(text: Option<&str>) -> Option<Sort> {
        Some(match text {
            None | Some("") | Some("logical") => Sort::Logical,
            Some("name") => Sort::Name,
            Some("unique") => Sort::Unique,
            Some("shared") => Sort::Shared,
            Some(_) => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Logical => "logical",
            Sort::Unique => "unique",
            Sort::Shared => "shared",
        }
    }
}

fn shared(u: &RepositoryUsage) -> u64 {
    u.logical_bytes.saturating_sub(u.unique_bytes)
}

/// Sorts largest first (by name, A to Z), ties by name.
fn sort(rows: &mut [RepositoryUsage], by: Sort) {
    match by {
        Sort::Name => rows.sort_by(|a, b| a.repo.as_str().cmp(b.repo.as_str())),
        Sort::Logical => rows.sort_by(|a, b| {
            (b.logical_bytes, a.repo.as_str()).cmp(&(a.logical_bytes, b.repo.as_str()))
        }),
        Sort::Unique => rows.sort_by(|a, b| {
            (b.unique_bytes, a.repo.as_str()).cmp(&(a.unique_bytes, b.repo.as_str()))
        }),
        Sort::Shared => {
            rows.sort_by(|a, b| (shared(b), a.repo.as_str()).cmp(&(shared(a), b.repo.as_str())))
        }
    }
}

pub async fn page(
    State(console): State<Console>,
    Operator(viewer): Operator,
    query: Query,
) -> UiResult {
    let by = Sort::parse(query.get("sort")).ok_or(UiError::BadRequest(
        "sort is name, logical, unique or shared",
    ))?;
    let n = page_size(&query)?;
    let number: usize = match query.get("page") {
        None | Some("") => 1,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| (1..=1_000_000).contains(p))
            .ok_or(UiError::BadRequest("page is a number from 1"))?,
    };
    let mut rows = console.registry.usage().await?;
    let (blobs, bytes) = console.registry.blob_totals().await?;
    sort(&mut rows, by);
    let total = rows.len();
    let shown: Vec<&RepositoryUsage> = rows.iter().skip((number - 1) * n).take(n).collect();
    let link = |sort: Sort, page: usize| {
        let mut l = format!("/ui/admin/storage?sort={}", sort.as_str());
        if n != 50 {
            l.push_str(&format!("&n={n}"));
        }
        if page > 1 {
            l.push_str(&format!("&page={page}"));
        }
        l
    };
    let header = |s: Sort, label: &str| {
        html! {
            @if s == by { (label) " ↓" } @else { a href=(link(s, 1)) { (label) } }
        }
    };
    let body = html! {
        (tabs("/ui/admin/storage"))
        h1 { "Storage" }
        p #totals {
            "Stored: " strong { (blobs) } " blob(s), " strong { (size(bytes)) }
            span.muted { " (" (bytes) " bytes; each blob counted once however many repositories use it)" }
        }
        @if shown.is_empty() {
            p.muted { "No repositories" @if number > 1 { " on this page" } "." }
        } @else {
            table.rows #usage {
                thead { tr {
                    th scope="col" { (header(Sort::Name, "Repository")) }
                    th.num scope="col" { (header(Sort::Logical, "Logical")) }
                    th.num scope="col" { (header(Sort::Unique, "Unique")) }
                    th.num scope="col" { (header(Sort::Shared, "Shared")) }
                } }
                tbody {
                    @for u in &shown {
                        tr {
                            td { a href=(repo_path(&u.repo)) { (u.repo) } }
                            td.num { (size(u.logical_bytes)) }
                            td.num { (size(u.unique_bytes)) }
                            td.num { (size(shared(u))) }
                        }
                    }
                }
            }
            p.muted { "Logical: every blob the repository can serve. Unique: what only it holds (what deleting it frees). Shared: the rest." }
        }
        nav.pager aria-label="Pages" {
            @if number > 1 { a href=(link(by, number - 1)) { "Previous page" } }
            @if number * n < total { a rel="next" href=(link(by, number + 1)) { "Next page" } }
        }
    };
    ok(shell("Storage", Some(&viewer), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(name: &str, logical: u64, unique: u64) -> RepositoryUsage {
        RepositoryUsage {
            repo: name.parse().unwrap(),
            logical_bytes: logical,
            unique_bytes: unique,
        }
    }

    #[test]
    fn sorts_largest_first_and_ties_by_name() {
        let mut rows = vec![usage("b", 10, 1), usage("a", 10, 9), usage("c", 5, 5)];
        sort(&mut rows, Sort::Logical);
        let names: Vec<&str> = rows.iter().map(|u| u.repo.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        sort(&mut rows, Sort::Shared);
        let names: Vec<&str> = rows.iter().map(|u| u.repo.as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert_eq!(Sort::parse(Some("size")), None);
    }
}
