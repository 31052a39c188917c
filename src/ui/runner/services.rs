//! `GET /ui/clusters/{cluster}/services/{service}`: desired, running and
//! pending counts, the deployments and their rollout, recent events, and
//! the health of its load balancers' targets (target group → targets).
//! A service the viewer may not see (DescribeServices' rule) is missing.

use axum::extract::{Path, State};
use maud::{Markup, html};

use super::super::error::UiResult;
use super::super::layout::page as shell;
use super::super::session::Viewer;
use super::super::{Console, ok};
use super::access::admit;
use super::clusters::rollout;
use super::{crumbs, definition_name, seconds, status, tasks_path};
use crate::balancer::BalancerError;
use crate::balancer::model::TargetGroup;
use crate::runner::Runner;
use crate::runner::model::{Service, ServiceLoadBalancer};

/// The most events shown (a service keeps 100).
const MAX_EVENTS: usize = 50;

pub async fn page(
    State(console): State<Console>,
    viewer: Viewer,
    Path((cluster, service)): Path<(String, String)>,
) -> UiResult {
    let admitted = admit(&console, &viewer)?;
    let cluster = admitted.cluster(&cluster).await?;
    let service = admitted.service(&cluster, &service).await?;
    let groups = target_groups(admitted.runner, &service.load_balancers).await?;
    let tasks_link = format!("{}?service={}", tasks_path(&cluster), service.service_name);
    let body = html! {
        (crumbs(Some(&cluster)))
        h1 { "Service " (service.service_name) }
        dl.facts #service {
            dt { "Status" } dd { (status(service.status.as_str())) }
            dt { "Task definition" } dd { code { (definition_name(&service.task_definition)) } }
            dt { "Desired" } dd #desired { (service.desired_count) }
            dt { "Running" } dd #running { (service.running_count) }
            dt { "Pending" } dd #pending { (service.pending_count) }
            dt { "Launch type" } dd { (service.launch_type) }
            dt { "Created" } dd { (seconds(service.created_at)) @if let Some(by) = &service.created_by { " by " code { (by) } } }
        }
        p.actions { a.button href=(tasks_link) { "Tasks of this service" } }
        (deployments(&service))
        (load_balancing(&service.load_balancers, &groups))
        (events(&service))
    };
    ok(shell(
        &format!("Service {}", service.service_name),
        Some(&viewer),
        body,
    ))
}

/// Each load balancer entry's target group; `None` when it is gone.
async fn target_groups(
    runner: &Runner,
    lbs: &[ServiceLoadBalancer],
) -> UiResult<Vec<Option<TargetGroup>>> {
    let mut out = Vec::new();
    for lb in lbs {
        let Some(balancer) = runner.balancer() else {
            out.push(None);
            continue;
        };
        match balancer.target_group(&lb.target_group_arn).await {
            Ok(g) => out.push(Some(g)),
            Err(BalancerError::TargetGroupNotFound) => out.push(None),
            Err(e) => return Err(crate::runner::RunnerError::Balancer(e.to_string()).into()),
        }
    }
    Ok(out)
}

fn deployments(service: &Service) -> Markup {
    html! {
        h2 { "Deployments" }
        table.rows #deployments {
            thead { tr {
                th scope="col" { "Deployment" }
                th scope="col" { "Status" }
                th scope="col" { "Task definition" }
                th.num scope="col" { "Desired" }
                th.num scope="col" { "Running" }
                th.num scope="col" { "Pending" }
                th.num scope="col" { "Failed" }
                th scope="col" { "Rollout" }
                th scope="col" { "Updated" }
            } }
            tbody {
                @for d in &service.deployments {
                    tr {
                        td { code { (d.id) } }
                        td { (status(d.status.as_str())) }
                        td { code { (definition_name(&d.task_definition)) } }
                        td.num { (d.desired_count) }
                        td.num { (d.running_count) }
                        td.num { (d.pending_count) }
                        td.num { (d.failed_tasks) }
                        td { (rollout(d.rollout_state, &d.rollout_state_reason)) }
                        td { (seconds(d.updated_at)) }
                    }
                }
            }
        }
    }
}

fn load_balancing(lbs: &[ServiceLoadBalancer], groups: &[Option<TargetGroup>]) -> Markup {
    html! {
        @if !lbs.is_empty() {
            h2 { "Target health" }
            @for (lb, group) in lbs.iter().zip(groups) {
                h3 {
                    "Container " code { (lb.container_name) } " port " (lb.container_port) " → "
                    @match group {
                        Some(g) => { "target group " code { (g.name) } }
                        None => { code { (lb.target_group_arn) } }
                    }
                }
                @match group {
                    None => p.warning { "The target group does not exist (any more)." },
                    Some(g) if g.targets.is_empty() => p.muted { "No targets registered." },
                    Some(g) => {
                        table.rows.targets {
                            thead { tr {
                                th scope="col" { "Target" }
                                th.num scope="col" { "Port" }
                                th scope="col" { "State" }
                                th scope="col" { "Reason" }
                            } }
                            tbody {
                                @for t in &g.targets {
                                    tr {
                                        td { code { (t.id) } }
                                        td.num { (t.port) }
                                        td { (status(t.state.as_str())) }
                                        td {
                                            @if let Some(r) = &t.reason { code { (r) } }
                                            @if let Some(d) = &t.description { " " span.muted { (d) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn events(service: &Service) -> Markup {
    html! {
        h2 { "Events" }
        @if service.events.is_empty() {
            p.muted { "No events yet." }
        } @else {
            table.rows #events {
                thead { tr { th scope="col" { "When" } th scope="col" { "Message" } } }
                tbody {
                    @for e in service.events.iter().take(MAX_EVENTS) {
                        tr { td { (seconds(e.created_at)) } td { (e.message) } }
                    }
                }
            }
        }
    }
}
