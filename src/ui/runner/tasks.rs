//! `GET /ui/clusters/{cluster}/tasks` (the tasks the viewer may see, by
//! desired status RUNNING or STOPPED, optionally of one service) and `GET
//! /ui/clusters/{cluster}/tasks/{task}`: its status, each container's exit
//! code and the image digest it ran (linked to the image page), why it
//! stopped, and the last lines of a container's log, followed live by
//! `static/logtail.js` when scripts run.

use axum::extract::{Path, State};
use maud::{Markup, html};

use super::super::assets;
use super::super::error::{UiError, UiResult};
use super::super::layout::{MAX_LISTED, more, page as shell, short_digest};
use super::super::session::{Viewer, encode};
use super::super::{Console, image_path, ok};
use super::access::admit;
use super::logs::{self, PAGE_LINES, container_of};
use super::{crumbs, definition_name, last_segment, seconds, service_path, status, task_path};
use crate::http::Query;
use crate::oci::{Digest, Reference};
use crate::runner::engine::EngineError;
use crate::runner::images::RegistryHosts;
use crate::runner::model::{Container, DesiredStatus, Task};
use crate::runner::{RunnerError, TaskFilter};

pub async fn list(
    State(console): State<Console>,
    viewer: Viewer,
    Path(cluster): Path<String>,
    query: Query,
) -> UiResult {
    let admitted = admit(&console, &viewer)?;
    let cluster = admitted.cluster(&cluster).await?;
    let desired = match query.get("status") {
        None | Some("RUNNING") => DesiredStatus::Running,
        Some("STOPPED") => DesiredStatus::Stopped,
        Some(_) => return Err(UiError::BadRequest("status is RUNNING or STOPPED")),
    };
    let service = query
        .get("service")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let filter = TaskFilter {
        service: service.clone(),
        desired_status: Some(desired.as_str().to_string()),
        ..Default::default()
    };
    let mut tasks = Vec::new();
    for t in admitted.runner.list_tasks(&cluster, &filter).await? {
        if admitted.may_see_task(&t).await? {
            tasks.push(t);
        }
    }
    tasks.sort_by(|a, b| b.created_at.total_cmp(&a.created_at));
    let total = tasks.len();
    let base = super::tasks_path(&cluster);
    let link = |status: DesiredStatus| match &service {
        Some(s) => format!("{base}?status={status}&service={}", encode(s)),
        None => format!("{base}?status={status}"),
    };
    let body = html! {
        (crumbs(Some(&cluster)))
        h1 { "Tasks" @if let Some(s) = &service { " of " a href=(service_path(&cluster, s)) { (s) } } }
        nav.toolbar aria-label="Desired status" {
            @for s in [DesiredStatus::Running, DesiredStatus::Stopped] {
                @if s == desired { strong aria-current="page" { (s) } }
                @else { a href=(link(s)) { (s) } }
                " "
            }
        }
        @if tasks.is_empty() {
            p.muted { "No " (desired.as_str().to_lowercase()) " tasks you may see." }
        } @else {
            table.rows #tasks {
                thead { tr {
                    th scope="col" { "Task" }
                    th scope="col" { "Task definition" }
                    th scope="col" { "Status" }
                    th scope="col" { "Health" }
                    th scope="col" { "Started by / group" }
                    th scope="col" { "Created" }
                    th scope="col" { "Stopped" }
                } }
                tbody {
                    @for t in tasks.iter().take(MAX_LISTED) {
                        @let id = last_segment(&t.task_arn);
                        tr {
                            td { a.mono href=(task_path(&cluster, id)) { (id) } }
                            td { code { (definition_name(&t.task_definition_arn)) } }
                            td { (status(t.last_status.as_str())) }
                            td { (status(t.health_status.as_str())) }
                            td {
                                @if let Some(by) = &t.started_by { code { (by) } }
                                @else if let Some(group) = &t.group { code.muted { (group) } }
                            }
                            td { (seconds(t.created_at)) }
                            td {
                                @if let Some(at) = t.stopped_at { (seconds(at)) }
                                @if let Some(why) = &t.stopped_reason { br; span.muted { (why) } }
                            }
                        }
                    }
                }
            }
            p { (more(total)) }
        }
    };
    ok(shell(&format!("Tasks of {cluster}"), Some(&viewer), body))
}

/// What the log section shows.
enum LogView {
    /// The task has no containers.
    None,
    Lines(Vec<String>),
    /// Not readable now (the engine or the agent away, the containers gone).
    Unavailable(&'static str),
}

pub async fn page(
    State(console): State<Console>,
    viewer: Viewer,
    Path((cluster, task)): Path<(String, String)>,
    query: Query,
) -> UiResult {
    let admitted = admit(&console, &viewer)?;
    let cluster = admitted.cluster(&cluster).await?;
    let task = admitted.task(&cluster, &task).await?;
    let id = last_segment(&task.task_arn).to_string();
    let container = container_of(&task, query.get("container"))?;
    let log = match container {
        None => LogView::None,
        Some(c) => match logs::tail(admitted.runner, &id, c, PAGE_LINES).await {
            Ok(lines) => LogView::Lines(lines),
            Err(RunnerError::InvalidParameter(_) | RunnerError::Client(_)) => LogView::Unavailable(
                "the task's containers no longer exist on the container engine",
            ),
            Err(RunnerError::Engine(EngineError::Unavailable(_))) => {
                LogView::Unavailable("the container engine does not answer now")
            }
            Err(e) => return Err(e.into()),
        },
    };
    let hosts = admitted.runner.hosts();
    let body = html! {
        (crumbs(Some(&cluster)))
        h1 { "Task " code { (id) } }
        (facts(&cluster, &task))
        h2 { "Containers" }
        (containers(hosts, &task.containers))
        @if let Some(c) = container {
            (log_section(&cluster, &id, &task, c, &log))
        }
    };
    ok(shell(&format!("Task {id}"), Some(&viewer), body))
}

fn facts(cluster: &str, task: &Task) -> Markup {
    html! {
        dl.facts #task {
            dt { "Status" } dd #last-status { (status(task.last_status.as_str())) }
            dt { "Desired status" } dd { (task.desired_status) }
            dt { "Health" } dd { (status(task.health_status.as_str())) }
            dt { "Task definition" } dd { code { (definition_name(&task.task_definition_arn)) } }
            @if let Some(arn) = &task.container_instance_arn {
                dt { "Container instance" } dd { code { (last_segment(arn)) } }
            }
            @if let Some(group) = &task.group {
                dt { "Group" } dd {
                    @match group.strip_prefix("service:") {
                        Some(s) => a href=(service_path(cluster, s)) { (group) },
                        None => code { (group) },
                    }
                }
            }
            @if let Some(by) = &task.started_by { dt { "Started by" } dd { code { (by) } } }
            dt { "Created" } dd { (seconds(task.created_at)) }
            @if let Some(at) = task.started_at { dt { "Started" } dd { (seconds(at)) } }
            @if let Some(at) = task.stopped_at { dt { "Stopped" } dd { (seconds(at)) } }
            @if let Some(code) = task.stop_code { dt { "Stop code" } dd { code { (code) } } }
            @if let Some(why) = &task.stopped_reason { dt { "Stopped reason" } dd #stopped-reason { (why) } }
        }
    }
}

/// The image page of the digest a container ran, when it names one here.
fn image_link(hosts: &RegistryHosts, c: &Container) -> Option<(String, Digest)> {
    let digest: Digest = c.image_digest.as_deref()?.parse().ok()?;
    let repo = hosts.parse(&c.image).ok()?.repo;
    let path = image_path(&repo, &Reference::Digest(digest.clone()));
    Some((path, digest))
}

fn containers(hosts: &RegistryHosts, containers: &[Container]) -> Markup {
    html! {
        table.rows #containers {
            thead { tr {
                th scope="col" { "Container" }
                th scope="col" { "Image" }
                th scope="col" { "Status" }
                th.num scope="col" { "Exit code" }
                th scope="col" { "Reason" }
                th scope="col" { "Health" }
                th scope="col" { "Ports" }
            } }
            tbody {
                @for c in containers {
                    tr {
                        td { (c.name) }
                        td {
                            code { (c.image) }
                            @if let Some((path, digest)) = image_link(hosts, c) {
                                br; a.mono.digest href=(path) title=(digest) { (short_digest(&digest)) }
                            }
                        }
                        td { (status(c.last_status.as_str())) }
                        td.num.exit-code { @if let Some(code) = c.exit_code { (code) } }
                        td { @if let Some(why) = &c.reason { (why) } }
                        td { (status(c.health_status.as_str())) }
                        td {
                            @for b in &c.network_bindings {
                                code { (b.bind_ip) ":" (b.host_port) "→" (b.container_port) "/" (b.protocol) } br;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn log_section(cluster: &str, id: &str, task: &Task, container: &str, log: &LogView) -> Markup {
    let page = task_path(cluster, id);
    let stream = format!("{page}/logs/stream?container={}", encode(container));
    html! {
        h2 { "Log of " code { (container) } }
        @if task.containers.len() > 1 {
            nav.toolbar aria-label="Container logs" {
                @for c in &task.containers {
                    @if c.name == container { strong aria-current="page" { (c.name) } }
                    @else { a href={ (page) "?container=" (encode(&c.name)) } { (c.name) } }
                    " "
                }
            }
        }
        @match log {
            LogView::None => {}
            LogView::Unavailable(why) => p.muted #log-unavailable { "The log cannot be read: " (why) "." },
            LogView::Lines(lines) => {
                p.muted {
                    "The last " (PAGE_LINES) " lines. "
                    span #log-status role="status" {
                        @if task.last_status.is_final() { "The task has stopped." }
                        @else { "Reload for newer lines." }
                    }
                }
                pre.log #log tabindex="0" aria-label="Container log" data-log-stream=[(!task.last_status.is_final()).then_some(&stream)] {
                    @for line in lines { (line) "\n" }
                }
                @if !task.last_status.is_final() {
                    script src=(assets::logtail_path()) defer {}
                }
            }
        }
    }
}
