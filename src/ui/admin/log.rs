//! `GET /ui/admin/audit`: the audit log, newest first, in keyset pages (the
//! cursor, `before`, is an entry id in the URL), filtered by action prefix
//! (`gc.` matches `gc.run` and `gc.dry_run`) and repository.

use axum::extract::State;
use maud::{Markup, html};

use super::{Operator, field, page_size, tabs};
use crate::http::Query;
use crate::storage::{AuditQuery, AuditRecord};
use crate::ui::error::{UiError, UiResult};
use crate::ui::layout::{page as shell, time};
use crate::ui::session::encode;
use crate::ui::{Console, ok};

/// The longest filter accepted.
const MAX_FILTER: usize = 256;

/// The log's filters and cursor, parsed and bounded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pub action: Option<String>,
    pub repository: Option<String>,
    pub before: Option<i64>,
    pub n: usize,
}

impl Filters {
    pub fn parse(query: &Query) -> UiResult<Filters> {
        let text = |key: &str| -> UiResult<Option<String>> {
            Ok(query
                .get(key)
                .map(|v| field(v, MAX_FILTER))
                .transpose()?
                .filter(|v| !v.is_empty())
                .map(str::to_string))
        };
        let before = match query.get("before") {
            None | Some("") => None,
            Some(b) => Some(
                b.parse::<i64>()
                    .ok()
                    .filter(|b| *b > 0)
                    .ok_or(UiError::BadRequest("the page cursor is not valid"))?,
            ),
        };
        Ok(Filters {
            action: text("action")?,
            repository: text("repository")?,
            before,
            n: page_size(query)?,
        })
    }

    /// This log's URL, starting before `before`.
    pub fn link(&self, before: Option<i64>) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &self.action {
            parts.push(format!("action={}", encode(a)));
        }
        if let Some(r) = &self.repository {
            parts.push(format!("repository={}", encode(r)));
        }
        if self.n != 50 {
            parts.push(format!("n={}", self.n));
        }
        if let Some(b) = before {
            parts.push(format!("before={b}"));
        }
        format!("/ui/admin/audit?{}", parts.join("&"))
    }
}

/// A table of entries (also the garbage collection page's history).
pub fn table(records: &[AuditRecord]) -> Markup {
    html! {
        table.rows #audit {
            thead { tr {
                th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" }
                th scope="col" { "Repository" } th scope="col" { "Target" } th scope="col" { "Detail" }
            } }
            tbody {
                @for r in records {
                    @let e = &r.entry;
                    tr {
                        td { (time(e.at_ms)) }
                        td { (e.actor) }
                        td { code { (e.action) } }
                        td { (e.repository) }
                        td.mono { (e.target) }
                        td { (e.detail) }
                    }
                }
            }
        }
    }
}

pub async fn page(
    State(console): State<Console>,
    Operator(viewer): Operator,
    query: Query,
) -> UiResult {
    let filters = Filters::parse(&query)?;
    // One more than shown: whether a next page exists.
    let mut records = console
        .operators
        .audit_log
        .audit_entries(&AuditQuery {
            before: filters.before,
            action: filters.action.clone(),
            repository: filters.repository.clone(),
            limit: filters.n as u32 + 1,
        })
        .await?;
    let more = records.len() > filters.n;
    records.truncate(filters.n);
    let next = more.then(|| records.last().map(|r| r.id)).flatten();
    let body = html! {
        (tabs("/ui/admin/audit"))
        h1 { "Audit log" }
        form.toolbar method="get" action="/ui/admin/audit" role="search" {
            label for="action" class="muted" { "Action starts with" }
            input #action name="action" value=[filters.action.as_deref()] placeholder="push, delete, login, policy., token., gc." maxlength="256";
            label for="repository" class="muted" { "Repository" }
            input #repository name="repository" value=[filters.repository.as_deref()] maxlength="256";
            button type="submit" { "Apply" }
        }
        @if records.is_empty() {
            p.muted { "No entries" @if filters.before.is_some() { " on this page" } "." }
        } @else {
            (table(&records))
        }
        nav.pager aria-label="Pages" {
            @if filters.before.is_some() { a href=(filters.link(None)) { "Newest" } }
            @if let Some(id) = next { a rel="next" href=(filters.link(Some(id))) { "Older entries" } }
        }
    };
    ok(shell("Audit log", Some(&viewer), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_link() {
        let f =
            Filters::parse(&Query::parse("action=gc.&repository=a%2Fb&before=42&n=10")).unwrap();
        assert_eq!(f.action.as_deref(), Some("gc."));
        assert_eq!(f.repository.as_deref(), Some("a/b"));
        assert_eq!(f.before, Some(42));
        assert_eq!(
            f.link(Some(7)),
            "/ui/admin/audit?action=gc.&repository=a%2Fb&n=10&before=7"
        );
        for bad in ["before=x", "before=-1", "n=0", "n=500"] {
            assert!(Filters::parse(&Query::parse(bad)).is_err(), "{bad}");
        }
        assert!(Filters::parse(&Query::parse(&format!("action={}", "a".repeat(300)))).is_err());
    }
}
