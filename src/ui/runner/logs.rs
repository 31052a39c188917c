//! A task container's log: the last lines, read server-side for the task
//! page, and `GET /ui/clusters/{cluster}/tasks/{task}/logs/stream`, which
//! follows new lines as server-sent events for `static/logtail.js`.
//!
//! The container engine offers the last N lines of a log, not a cursor, so
//! the stream polls (every [`POLL`]) the last [`WINDOW`] lines and sends
//! those past where the previous poll's window ends ([`fresh`]): exact while
//! the log is shorter than the window, else by the overlap of the two
//! windows (a log that repeats one line over a whole window looks still).
//! Bounded: at most [`MAX_LINES_PER_POLL`] lines per poll (the rest are
//! counted as skipped), [`MAX_LIFETIME`] per connection, and [`LogTails`]
//! caps the streams open at once, per viewer and in all. Each poll checks
//! again that the viewer may see the task.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::super::Console;
use super::super::error::{UiError, UiResult};
use super::super::session::Viewer;
use super::access::admit;
use crate::auth::Principal;
use crate::http::{PeerAddr, Query};
use crate::runner::model::Task;
use crate::runner::{Runner, RunnerError};

/// Lines the task page shows, and the stream's first event carries.
pub const PAGE_LINES: usize = 100;
/// Lines each poll reads.
pub const WINDOW: usize = 200;
/// The most new lines one poll sends.
pub const MAX_LINES_PER_POLL: usize = 100;
/// The most log bytes read at once (the last ones are kept).
const MAX_TAIL_BYTES: usize = 512 * 1024;
pub const POLL: Duration = Duration::from_secs(1);
/// How long one stream lasts; the page says so and offers a reload.
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// A comment this often keeps proxies from closing an idle stream, and
/// tells the server soon that a client has gone (freeing its place).
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Streams open at once, in all and per viewer.
pub const MAX_STREAMS: usize = 32;
pub const MAX_STREAMS_PER_VIEWER: usize = 4;

/// The last `lines` lines of `container`'s log in `task`.
pub async fn tail(
    runner: &Runner,
    task: &str,
    container: &str,
    lines: usize,
) -> Result<Vec<String>, RunnerError> {
    let mut stream = runner.logs(task, Some(container), Some(lines)).await?;
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
        if bytes.len() > 2 * MAX_TAIL_BYTES {
            bytes.drain(..bytes.len() - MAX_TAIL_BYTES);
        }
    }
    let start = bytes.len().saturating_sub(MAX_TAIL_BYTES);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    Ok(all[from..].iter().map(|l| l.to_string()).collect())
}

/// The lines of `next` (the log's last lines now, read with `window`) that
/// came after `prev` (its last lines a poll ago).
pub fn fresh(prev: &[String], next: &[String], window: usize) -> Vec<String> {
    // Shorter than the window: `next` is the whole log, which only grows.
    if next.len() < window && next.starts_with(prev) {
        return next[prev.len()..].to_vec();
    }
    // Else where the end of `prev` meets the start of `next`, the latest first.
    for shift in 0..=prev.len() {
        let rest = &prev[shift..];
        if next.starts_with(rest) {
            return next[rest.len()..].to_vec();
        }
    }
    next.to_vec()
}

/// The streams open now, per viewer and in all; cloned into the console's
/// state by the composition root (one per process).
#[derive(Clone)]
pub struct LogTails {
    open: Arc<Mutex<Open>>,
    max: usize,
    per_viewer: usize,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_viewer: HashMap<String, usize>,
}

impl Default for LogTails {
    fn default() -> Self {
        LogTails::new(MAX_STREAMS, MAX_STREAMS_PER_VIEWER)
    }
}

/// One open stream; closing it (dropping this) frees its place.
pub struct TailPermit {
    tails: LogTails,
    viewer: String,
}

impl LogTails {
    pub fn new(max: usize, per_viewer: usize) -> LogTails {
        LogTails {
            open: Arc::default(),
            max,
            per_viewer,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for one more stream of `viewer`, if both caps allow it.
    pub fn try_open(&self, viewer: &str) -> Option<TailPermit> {
        let mut open = self.lock();
        let mine = open.by_viewer.get(viewer).copied().unwrap_or(0);
        if open.total >= self.max || mine >= self.per_viewer {
            return None;
        }
        open.total += 1;
        open.by_viewer.insert(viewer.to_string(), mine + 1);
        Some(TailPermit {
            tails: self.clone(),
            viewer: viewer.to_string(),
        })
    }

    /// Streams open now.
    pub fn open_now(&self) -> usize {
        self.lock().total
    }
}

impl Drop for TailPermit {
    fn drop(&mut self) {
        let mut open = self.tails.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_viewer.get_mut(&self.viewer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_viewer.remove(&self.viewer);
            }
        }
    }
}

/// The container whose log is shown: the one asked for, else the first.
pub fn container_of<'t>(task: &'t Task, asked: Option<&str>) -> UiResult<Option<&'t str>> {
    match asked {
        Some(name) => task
            .containers
            .iter()
            .find(|c| c.name == name)
            .map(|c| Some(c.name.as_str()))
            .ok_or(UiError::NotFound),
        None => Ok(task.containers.first().map(|c| c.name.as_str())),
    }
}

/// A following stream's state between polls.
struct Follow {
    console: Console,
    viewer: Viewer,
    cluster: String,
    task: String,
    container: String,
    /// The last lines read; empty before the first read.
    window: Vec<String>,
    /// No window read yet (the next one resets the page's lines).
    first: bool,
    /// Polled at least once (later polls wait [`POLL`] first).
    polled: bool,
    done: bool,
    started: Instant,
    _permit: TailPermit,
}

fn event(kind: &str, payload: &serde_json::Value) -> Event {
    Event::default()
        .event(kind)
        .json_data(payload)
        .unwrap_or_else(|_| Event::default().event(kind))
}

impl Follow {
    /// The next event, after polling as often as it takes; `None` once ended.
    async fn next(mut self) -> Option<(Event, Follow)> {
        if self.done {
            return None;
        }
        loop {
            if self.polled {
                tokio::time::sleep(POLL).await;
            }
            self.polled = true;
            if self.started.elapsed() >= MAX_LIFETIME {
                return Some(self.end("expired"));
            }
            // Still the viewer's to see, and still there?
            let seen = match admit(&self.console, &self.viewer) {
                Ok(admitted) => admitted.task(&self.cluster, &self.task).await.ok(),
                Err(_) => None,
            };
            let Some(task) = seen else {
                return Some(self.end("gone"));
            };
            let Some(runner) = self.console.runner.clone() else {
                return Some(self.end("gone"));
            };
            // The engine away (an agent reconnecting): try again next poll.
            if let Ok(lines) = tail(&runner, &self.task, &self.container, WINDOW).await {
                if self.first {
                    self.first = false;
                    let shown = &lines[lines.len().saturating_sub(PAGE_LINES)..];
                    let e = event("reset", &serde_json::json!({ "lines": shown }));
                    self.window = lines;
                    return Some((e, self));
                }
                let mut new = fresh(&self.window, &lines, WINDOW);
                self.window = lines;
                if !new.is_empty() {
                    let skipped = new.len().saturating_sub(MAX_LINES_PER_POLL);
                    new.drain(..skipped);
                    let e = event(
                        "lines",
                        &serde_json::json!({ "lines": new, "skipped": skipped }),
                    );
                    return Some((e, self));
                }
            }
            if task.last_status.is_final() {
                return Some(self.end("stopped"));
            }
        }
    }

    fn end(mut self, why: &str) -> (Event, Follow) {
        self.done = true;
        (event("end", &serde_json::json!({ "reason": why })), self)
    }
}

/// Who a stream counts against: the signed-in name, else the client address.
fn viewer_key(principal: &Principal, client: std::net::IpAddr) -> String {
    match principal {
        Principal::Anonymous => format!("ip:{client}"),
        p => format!("user:{}", p.subject()),
    }
}

fn too_many() -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        "too many log streams are open; close one, or retry later\n",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    response
}

pub async fn stream(
    State(console): State<Console>,
    viewer: Viewer,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    Path((cluster, task)): Path<(String, String)>,
    query: Query,
) -> UiResult {
    let admitted = admit(&console, &viewer)?;
    let cluster = admitted.cluster(&cluster).await?;
    let found = admitted.task(&cluster, &task).await?;
    let container = container_of(&found, query.get("container"))?
        .ok_or(UiError::NotFound)?
        .to_string();
    let key = viewer_key(&viewer.principal, console.auth.client_ip(&headers, peer));
    let Some(permit) = console.log_tails.try_open(&key) else {
        return Ok(too_many());
    };
    let follow = Follow {
        console: console.clone(),
        viewer,
        cluster,
        task: last_id(&found.task_arn).to_string(),
        container,
        window: Vec::new(),
        first: true,
        polled: false,
        done: false,
        started: Instant::now(),
        _permit: permit,
    };
    let events = futures::stream::unfold(follow, Follow::next).map(Ok::<_, Infallible>);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Proxies that buffer (nginx) would hold the events back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn last_id(arn: &str) -> &str {
    super::last_segment(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn fresh_lines_follow_the_previous_window() {
        // A log shorter than the window: exact, repeats included.
        assert_eq!(fresh(&lines("a a"), &lines("a a a"), 10), lines("a"));
        assert_eq!(fresh(&[], &lines("a b"), 10), lines("a b"));
        assert!(fresh(&lines("a b"), &lines("a b"), 10).is_empty());
        // A full window slides: the overlap marks the new lines.
        assert_eq!(fresh(&lines("a b c"), &lines("b c d"), 3), lines("d"));
        assert_eq!(fresh(&lines("a b c"), &lines("c d e"), 3), lines("d e"));
        // Nothing in common: all of it is new.
        assert_eq!(fresh(&lines("a b c"), &lines("x y z"), 3), lines("x y z"));
    }

    #[test]
    fn streams_are_capped_per_viewer_and_in_all() {
        let tails = LogTails::new(3, 2);
        let a1 = tails.try_open("a").unwrap();
        let _a2 = tails.try_open("a").unwrap();
        assert!(tails.try_open("a").is_none(), "per viewer");
        let _b1 = tails.try_open("b").unwrap();
        assert!(tails.try_open("c").is_none(), "in all");
        drop(a1);
        assert_eq!(tails.open_now(), 2);
        let _c1 = tails.try_open("c").unwrap();
        assert!(tails.try_open("a").is_none());
    }
}
