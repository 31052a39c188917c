//! The console's stylesheet, script and icon, compiled into the binary and served
//! under a path that names their content's hash, so browsers may keep them
//! for a year: a new build has new paths.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::UiError;

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");
const ICON: &str = include_str!("static/icon.svg");
/// The task page's log tail (server-sent events); loaded by that page only.
const LOGTAIL: &str = include_str!("static/logtail.js");

/// FNV-1a over the files: cheap, computed at compile time.
const fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut p = 0;
    while p < parts.len() {
        let bytes = parts[p].as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        p += 1;
    }
    hash
}

const VERSION: u64 = fnv1a(&[CSS, JS, ICON, LOGTAIL]);

/// The path segment naming this build's assets.
pub fn version() -> String {
    format!("{VERSION:016x}")
}

pub fn css_path() -> String {
    format!("/ui/static/{}/app.css", version())
}

pub fn icon_path() -> String {
    format!("/ui/static/{}/icon.svg", version())
}

pub fn js_path() -> String {
    format!("/ui/static/{}/app.js", version())
}

pub fn logtail_path() -> String {
    format!("/ui/static/{}/logtail.js", version())
}

/// `GET /ui/static/{version}/{file}`: only this build's version exists.
pub async fn serve(Path((v, file)): Path<(String, String)>) -> Result<Response, UiError> {
    if v != version() {
        return Err(UiError::NotFound);
    }
    let (body, kind) = match file.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        "logtail.js" => (LOGTAIL, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON, "image/svg+xml"),
        _ => return Err(UiError::NotFound),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(response)
}
