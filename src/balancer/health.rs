//! Target health checks with ELB's state machine. One replica checks (the
//! holder of the `balancer-health` lease) and records each target's state
//! in its target group, where every replica's data plane and the service
//! scheduler read it. A new target turns `healthy` after one passing
//! check; afterwards `unhealthyThreshold` failures in a row make it
//! `unhealthy` and `healthyThreshold` passes in a row `healthy` again.
//! Draining targets are removed once the deregistration delay has passed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::model::{HealthCheck, Protocol, Target, TargetGroup, TargetState};
use super::{Balancer, Result};
use crate::storage::Lease;

/// How often due checks are looked for.
const PASS: Duration = Duration::from_secs(1);
/// At most this many checks run at once.
const CONCURRENT_CHECKS: usize = 64;

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// ELB's reason code and a description.
    Fail(&'static str, String),
}

/// Whether HTTP status `code` passes `matcher` (`200`, `200,202`, `200-299`).
pub fn matches(matcher: &str, code: u16) -> bool {
    matcher.split(',').any(|part| {
        let part = part.trim();
        match part.split_once('-') {
            Some((low, high)) => match (low.parse::<u16>(), high.parse::<u16>()) {
                (Ok(low), Ok(high)) => (low..=high).contains(&code),
                _ => false,
            },
            None => part.parse::<u16>() == Ok(code),
        }
    })
}

/// Applies one check's outcome to `t`; whether its state changed.
pub fn apply(t: &mut Target, hc: &HealthCheck, outcome: &Outcome, now_ms: i64) -> bool {
    let before = t.state;
    t.checked_ms = Some(now_ms);
    match outcome {
        Outcome::Pass => {
            t.passes = t.passes.saturating_add(1);
            t.failures = 0;
            let healthy = match t.state {
                TargetState::Initial => true,
                TargetState::Unhealthy => t.passes >= hc.healthy_threshold,
                _ => t.state == TargetState::Healthy,
            };
            if healthy && t.state != TargetState::Healthy {
                t.state = TargetState::Healthy;
                t.healthy_since_ms = Some(now_ms);
            }
            if t.state == TargetState::Healthy {
                t.reason = None;
                t.description = None;
            }
        }
        Outcome::Fail(reason, description) => {
            t.failures = t.failures.saturating_add(1);
            t.passes = 0;
            if t.failures >= hc.unhealthy_threshold {
                t.state = TargetState::Unhealthy;
                t.healthy_since_ms = None;
            }
            match t.state {
                TargetState::Unhealthy => {
                    t.reason = Some((*reason).to_string());
                    t.description = Some(description.clone());
                }
                TargetState::Initial => {
                    t.reason = Some("Elb.InitialHealthChecking".into());
                    t.description = Some("Initial health checks in progress".into());
                }
                _ => {}
            }
        }
    }
    t.state != before
}

/// Whether `t` is due for a check at `now_ms`.
fn due(t: &Target, hc: &HealthCheck, now_ms: i64) -> bool {
    matches!(
        t.state,
        TargetState::Initial | TargetState::Healthy | TargetState::Unhealthy
    ) && t
        .checked_ms
        .is_none_or(|c| c + i64::from(hc.interval_seconds) * 1000 <= now_ms)
}

/// Checks `t` once as `hc` says.
async fn check(client: &reqwest::Client, t: &Target, hc: &HealthCheck) -> Outcome {
    let Ok(ip) = t.address.parse::<IpAddr>() else {
        return Outcome::Fail(
            "Target.IpUnusable",
            "The target address is not an IP".into(),
        );
    };
    let port = match hc.port.as_str() {
        "traffic-port" => t.port,
        p => p.parse().unwrap_or(t.port),
    };
    let timeout = Duration::from_secs(u64::from(hc.timeout_seconds.max(1)));
    let addr = SocketAddr::new(ip, port);
    let timed_out = || Outcome::Fail("Target.Timeout", "Request timed out".into());
    match hc.protocol {
        Protocol::Tcp => match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
            .await
        {
            Ok(Ok(_)) => Outcome::Pass,
            Ok(Err(_)) => Outcome::Fail("Target.FailedHealthChecks", "Health checks failed".into()),
            Err(_) => timed_out(),
        },
        Protocol::Http => {
            let url = format!("http://{addr}{}", hc.path);
            match client.get(&url).timeout(timeout).send().await {
                Ok(response) => {
                    let code = response.status().as_u16();
                    if matches(&hc.matcher, code) {
                        Outcome::Pass
                    } else {
                        Outcome::Fail(
                            "Target.ResponseCodeMismatch",
                            format!("Health checks failed with these codes: [{code}]"),
                        )
                    }
                }
                Err(e) if e.is_timeout() => timed_out(),
                Err(_) => Outcome::Fail("Target.FailedHealthChecks", "Health checks failed".into()),
            }
        }
    }
}

/// Whether [`settle`] would change `g`: a draining target whose delay has
/// passed, or a target of a group without checks not yet `unavailable`.
fn unsettled(g: &TargetGroup, now_ms: i64) -> bool {
    let delay = i64::from(g.deregistration_delay_seconds) * 1000;
    g.targets.iter().any(|t| match t.state {
        TargetState::Draining => t.draining_since_ms.is_some_and(|s| s + delay <= now_ms),
        TargetState::Unavailable => false,
        _ => !g.health_check.enabled,
    })
}

/// Removes draining targets whose delay has passed and marks targets of
/// groups without checks `unavailable`; whether `g` changed.
pub fn settle(g: &mut TargetGroup, now_ms: i64) -> bool {
    let before = g.targets.len();
    let delay = i64::from(g.deregistration_delay_seconds) * 1000;
    g.targets.retain(|t| {
        t.state != TargetState::Draining || t.draining_since_ms.is_none_or(|s| s + delay > now_ms)
    });
    let mut changed = g.targets.len() != before;
    if !g.health_check.enabled {
        for t in &mut g.targets {
            if t.state != TargetState::Draining && t.state != TargetState::Unavailable {
                t.state = TargetState::Unavailable;
                t.reason = Some("Target.HealthCheckDisabled".into());
                t.description = Some("Health checks are disabled".into());
                changed = true;
            }
        }
    }
    changed
}

/// One round over every target group: the due checks of all groups at
/// once (at most [`CONCURRENT_CHECKS`] at a time, so one group's slow
/// targets do not hold the others back), then each group's results.
pub async fn run_once(balancer: &Balancer, client: &reqwest::Client) -> Result<()> {
    use futures::StreamExt;
    let now = crate::registry::now_ms();
    let groups = balancer.target_groups().await?;
    // Owned, so the checks' futures borrow nothing across the stream.
    let due: Vec<(usize, Target, HealthCheck)> = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.health_check.enabled)
        .flat_map(|(i, g)| {
            g.targets
                .iter()
                .filter(move |t| due(t, &g.health_check, now))
                .map(move |t| (i, t.clone(), g.health_check.clone()))
        })
        .collect();
    let outcomes: Vec<(usize, String, u16, Outcome)> = futures::stream::iter(due)
        .map(|(i, t, hc)| {
            let client = client.clone();
            async move {
                let outcome = check(&client, &t, &hc).await;
                (i, t.id, t.port, outcome)
            }
        })
        .buffer_unordered(CONCURRENT_CHECKS)
        .collect()
        .await;
    for (i, group) in groups.iter().enumerate() {
        let results: Vec<&(usize, String, u16, Outcome)> =
            outcomes.iter().filter(|r| r.0 == i).collect();
        if results.is_empty() && !unsettled(group, now) {
            continue;
        }
        let checked = crate::registry::now_ms();
        balancer
            .modify_group(&group.arn, |g| {
                let mut changed = settle(g, checked);
                let hc = g.health_check.clone();
                for (_, id, port, outcome) in &results {
                    // A target deregistered while it was checked is left draining.
                    if let Some(t) = g.targets.iter_mut().find(|t| {
                        &t.id == id
                            && t.port == *port
                            && matches!(
                                t.state,
                                TargetState::Initial | TargetState::Healthy | TargetState::Unhealthy
                            )
                    }) {
                        if apply(t, &hc, outcome, checked) {
                            tracing::info!(target_group = %g.name, target = %id, port, state = t.state.as_str(), reason = t.reason.as_deref().unwrap_or(""), "target health changed");
                        }
                        changed = true;
                    }
                }
                Ok(changed)
            })
            .await?;
    }
    Ok(())
}

/// The client health checks use (plain HTTP; the provider only satisfies
/// the TLS stack reqwest is built with).
pub fn client() -> reqwest::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent("ELB-HealthChecker/2.0")
        .build()
}

/// Checks targets while this replica holds the `balancer-health` lease.
pub async fn run(balancer: Balancer, registry: crate::registry::Registry, stop: CancellationToken) {
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "load balancer: no health check client; targets stay as they are");
            return;
        }
    };
    let mut lease: Option<Lease> = None;
    loop {
        if let Some(held) = lease.as_mut()
            && !held.alive().await
        {
            lease = None;
        }
        if lease.is_none() {
            match registry.lease("balancer-health").await {
                Ok(held) => lease = held,
                Err(e) => {
                    tracing::warn!(error = %e, "load balancer: cannot take the health check lease")
                }
            }
        }
        if lease.is_some()
            && let Err(e) = run_once(&balancer, &client).await
        {
            tracing::warn!(error = %e, "load balancer: health checks");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PASS) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc() -> HealthCheck {
        HealthCheck {
            enabled: true,
            protocol: Protocol::Http,
            port: "traffic-port".into(),
            path: "/".into(),
            interval_seconds: 5,
            timeout_seconds: 2,
            healthy_threshold: 3,
            unhealthy_threshold: 2,
            matcher: "200-299".into(),
        }
    }

    fn target() -> Target {
        Target {
            id: "i-1".into(),
            port: 80,
            availability_zone: None,
            address: "127.0.0.1".into(),
            state: TargetState::Initial,
            reason: Some("Elb.RegistrationInProgress".into()),
            description: None,
            registered_ms: 0,
            draining_since_ms: None,
            passes: 0,
            failures: 0,
            checked_ms: None,
            healthy_since_ms: None,
            task: None,
        }
    }

    fn fail() -> Outcome {
        Outcome::Fail("Target.Timeout", "Request timed out".into())
    }

    #[test]
    fn matchers() {
        assert!(matches("200", 200));
        assert!(!matches("200", 204));
        assert!(matches("200,204", 204));
        assert!(matches("200-299", 250));
        assert!(!matches("200-299", 302));
        assert!(!matches("x-y", 200));
    }

    #[test]
    fn one_pass_makes_a_new_target_healthy() {
        let mut t = target();
        assert!(apply(&mut t, &hc(), &Outcome::Pass, 10));
        assert_eq!(t.state, TargetState::Healthy);
        assert_eq!(t.reason, None);
        assert_eq!(t.healthy_since_ms, Some(10));
    }

    #[test]
    fn a_new_target_fails_after_the_unhealthy_threshold() {
        let mut t = target();
        assert!(!apply(&mut t, &hc(), &fail(), 1));
        assert_eq!(t.state, TargetState::Initial);
        assert_eq!(t.reason.as_deref(), Some("Elb.InitialHealthChecking"));
        assert!(apply(&mut t, &hc(), &fail(), 2));
        assert_eq!(t.state, TargetState::Unhealthy);
        assert_eq!(t.reason.as_deref(), Some("Target.Timeout"));
    }

    #[test]
    fn thresholds_count_consecutive_results() {
        let hc = hc();
        let mut t = target();
        apply(&mut t, &hc, &Outcome::Pass, 1);
        // One failure between passes does not count twice.
        apply(&mut t, &hc, &fail(), 2);
        apply(&mut t, &hc, &Outcome::Pass, 3);
        apply(&mut t, &hc, &fail(), 4);
        assert_eq!(t.state, TargetState::Healthy);
        apply(&mut t, &hc, &fail(), 5);
        assert_eq!(t.state, TargetState::Unhealthy);
        // Back only after healthy_threshold passes in a row.
        apply(&mut t, &hc, &Outcome::Pass, 6);
        apply(&mut t, &hc, &Outcome::Pass, 7);
        apply(&mut t, &hc, &fail(), 8);
        apply(&mut t, &hc, &Outcome::Pass, 9);
        apply(&mut t, &hc, &Outcome::Pass, 10);
        assert_eq!(t.state, TargetState::Unhealthy);
        assert!(apply(&mut t, &hc, &Outcome::Pass, 11));
        assert_eq!(t.state, TargetState::Healthy);
    }

    #[test]
    fn due_checks_wait_the_interval_and_skip_draining_targets() {
        let mut t = target();
        assert!(due(&t, &hc(), 0));
        t.checked_ms = Some(1_000);
        assert!(!due(&t, &hc(), 5_999));
        assert!(due(&t, &hc(), 6_000));
        t.state = TargetState::Draining;
        assert!(!due(&t, &hc(), 60_000));
    }

    #[tokio::test]
    async fn checks_speak_http_and_tcp() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                n += 1;
                let status = if n == 1 {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        let client = client().unwrap();
        let mut t = target();
        t.port = port;
        assert_eq!(check(&client, &t, &hc()).await, Outcome::Pass);
        assert_eq!(
            check(&client, &t, &hc()).await,
            Outcome::Fail(
                "Target.ResponseCodeMismatch",
                "Health checks failed with these codes: [503]".into()
            )
        );
        let mut tcp = hc();
        tcp.protocol = Protocol::Tcp;
        assert_eq!(check(&client, &t, &tcp).await, Outcome::Pass);
        t.port = closed_port().await;
        assert!(matches!(check(&client, &t, &tcp).await, Outcome::Fail(..)));
    }

    async fn closed_port() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    }

    #[test]
    fn draining_targets_leave_after_the_delay() {
        let mut g = crate::balancer::model::fixtures::group(vec![]);
        let mut t = target();
        t.state = TargetState::Draining;
        t.draining_since_ms = Some(1_000);
        g.deregistration_delay_seconds = 10;
        g.targets = vec![t, target()];
        assert!(!unsettled(&g, 10_999) && !settle(&mut g, 10_999));
        assert!(unsettled(&g, 11_000) && settle(&mut g, 11_000));
        assert_eq!(g.targets.len(), 1);
        g.health_check.enabled = false;
        assert!(unsettled(&g, 11_000) && settle(&mut g, 11_000));
        assert!(!unsettled(&g, 11_000));
        assert_eq!(g.targets[0].state, TargetState::Unavailable);
    }
}
