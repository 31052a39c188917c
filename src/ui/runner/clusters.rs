//! `GET /ui/clusters` (every cluster, with its counts), `GET
//! /ui/clusters/{cluster}` (its container instances and the services the
//! viewer may see) and `POST /ui/clusters/{cluster}/instances/{id}/state`
//! (drain or activate, as UpdateContainerInstancesState; operators only).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::error::{UiError, UiResult};
use super::super::layout::page as shell;
use super::super::session::{CsrfForm, Viewer};
use super::super::{Console, ok};
use super::access::{Admitted, admit};
use super::{
    cluster_path, crumbs, definition_name, instance_state_path, last_segment, service_path, status,
    tasks_path,
};
use crate::auth::EcsNeed;
use crate::http::Query;
use crate::runner::instances::InstanceView;
use crate::runner::model::{RolloutState, Service};
use crate::runner::status::{DeploymentStatus, InstanceState};

/// One row of the clusters page.
struct ClusterRow {
    name: String,
    instances: usize,
    running: i64,
    pending: i64,
    services: i64,
}

pub async fn list(State(console): State<Console>, viewer: Viewer) -> UiResult {
    let admitted = admit(&console, &viewer)?;
    let runner = admitted.runner;
    let mut rows = Vec::new();
    for (name, _) in runner.clusters().await? {
        let (services, running, pending) = runner.cluster_counts(&name).await?;
        let instances = runner
            .instance_views(&name)
            .await?
            .iter()
            .filter(|v| v.record.status != InstanceState::Inactive)
            .count();
        rows.push(ClusterRow {
            name,
            instances,
            running,
            pending,
            services,
        });
    }
    let body = html! {
        h1 { "Clusters" }
        @if rows.is_empty() {
            p.muted { "No clusters yet: CreateCluster, or RunTask into " code { "default" } ", makes one." }
        } @else {
            table.rows #clusters {
                thead { tr {
                    th scope="col" { "Cluster" }
                    th.num scope="col" { "Container instances" }
                    th.num scope="col" { "Running tasks" }
                    th.num scope="col" { "Pending tasks" }
                    th.num scope="col" { "Active services" }
                } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { a href=(cluster_path(&r.name)) { (r.name) } }
                            td.num { (r.instances) }
                            td.num { (r.running) }
                            td.num { (r.pending) }
                            td.num { (r.services) }
                        }
                    }
                }
            }
        }
    };
    ok(shell("Clusters", Some(&viewer), body))
}

pub async fn page(
    State(console): State<Console>,
    viewer: Viewer,
    Path(cluster): Path<String>,
    query: Query,
) -> UiResult {
    let admitted = admit(&console, &viewer)?;
    let cluster = admitted.cluster(&cluster).await?;
    let runner = admitted.runner;
    let instances = runner.instance_views(&cluster).await?;
    let services = visible_services(&admitted, &cluster).await?;
    let may_drain = admitted.may(EcsNeed::Operator);
    let done = query
        .get("done")
        .filter(|d| *d == "ACTIVE" || *d == "DRAINING");
    let body = html! {
        (crumbs(None))
        h1 { "Cluster " (cluster) }
        @if let Some(d) = done {
            p.notice role="status" { "The container instance is now " (d) "." }
        }
        p.actions { a.button href=(tasks_path(&cluster)) { "Tasks" } }
        h2 { "Container instances" }
        (instances_table(&cluster, &instances, may_drain, &viewer.csrf))
        h2 { "Services" }
        (services_table(&cluster, &services))
    };
    ok(shell(&format!("Cluster {cluster}"), Some(&viewer), body))
}

/// The cluster's services the viewer may see (ListServices' rule), with
/// their live counts.
async fn visible_services(admitted: &Admitted<'_>, cluster: &str) -> UiResult<Vec<Service>> {
    let mut names = Vec::new();
    for s in admitted.runner.list_services(cluster).await? {
        if admitted.may_see_service(&s).await? {
            names.push(s.service_name);
        }
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    Ok(admitted
        .runner
        .describe_services(cluster, &names)
        .await?
        .into_iter()
        .filter_map(|(_, s)| s)
        .collect())
}

fn instances_table(cluster: &str, views: &[InstanceView], may_drain: bool, csrf: &str) -> Markup {
    html! {
        @if views.is_empty() {
            p.muted { "No container instances: start a " code { "wharf agent" } " on a host to add one." }
        } @else {
            table.rows #instances {
                thead { tr {
                    th scope="col" { "Instance" }
                    th scope="col" { "Agent" }
                    th scope="col" { "Status" }
                    th.num scope="col" { "CPU (remaining / registered)" }
                    th.num scope="col" { "Memory MiB (remaining / registered)" }
                    th.num scope="col" { "Tasks" }
                    th scope="col" { "Attributes" }
                    @if may_drain { th scope="col" { "Action" } }
                } }
                tbody {
                    @for v in views {
                        @let r = &v.record;
                        @let left = v.placement.remaining();
                        tr {
                            td {
                                code { (r.id) }
                                @if r.embedded { " " span.muted { "(this server)" } }
                                @if let Some(ec2) = &r.ec2_instance_id { br; span.muted { (ec2) } }
                            }
                            td {
                                @if r.embedded { "embedded" }
                                @else if r.agent_connected { (status("ACTIVE")) " connected" }
                                @else { (status("UNHEALTHY")) " away" }
                                @if let Some(a) = &r.address { br; code { (a) } }
                                @if let Some(v) = &r.version_info.agent_version { br; span.muted { "agent " (v) } }
                            }
                            td {
                                (status(r.status.as_str()))
                                @if let Some(why) = &r.status_reason { br; span.muted { (why) } }
                            }
                            td.num { (left.cpu) " / " (r.cpu) }
                            td.num { (left.memory_mib) " / " (r.memory_mib) }
                            td.num { (v.running) " running" @if v.pending > 0 { ", " (v.pending) " pending" } }
                            td {
                                @for (name, value) in &r.attributes {
                                    code { (name) @if let Some(value) = value { "=" (value) } } br;
                                }
                            }
                            @if may_drain {
                                td { (state_form(cluster, &r.id, r.status, csrf)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Drain an ACTIVE instance, activate a DRAINING one (nothing else changes state).
fn state_form(cluster: &str, id: &str, now: InstanceState, csrf: &str) -> Markup {
    let (to, label) = match now {
        InstanceState::Active => ("DRAINING", "Drain"),
        InstanceState::Draining => ("ACTIVE", "Activate"),
        _ => return html! {},
    };
    html! {
        form.actions method="post" action=(instance_state_path(cluster, id)) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="status" value=(to);
            button.danger[to == "DRAINING"] type="submit" aria-label={ (label) " " (id) } { (label) }
        }
    }
}

fn services_table(cluster: &str, services: &[Service]) -> Markup {
    html! {
        @if services.is_empty() {
            p.muted { "No services you may see." }
        } @else {
            table.rows #services {
                thead { tr {
                    th scope="col" { "Service" }
                    th scope="col" { "Status" }
                    th scope="col" { "Task definition" }
                    th.num scope="col" { "Desired" }
                    th.num scope="col" { "Running" }
                    th.num scope="col" { "Pending" }
                    th scope="col" { "Rollout" }
                } }
                tbody {
                    @for s in services {
                        @let rollout = s.deployments.iter().find(|d| d.status == DeploymentStatus::Primary).map(|d| d.rollout_state);
                        tr {
                            td { a href=(service_path(cluster, &s.service_name)) { (s.service_name) } }
                            td { (status(s.status.as_str())) }
                            td { code { (definition_name(&s.task_definition)) } }
                            td.num { (s.desired_count) }
                            td.num { (s.running_count) }
                            td.num { (s.pending_count) }
                            td { @if let Some(r) = rollout { (status(r.as_str())) } }
                        }
                    }
                }
            }
        }
    }
}

/// The drain / activate form.
#[derive(Debug, Deserialize)]
pub struct StateForm {
    /// `DRAINING` or `ACTIVE`.
    status: String,
}

/// `POST /ui/clusters/{cluster}/instances/{id}/state`: what
/// UpdateContainerInstancesState does, for one instance, by an operator.
pub async fn set_state(
    State(console): State<Console>,
    viewer: Viewer,
    Path((cluster, instance)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<StateForm>,
) -> UiResult {
    let admitted = admit(&console, &viewer)?;
    let cluster = admitted.cluster(&cluster).await?;
    if !admitted.may(EcsNeed::Operator) {
        return Err(UiError::Forbidden);
    }
    let to = match InstanceState::parse(&form.status) {
        Some(s @ (InstanceState::Active | InstanceState::Draining)) => s,
        _ => return Err(UiError::BadRequest("the status is ACTIVE or DRAINING")),
    };
    let (changed, failures) = admitted
        .runner
        .update_instances_state(&cluster, std::slice::from_ref(&instance), to)
        .await?;
    if let Some((_, reason)) = failures.first() {
        return Err(if reason == "MISSING" {
            UiError::NotFound
        } else {
            UiError::BadRequest("only ACTIVE and DRAINING instances change state")
        });
    }
    let id = changed
        .first()
        .map(|c| last_segment(&c.container_instance_arn).to_string())
        .unwrap_or(instance);
    tracing::info!(cluster = %cluster, instance = %id, status = to.as_str(), who = %viewer.principal.subject(), "console instance state");
    let to_page = format!("{}?done={}", cluster_path(&cluster), to.as_str());
    Ok(Redirect::to(&to_page).into_response())
}

/// A deployment's rollout, in words.
pub fn rollout(state: RolloutState, reason: &str) -> Markup {
    html! {
        (status(state.as_str()))
        @if !reason.is_empty() { " " span.muted { (reason) } }
    }
}
