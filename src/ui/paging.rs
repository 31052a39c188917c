//! A list page's query parameters, bounded and parsed in one place: the
//! filter, the order, the keyset cursor (`after`) and the page size; and the
//! links that carry them.

use super::error::{UiError, UiResult};
use super::session::encode;
use crate::http::Query;
use crate::registry::{Order, Position};

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;
/// The longest value of any parameter (names are at most 255 bytes).
const MAX_PARAM: usize = 300;

/// Where the next page starts: the last row's time (its size, sorting by
/// size) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub time_ms: i64,
    pub name: String,
}

impl Cursor {
    /// `{time_ms}~{name}`, as it goes in the URL.
    pub fn encode(&self) -> String {
        format!("{}~{}", self.time_ms, self.name)
    }

    pub fn parse(text: &str) -> Option<Cursor> {
        let (time, name) = text.split_once('~')?;
        (!name.is_empty()).then_some(())?;
        Some(Cursor {
            time_ms: time.parse().ok()?,
            name: name.to_string(),
        })
    }

    pub fn position(&self) -> Position<'_> {
        Position {
            time_ms: self.time_ms,
            name: &self.name,
        }
    }
}

/// A list page's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The name filter (`q`), trimmed; `None` when empty.
    pub filter: Option<String>,
    pub order: Order,
    pub after: Option<Cursor>,
    pub limit: u32,
    /// `show=untagged` on a tags page.
    pub untagged: bool,
}

fn param<'a>(query: &'a Query, key: &str) -> UiResult<Option<&'a str>> {
    match query.get(key) {
        Some(v) if v.len() > MAX_PARAM => Err(UiError::BadRequest("a parameter is too long")),
        other => Ok(other),
    }
}

impl Params {
    /// Parses `q`, `sort` (`name` or `pushed`), `after`, `n` and `show`;
    /// `default` is the order without `sort`.
    pub fn parse(query: &Query, default: Order) -> UiResult<Params> {
        let order = match param(query, "sort")? {
            None | Some("") => default,
            Some("name") => Order::Name,
            Some("pushed") => Order::Newest,
            Some("size") => Order::Largest,
            Some(_) => return Err(UiError::BadRequest("sort is name, pushed or size")),
        };
        let after = match param(query, "after")? {
            None | Some("") => None,
            Some(text) => Some(
                Cursor::parse(text).ok_or(UiError::BadRequest("the page cursor is not valid"))?,
            ),
        };
        let limit = match param(query, "n")? {
            None | Some("") => DEFAULT_PAGE,
            Some(n) => n
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or(UiError::BadRequest("n is a page size from 1 to 200"))?,
        };
        let filter = param(query, "q")?
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_string);
        let untagged = param(query, "show")? == Some("untagged");
        Ok(Params {
            filter,
            order,
            after,
            limit,
            untagged,
        })
    }

    pub fn sort_name(&self) -> &'static str {
        match self.order {
            Order::Name => "name",
            Order::Newest => "pushed",
            Order::Largest => "size",
        }
    }

    /// `base` with these parameters, starting after `after`.
    pub fn link(&self, base: &str, after: Option<&Cursor>) -> String {
        let mut parts = vec![format!("sort={}", self.sort_name())];
        if let Some(q) = &self.filter {
            parts.push(format!("q={}", encode(q)));
        }
        if self.untagged {
            parts.push("show=untagged".into());
        }
        if self.limit != DEFAULT_PAGE {
            parts.push(format!("n={}", self.limit));
        }
        if let Some(after) = after {
            parts.push(format!("after={}", encode(&after.encode())));
        }
        format!("{base}?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            time_ms: 1_700_000_000_123,
            name: "v1.2~rc".into(),
        };
        assert_eq!(Cursor::parse(&c.encode()), Some(c));
        assert_eq!(Cursor::parse("x~a"), None);
        assert_eq!(Cursor::parse("12~"), None);
        assert_eq!(Cursor::parse("12"), None);
    }

    #[test]
    fn parameters_are_bounded() {
        let p = Params::parse(&Query::parse("q=+web+&sort=name&n=10"), Order::Newest).unwrap();
        assert_eq!(p.filter.as_deref(), Some("web"));
        assert_eq!(p.order, Order::Name);
        assert_eq!(p.limit, 10);
        for bad in [
            "n=0",
            "n=201",
            "sort=big",
            "after=zz",
            &format!("q={}", "a".repeat(301)),
        ] {
            assert!(
                Params::parse(&Query::parse(bad), Order::Newest).is_err(),
                "{bad}"
            );
        }
        let link = p.link(
            "/ui/r/a",
            Some(&Cursor {
                time_ms: 5,
                name: "b c".into(),
            }),
        );
        assert_eq!(link, "/ui/r/a?sort=name&q=web&n=10&after=5%7Eb+c");
    }
}
