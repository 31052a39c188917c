//! The page shell and the small pieces every page uses (sizes, times, short
//! digests, copy buttons). maud escapes every interpolated value.

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::session::Viewer;
use crate::oci::Digest;

/// A rendered page as a response body.
pub fn html(markup: Markup) -> Html<String> {
    Html(markup.into_string())
}

/// A whole page for `viewer`.
pub fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Wharf" }
                link rel="icon" href=(assets::icon_path()) type="image/svg+xml";
                link rel="stylesheet" href=(assets::css_path());
                script src=(assets::js_path()) defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/" { "Wharf" }
                    nav aria-label="Main" {
                        a href="/ui/" { "Repositories" }
                        @if viewer.is_some_and(|v| v.runner) { " " a href="/ui/clusters" { "Runner" } }
                        @if viewer.is_some_and(|v| v.operator) { " " a href="/ui/admin/" { "Admin" } }
                    }
                    button #theme-toggle type="button" hidden { "Theme" }
                    @if let Some(v) = viewer {
                        @match &v.name {
                            Some(name) => {
                                span.muted { "Signed in as " strong { (name) } }
                                form method="post" action="/ui/logout" {
                                    input type="hidden" name="csrf" value=(v.csrf);
                                    button type="submit" { "Sign out" }
                                }
                            }
                            None if v.enforced => { a href="/ui/login" { "Sign in" } }
                            None => { span.muted { "Open mode: no sign-in" } }
                        }
                    }
                }
                main { (body) }
                dialog #help aria-label="Keyboard shortcuts" {
                    h2 { "Keyboard shortcuts" }
                    table {
                        tbody {
                            tr { th scope="row" { kbd { "/" } } td { "Search" } }
                            tr { th scope="row" { kbd { "j" } " " kbd { "k" } } td { "Next / previous row" } }
                            tr { th scope="row" { kbd { "c" } } td { "Copy the selected row's digest (or the first command)" } }
                            tr { th scope="row" { kbd { "?" } } td { "This help" } }
                        }
                    }
                    button #help-close type="button" { "Close" }
                }
            }
        }
    }
}

/// An error page (no viewer: it may be one who could not be identified).
pub fn error_page(title: &str, text: &str) -> Markup {
    page(
        title,
        None,
        html! {
            h1 { (title) }
            p { (text) }
            p { a href="/ui/" { "Back to repositories" } }
        },
    )
}

/// A copy button (shown by the script; without it the text is selectable).
pub fn copy_button(text: &str, label: &str) -> Markup {
    html! {
        button.copy type="button" data-copy=(text) aria-label=(label) hidden { "Copy" }
    }
}

/// The most items a page lists of one manifest's tags, parents or referrers;
/// the rest are counted by [`more`] (a manifest may have thousands of tags).
pub const MAX_LISTED: usize = 100;

/// "+N more" after a list cut at [`MAX_LISTED`] items of `total`.
pub fn more(total: usize) -> Markup {
    html! {
        @if total > MAX_LISTED { span.muted.more { "+" (total - MAX_LISTED) " more" } }
    }
}

/// `sha256:0123456789ab`: the algorithm and 12 hex digits.
pub fn short_digest(digest: &Digest) -> String {
    let text = digest.to_string();
    let cut = text.find(':').map_or(0, |i| i + 1) + 12;
    text.chars().take(cut).collect()
}

/// Bytes in binary units, one decimal.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A time (Unix ms) as `2026-12-03 13:45 UTC` in a `<time>` element.
pub fn time(ms: i64) -> Markup {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let iso = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let shown = at
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default();
    html! { time datetime=(iso) { (shown) } }
}

/// A media type without its long prefixes, for tables.
pub fn kind(media_type: &str) -> &'static str {
    match media_type {
        "application/vnd.oci.image.index.v1+json" => "OCI index",
        "application/vnd.docker.distribution.manifest.list.v2+json" => "Docker manifest list",
        "application/vnd.oci.image.manifest.v1+json" => "OCI image",
        "application/vnd.docker.distribution.manifest.v2+json" => "Docker image",
        _ => "other",
    }
}

/// Whether a media type is an index (lists other manifests).
pub fn is_index(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn digests_shorten() {
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(short_digest(&d), "sha256:abababababab");
    }
}
