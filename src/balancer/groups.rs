//! Target groups: creation with ELB's defaults and ranges (reference §3),
//! health check changes, attributes, and deletion while no listener
//! forwards to the group. Names are unique: a group's id is derived from its
//! name, so two creations of one name race for one key and the store picks
//! the winner.

use sha2::{Digest as _, Sha256};

use super::model::{
    HealthCheck, KIND_TARGET_GROUP, Listener, Protocol, Tag, TargetGroup, TargetState,
};
use super::{Balancer, BalancerError, Result, corrupt, now_ms, to_doc};

/// At most this many target groups (ELB's default quota per region).
pub const MAX_TARGET_GROUPS: usize = 100;

pub const ATTR_DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";
pub const ATTR_SLOW_START: &str = "slow_start.duration_seconds";
pub const ATTR_ALGORITHM: &str = "load_balancing.algorithm.type";

/// Health check settings as a request gives them: `None` keeps the default
/// (on creation) or the current value (on modification).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthCheckChange {
    pub enabled: Option<bool>,
    pub protocol: Option<Protocol>,
    pub port: Option<String>,
    pub path: Option<String>,
    pub interval_seconds: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
    pub matcher: Option<String>,
}

/// CreateTargetGroup's input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTargetGroup {
    pub name: String,
    pub protocol: Option<Protocol>,
    pub port: Option<u16>,
    /// `instance` (the default) or `ip`.
    pub target_type: Option<String>,
    pub vpc_id: Option<String>,
    pub health_check: HealthCheckChange,
    pub tags: Vec<Tag>,
}

/// What a group's targets may be.
pub const TARGET_TYPES: &[&str] = &["instance", "ip"];

/// A 16-hex-digit resource id derived from a name, so a name maps to one
/// key (the store's insert decides between concurrent creators). A name
/// deleted and created again gets the same ARN back.
pub(super) fn name_id(kind: &str, name: &str) -> String {
    let hash = Sha256::digest(format!("{kind}\0{name}").as_bytes());
    hex::encode(&hash[..8])
}

/// Target group and load balancer names: 1 to 32 letters, digits and
/// hyphens, neither starting nor ending with a hyphen.
pub(super) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(BalancerError::Validation(format!(
            "{what} name '{name}' must be 1 to 32 alphanumeric characters or hyphens, and must \
             not begin or end with a hyphen"
        )))
    }
}

fn validation(message: impl Into<String>) -> BalancerError {
    BalancerError::Validation(message.into())
}

fn in_range(what: &str, value: u32, low: u32, high: u32) -> Result<()> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(validation(format!(
            "{what} must be between {low} and {high}, got {value}"
        )))
    }
}

/// ELB's health check defaults for a group speaking `protocol`.
pub fn default_health_check(protocol: Protocol) -> HealthCheck {
    let http = protocol == Protocol::Http;
    HealthCheck {
        enabled: true,
        protocol,
        port: "traffic-port".into(),
        path: if http { "/".into() } else { String::new() },
        interval_seconds: 30,
        timeout_seconds: if http { 6 } else { 10 },
        healthy_threshold: 5,
        unhealthy_threshold: 2,
        matcher: if http { "200".into() } else { String::new() },
    }
}

/// HTTP codes a matcher may name: `200`, `200,202`, `200-299`, each within
/// 200..=499.
fn check_matcher(matcher: &str) -> Result<()> {
    let bad = || {
        validation(format!(
            "Matcher HttpCode '{matcher}' must be codes or ranges of codes between 200 and 499, \
             e.g. 200, 200,202 or 200-299"
        ))
    };
    let code = |s: &str| -> Result<u16> {
        s.parse::<u16>()
            .ok()
            .filter(|c| (200..=499).contains(c))
            .ok_or_else(bad)
    };
    for part in matcher.split(',') {
        match part.split_once('-') {
            Some((low, high)) => {
                if code(low)? > code(high)? {
                    return Err(bad());
                }
            }
            None => {
                code(part)?;
            }
        }
    }
    Ok(())
}

/// Applies `change` to a group's health check and checks the result.
fn apply_health_check(
    group_protocol: Protocol,
    health: &mut HealthCheck,
    change: &HealthCheckChange,
) -> Result<()> {
    if let Some(protocol) = change.protocol {
        if group_protocol == Protocol::Http && protocol == Protocol::Tcp {
            return Err(BalancerError::InvalidConfiguration(
                "Health check protocol 'TCP' is not supported for target groups with the HTTP \
                 protocol"
                    .into(),
            ));
        }
        if protocol != health.protocol {
            // The HTTP-only settings appear and disappear with the protocol
            // (an NLB's HTTP checks match 200-399 by default).
            let defaults = default_health_check(protocol);
            health.path = defaults.path;
            health.matcher = match protocol {
                Protocol::Http => "200-399".into(),
                Protocol::Tcp => String::new(),
            };
            health.protocol = protocol;
        }
    }
    if let Some(enabled) = change.enabled {
        health.enabled = enabled;
    }
    if let Some(port) = &change.port {
        let valid = port == "traffic-port" || port.parse::<u16>().is_ok_and(|p| p > 0);
        if !valid {
            return Err(validation(format!(
                "Health check port '{port}' must be 'traffic-port' or a port between 1 and 65535"
            )));
        }
        health.port = port.clone();
    }
    let tcp = health.protocol == Protocol::Tcp;
    if let Some(path) = &change.path {
        if tcp {
            return Err(validation(
                "Health check path is not supported for TCP health checks",
            ));
        }
        if !path.starts_with('/') || path.len() > 1024 {
            return Err(validation(format!(
                "Health check path '{path}' must begin with '/' and be at most 1024 characters"
            )));
        }
        health.path = path.clone();
    }
    if let Some(matcher) = &change.matcher {
        if tcp {
            return Err(validation(
                "Health check matcher is not supported for TCP health checks",
            ));
        }
        check_matcher(matcher)?;
        health.matcher = matcher.clone();
    }
    if let Some(v) = change.interval_seconds {
        in_range("Health check interval", v, 5, 300)?;
        health.interval_seconds = v;
    }
    if let Some(v) = change.timeout_seconds {
        in_range("Health check timeout", v, 2, 120)?;
        health.timeout_seconds = v;
    }
    if let Some(v) = change.healthy_threshold {
        in_range("Healthy threshold count", v, 2, 10)?;
        health.healthy_threshold = v;
    }
    if let Some(v) = change.unhealthy_threshold {
        in_range("Unhealthy threshold count", v, 2, 10)?;
        health.unhealthy_threshold = v;
    }
    if health.timeout_seconds >= health.interval_seconds {
        return Err(validation(format!(
            "Health check timeout ({}s) must be smaller than the interval ({}s)",
            health.timeout_seconds, health.interval_seconds
        )));
    }
    Ok(())
}

/// A group's attributes as DescribeTargetGroupAttributes lists them.
pub fn attributes(group: &TargetGroup) -> Vec<(&'static str, String)> {
    vec![
        (
            ATTR_DEREGISTRATION_DELAY,
            group.deregistration_delay_seconds.to_string(),
        ),
        (ATTR_SLOW_START, group.slow_start_seconds.to_string()),
        (ATTR_ALGORITHM, group.algorithm.clone()),
    ]
}

/// Sets one attribute, checking its value.
fn set_attribute(group: &mut TargetGroup, key: &str, value: &str) -> Result<()> {
    let seconds = || {
        value
            .parse::<u32>()
            .map_err(|_| validation(format!("Attribute '{key}' must be a number of seconds")))
    };
    match key {
        ATTR_DEREGISTRATION_DELAY => {
            let v = seconds()?;
            in_range(key, v, 0, 3600)?;
            group.deregistration_delay_seconds = v;
        }
        ATTR_SLOW_START => {
            let v = seconds()?;
            if v != 0 {
                in_range(key, v, 30, 900)?;
            }
            group.slow_start_seconds = v;
        }
        ATTR_ALGORITHM => {
            if !matches!(value, "round_robin" | "least_outstanding_requests") {
                return Err(validation(format!(
                    "Attribute '{key}' must be 'round_robin' or 'least_outstanding_requests'"
                )));
            }
            group.algorithm = value.to_string();
        }
        _ => {
            return Err(validation(format!(
                "Target group attribute key '{key}' is not recognized"
            )));
        }
    }
    Ok(())
}

/// The settings that make two creations of one name the same group.
fn same_settings(a: &TargetGroup, b: &TargetGroup) -> bool {
    a.protocol == b.protocol
        && a.port == b.port
        && a.target_type == b.target_type
        && a.vpc_id == b.vpc_id
        && a.health_check == b.health_check
}

/// Which target groups DescribeTargetGroups asks for (at most one filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFilter {
    pub arns: Vec<String>,
    pub names: Vec<String>,
    pub load_balancer_arn: Option<String>,
}

/// The load balancers whose listeners forward to `group_arn`.
pub fn load_balancers_of(listeners: &[Listener], group_arn: &str) -> Vec<String> {
    let mut arns: Vec<String> = listeners
        .iter()
        .filter(|l| l.target_group_arn == group_arn)
        .map(|l| l.load_balancer_arn.clone())
        .collect();
    arns.sort();
    arns.dedup();
    arns
}

impl Balancer {
    /// CreateTargetGroup: a new group with ELB's defaults; the existing one
    /// when a group of that name has the same settings (ELB is idempotent).
    pub async fn create_target_group(&self, input: NewTargetGroup) -> Result<TargetGroup> {
        check_name("Target group", &input.name)?;
        let protocol = input
            .protocol
            .ok_or_else(|| validation("A protocol must be specified (HTTP or TCP)"))?;
        let port = input
            .port
            .filter(|p| *p > 0)
            .ok_or_else(|| validation("A port between 1 and 65535 must be specified"))?;
        let target_type = input.target_type.unwrap_or_else(|| "instance".into());
        if !TARGET_TYPES.contains(&target_type.as_str()) {
            return Err(validation(format!(
                "Target type '{target_type}' is not supported: use 'instance' or 'ip'"
            )));
        }
        let mut health_check = default_health_check(protocol);
        apply_health_check(protocol, &mut health_check, &input.health_check)?;
        let arn = self.arn(&format!(
            "targetgroup/{}/{}",
            input.name,
            name_id("targetgroup", &input.name)
        ));
        let group = TargetGroup {
            arn: arn.clone(),
            name: input.name.clone(),
            protocol,
            port,
            target_type,
            vpc_id: input.vpc_id,
            health_check,
            deregistration_delay_seconds: 300,
            slow_start_seconds: 0,
            algorithm: "round_robin".into(),
            targets: Vec::new(),
            tags: input.tags,
            created_ms: now_ms(),
        };
        loop {
            if let Some(stored) = self.inner.store.document(KIND_TARGET_GROUP, &arn).await? {
                let existing: TargetGroup = serde_json::from_str(&stored.doc).map_err(corrupt)?;
                return if same_settings(&existing, &group) {
                    Ok(existing)
                } else {
                    Err(BalancerError::DuplicateTargetGroupName(input.name))
                };
            }
            // Counted before inserting: concurrent creators may pass the
            // quota by a few, which is no harm.
            if self.inner.store.documents(KIND_TARGET_GROUP).await?.len() >= MAX_TARGET_GROUPS {
                return Err(BalancerError::TooMany(
                    "TooManyTargetGroups",
                    format!("You have reached the limit of {MAX_TARGET_GROUPS} target groups"),
                ));
            }
            if self
                .inner
                .store
                .insert_document(KIND_TARGET_GROUP, &arn, &to_doc(&group)?)
                .await?
            {
                return Ok(group);
            }
        }
    }

    /// The groups a filter names, by name; every ARN and name asked for
    /// must exist (TargetGroupNotFound), as must the load balancer.
    pub async fn describe_target_groups(&self, filter: &GroupFilter) -> Result<Vec<TargetGroup>> {
        let given = [
            !filter.arns.is_empty(),
            !filter.names.is_empty(),
            filter.load_balancer_arn.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(validation(
                "Only one of TargetGroupArns, Names and LoadBalancerArn may be specified",
            ));
        }
        let mut groups = self.target_groups().await?;
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        if !filter.arns.is_empty() {
            if filter
                .arns
                .iter()
                .any(|a| !groups.iter().any(|g| &g.arn == a))
            {
                return Err(BalancerError::TargetGroupNotFound);
            }
            groups.retain(|g| filter.arns.contains(&g.arn));
        } else if !filter.names.is_empty() {
            if filter
                .names
                .iter()
                .any(|n| !groups.iter().any(|g| &g.name == n))
            {
                return Err(BalancerError::TargetGroupNotFound);
            }
            groups.retain(|g| filter.names.contains(&g.name));
        } else if let Some(lb) = &filter.load_balancer_arn {
            self.load_balancer(lb).await?;
            let listeners = self.listeners().await?;
            groups.retain(|g| load_balancers_of(&listeners, &g.arn).contains(lb));
        }
        Ok(groups)
    }

    /// ModifyTargetGroup: changes the health check. Turning checks off makes
    /// every target not draining `unavailable`; turning them on starts those
    /// over at `initial`.
    pub async fn modify_target_group(
        &self,
        arn: &str,
        change: &HealthCheckChange,
    ) -> Result<TargetGroup> {
        self.modify_group(arn, |group| {
            let before = group.health_check.clone();
            apply_health_check(group.protocol, &mut group.health_check, change)?;
            if before.enabled != group.health_check.enabled {
                for target in &mut group.targets {
                    if target.state == TargetState::Draining {
                        continue;
                    }
                    super::targets::restart(target, group.health_check.enabled);
                }
            }
            Ok(before != group.health_check)
        })
        .await
    }

    /// ModifyTargetGroupAttributes: every attribute is checked before any
    /// is applied.
    pub async fn modify_target_group_attributes(
        &self,
        arn: &str,
        changes: &[(String, String)],
    ) -> Result<TargetGroup> {
        self.modify_group(arn, |group| {
            let before = group.clone();
            for (key, value) in changes {
                set_attribute(group, key, value)?;
            }
            Ok(*group != before)
        })
        .await
    }

    /// DeleteTargetGroup: refused while a listener forwards to it; deleting
    /// a group that does not exist succeeds, as in ELB.
    pub async fn delete_target_group(&self, arn: &str) -> Result<()> {
        loop {
            if let Some(listener) = self
                .listeners()
                .await?
                .into_iter()
                .find(|l| l.target_group_arn == arn)
            {
                return Err(BalancerError::ResourceInUse(format!(
                    "Target group '{arn}' is currently in use by a listener ('{}')",
                    listener.arn
                )));
            }
            let Some(stored) = self.inner.store.document(KIND_TARGET_GROUP, arn).await? else {
                return Ok(());
            };
            if self
                .inner
                .store
                .delete_document(KIND_TARGET_GROUP, arn, stored.version)
                .await?
            {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "web", "web-1", "A1-b2", &"x".repeat(32)] {
            assert!(check_name("Target group", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-web", "web-", "web_1", "wéb", "a.b", &"x".repeat(33)] {
            assert!(check_name("Target group", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matchers() {
        for ok in ["200", "200,202", "200-299", "200-499", "301,404-410"] {
            assert!(check_matcher(ok).is_ok(), "{ok}");
        }
        for bad in ["", "199", "500", "299-200", "200-", "abc", "200,,202"] {
            assert!(check_matcher(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn health_check_ranges() {
        let http = |change: HealthCheckChange| {
            let mut h = default_health_check(Protocol::Http);
            apply_health_check(Protocol::Http, &mut h, &change).map(|()| h)
        };
        assert_eq!(
            http(HealthCheckChange::default()).unwrap(),
            default_health_check(Protocol::Http)
        );
        let rejected = [
            HealthCheckChange {
                interval_seconds: Some(4),
                ..Default::default()
            },
            HealthCheckChange {
                interval_seconds: Some(301),
                ..Default::default()
            },
            HealthCheckChange {
                timeout_seconds: Some(1),
                ..Default::default()
            },
            HealthCheckChange {
                timeout_seconds: Some(30),
                ..Default::default()
            },
            HealthCheckChange {
                healthy_threshold: Some(11),
                ..Default::default()
            },
            HealthCheckChange {
                unhealthy_threshold: Some(1),
                ..Default::default()
            },
            HealthCheckChange {
                port: Some("0".into()),
                ..Default::default()
            },
            HealthCheckChange {
                path: Some("health".into()),
                ..Default::default()
            },
            HealthCheckChange {
                protocol: Some(Protocol::Tcp),
                ..Default::default()
            },
        ];
        for change in rejected {
            assert!(http(change.clone()).is_err(), "{change:?}");
        }
        let h = http(HealthCheckChange {
            interval_seconds: Some(10),
            timeout_seconds: Some(5),
            port: Some("8080".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (h.interval_seconds, h.timeout_seconds, h.port.as_str()),
            (10, 5, "8080")
        );
    }

    #[test]
    fn tcp_health_checks_take_no_path_or_matcher() {
        let mut h = default_health_check(Protocol::Tcp);
        assert_eq!((h.timeout_seconds, h.matcher.as_str()), (10, ""));
        let matcher = HealthCheckChange {
            matcher: Some("200".into()),
            ..Default::default()
        };
        assert!(apply_health_check(Protocol::Tcp, &mut h, &matcher).is_err());
        let to_http = HealthCheckChange {
            protocol: Some(Protocol::Http),
            ..Default::default()
        };
        apply_health_check(Protocol::Tcp, &mut h, &to_http).unwrap();
        assert_eq!((h.path.as_str(), h.matcher.as_str()), ("/", "200-399"));
    }

    #[test]
    fn attribute_ranges() {
        let mut g = TargetGroup {
            arn: "a".into(),
            name: "n".into(),
            protocol: Protocol::Http,
            port: 80,
            target_type: "ip".into(),
            vpc_id: None,
            health_check: default_health_check(Protocol::Http),
            deregistration_delay_seconds: 300,
            slow_start_seconds: 0,
            algorithm: "round_robin".into(),
            targets: Vec::new(),
            tags: Vec::new(),
            created_ms: 0,
        };
        for (k, v) in [
            (ATTR_DEREGISTRATION_DELAY, "0"),
            (ATTR_DEREGISTRATION_DELAY, "3600"),
            (ATTR_SLOW_START, "0"),
            (ATTR_SLOW_START, "30"),
            (ATTR_SLOW_START, "900"),
            (ATTR_ALGORITHM, "least_outstanding_requests"),
        ] {
            assert!(set_attribute(&mut g, k, v).is_ok(), "{k}={v}");
        }
        for (k, v) in [
            (ATTR_DEREGISTRATION_DELAY, "3601"),
            (ATTR_DEREGISTRATION_DELAY, "-1"),
            (ATTR_SLOW_START, "29"),
            (ATTR_SLOW_START, "901"),
            (ATTR_ALGORITHM, "random"),
            ("stickiness.enabled", "true"),
        ] {
            assert!(set_attribute(&mut g, k, v).is_err(), "{k}={v}");
        }
    }
}
