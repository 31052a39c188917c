//! The console's runner pages: clusters → container instances (with drain)
//! and services → a service's deployments, events and target health → tasks
//! (status, exit codes, the image each container ran, a log tail followed
//! over server-sent events). Who may see what is the ECS API's rule, judged
//! in [`access`]; the runner may be off, and then none of this exists.
//! May use `runner`, the balancer's read side and `auth`; never the `ecs`
//! adapter (the rules are shared through `auth` and `runner`, not copied
//! from its handlers).

pub mod access;
pub mod clusters;
pub mod logs;
pub mod services;
pub mod tasks;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use maud::{Markup, html};

use super::Console;
use super::error::UiError;
use crate::http::Fault;
use crate::runner::RunnerError;
use crate::runner::engine::EngineError;

pub use logs::LogTails;

/// The runner pages' routes (merged into the console's router, so they
/// get its headers and CSRF secret).
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Console: FromRef<S>,
{
    Router::new()
        .route("/ui/clusters", get(clusters::list))
        .route("/ui/clusters/{cluster}", get(clusters::page))
        .route(
            "/ui/clusters/{cluster}/instances/{instance}/state",
            post(clusters::set_state),
        )
        .route(
            "/ui/clusters/{cluster}/services/{service}",
            get(services::page),
        )
        .route("/ui/clusters/{cluster}/tasks", get(tasks::list))
        .route("/ui/clusters/{cluster}/tasks/{task}", get(tasks::page))
        .route(
            "/ui/clusters/{cluster}/tasks/{task}/logs/stream",
            get(logs::stream),
        )
}

impl From<RunnerError> for UiError {
    /// What is missing is a missing page; the store or the container engine
    /// not answering is a 503; the rest is ours (its cause never shown).
    fn from(e: RunnerError) -> Self {
        match e {
            RunnerError::ClusterNotFound
            | RunnerError::ServiceNotFound
            | RunnerError::ServiceNotActive => UiError::NotFound,
            RunnerError::Store(e) => UiError::Fault(Fault::classify(e.is_unavailable(), e)),
            RunnerError::Engine(EngineError::Unavailable(cause)) => {
                UiError::Fault(Fault::Unavailable(format!("container engine: {cause}")))
            }
            other => UiError::Fault(Fault::Internal(other.to_string())),
        }
    }
}

/// Names in paths: clusters, services and tasks are letters, digits,
/// hyphens and underscores, so they need no escaping.
pub fn cluster_path(cluster: &str) -> String {
    format!("/ui/clusters/{cluster}")
}

pub fn service_path(cluster: &str, service: &str) -> String {
    format!("/ui/clusters/{cluster}/services/{service}")
}

pub fn tasks_path(cluster: &str) -> String {
    format!("/ui/clusters/{cluster}/tasks")
}

pub fn task_path(cluster: &str, task: &str) -> String {
    format!("/ui/clusters/{cluster}/tasks/{task}")
}

pub fn instance_state_path(cluster: &str, instance: &str) -> String {
    format!("/ui/clusters/{cluster}/instances/{instance}/state")
}

/// The last segment of an ARN (a task id, a container instance id).
pub fn last_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// `family:revision` of a task definition ARN.
pub fn definition_name(arn: &str) -> &str {
    last_segment(arn)
}

/// A wire timestamp (Unix seconds, fractional) as the console shows times.
pub fn seconds(at: f64) -> Markup {
    super::layout::time((at * 1000.0) as i64)
}

/// Crumbs back to the clusters and, when given, the cluster.
pub fn crumbs(cluster: Option<&str>) -> Markup {
    html! {
        p.crumbs {
            a href="/ui/clusters" { "Clusters" } " / "
            @if let Some(c) = cluster { a href=(cluster_path(c)) { (c) } " / " }
        }
    }
}

/// A status as a badge whose class the stylesheet colours.
pub fn status(text: &str) -> Markup {
    let class = match text {
        "ACTIVE" | "RUNNING" | "HEALTHY" | "COMPLETED" | "PRIMARY" | "healthy" => "ok",
        "DRAINING" | "PENDING" | "PROVISIONING" | "ACTIVATING" | "IN_PROGRESS" | "initial"
        | "draining" | "UNKNOWN" => "wait",
        "FAILED" | "UNHEALTHY" | "unhealthy" | "INACTIVE" => "bad",
        _ => "",
    };
    html! { span class={ "badge status " (class) } { (text) } }
}
