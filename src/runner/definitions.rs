//! Task definitions: registered revisions per family, checked when registered
//! (images from this registry only, limits, dependencies).

use std::collections::BTreeSet;

use serde::Deserialize;

use super::images::RegistryHosts;
use super::model::{
    ContainerDefinition, DefinitionStatus, DependencyCondition, HealthCheck, PortMapping,
    TaskDefinition,
};
use super::{Result, Runner, RunnerError, corrupt, seconds};
use crate::storage::metadata::StoredDefinition;

/// RegisterTaskDefinition's input. Fields ECS has but a single Docker host
/// cannot honour are refused (unknown fields), not silently ignored; the IAM
/// roles are accepted and have no effect.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterDefinition {
    pub family: String,
    pub container_definitions: Vec<ContainerDefinition>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub network_mode: Option<String>,
    #[serde(default)]
    pub requires_compatibilities: Vec<String>,
    pub task_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    #[serde(default)]
    pub tags: Vec<serde_json::Value>,
}

/// ListTaskDefinitions / ListTaskDefinitionFamilies filters.
#[derive(Debug, Clone, Default)]
pub struct DefinitionFilter {
    pub family_prefix: Option<String>,
    /// ACTIVE (default), INACTIVE or ALL.
    pub status: Option<String>,
    pub descending: bool,
}

const NETWORK_MODES: [&str; 3] = ["bridge", "host", "none"];

/// ECS names (families, containers, clusters, services): up to 255 letters,
/// digits, hyphens and underscores.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Task-level CPU units ("256", "1 vCPU") or memory MiB ("512", "1 GB").
pub(super) fn units(value: &str, unit: &str, per_unit: f64) -> Option<i64> {
    let v = value.trim();
    let number = v
        .strip_suffix(unit)
        .or_else(|| v.strip_suffix(&unit.to_ascii_lowercase()))
        .map(|n| n.trim().parse::<f64>().ok().map(|n| n * per_unit))
        .unwrap_or_else(|| v.parse::<f64>().ok())?;
    (number > 0.0).then_some(number as i64)
}

fn client(message: impl Into<String>) -> RunnerError {
    RunnerError::Client(message.into())
}

impl Runner {
    pub async fn register_definition(
        &self,
        input: RegisterDefinition,
        registered_by: Option<String>,
    ) -> Result<TaskDefinition> {
        self.check_definition(&input)?;
        let now = crate::registry::now_ms();
        let network_mode = input
            .network_mode
            .clone()
            .unwrap_or_else(|| "bridge".into());
        let template = TaskDefinition {
            task_definition_arn: String::new(),
            family: input.family.clone(),
            revision: 0,
            status: DefinitionStatus::Active,
            container_definitions: input.container_definitions.clone(),
            cpu: input.cpu.clone(),
            memory: input.memory.clone(),
            network_mode,
            requires_compatibilities: input.requires_compatibilities.clone(),
            compatibilities: vec!["EC2".into(), "EXTERNAL".into()],
            registered_at: seconds(now),
            deregistered_at: None,
            registered_by,
        };
        let this = self.clone();
        let doc = move |revision: i64| {
            let mut d = template.clone();
            d.revision = revision;
            d.task_definition_arn = this.definition_arn(&d.family, revision);
            serde_json::to_string(&d).unwrap_or_default()
        };
        let revision = self
            .inner
            .store
            .add_task_definition(&input.family, &doc)
            .await?;
        self.definition(&format!("{}:{revision}", input.family))
            .await?
            .ok_or_else(|| RunnerError::Corrupt("registered revision vanished".into()))
    }

    fn check_definition(&self, d: &RegisterDefinition) -> Result<()> {
        if !valid_name(&d.family) {
            return Err(client(
                "family: up to 255 letters (uppercase and lowercase), numbers, hyphens and underscores",
            ));
        }
        let containers = &d.container_definitions;
        if containers.is_empty() {
            return Err(client("Container list cannot be empty."));
        }
        let network = d.network_mode.as_deref().unwrap_or("bridge");
        if !NETWORK_MODES.contains(&network) {
            return Err(client(format!(
                "networkMode {network:?} is not supported here: use bridge, host or none"
            )));
        }
        for c in &d.requires_compatibilities {
            if c != "EC2" && c != "EXTERNAL" {
                return Err(client(format!(
                    "requiresCompatibilities {c:?}: this runner offers EC2 and EXTERNAL"
                )));
            }
        }
        let task_cpu = match &d.cpu {
            Some(c) => Some(
                units(c, "vCPU", 1024.0)
                    .ok_or_else(|| client(format!("invalid task cpu {c:?}")))?,
            ),
            None => None,
        };
        let task_memory = match &d.memory {
            Some(m) => Some(
                units(m, "GB", 1024.0)
                    .ok_or_else(|| client(format!("invalid task memory {m:?}")))?,
            ),
            None => None,
        };
        let names: BTreeSet<&str> = containers.iter().map(|c| c.name.as_str()).collect();
        if names.len() != containers.len() {
            return Err(client(
                "Container names must be unique within a task definition.",
            ));
        }
        if !containers.iter().any(|c| c.essential) {
            return Err(client(
                "A task definition must have at least one essential container.",
            ));
        }
        for c in containers {
            check_container(&self.inner.hosts, c, network, task_cpu, task_memory)?;
            check_dependencies(c, containers, &names)?;
        }
        let memory_sum: i64 = containers
            .iter()
            .map(|c| i64::from(c.memory.or(c.memory_reservation).unwrap_or(0)))
            .sum();
        if let Some(t) = task_memory
            && memory_sum > t
        {
            return Err(client(format!(
                "The containers ask for {memory_sum} MiB, more than the task's {t} MiB."
            )));
        }
        if let Some(cycle) = dependency_cycle(containers) {
            return Err(client(format!("dependsOn forms a cycle through '{cycle}'")));
        }
        self.inner
            .settings
            .safety
            .check(network, containers)
            .map_err(client)
    }

    /// `family`, `family:revision` or an ARN; a bare family is its latest ACTIVE revision.
    pub async fn definition(&self, reference: &str) -> Result<Option<TaskDefinition>> {
        let reference = reference
            .rsplit_once(":task-definition/")
            .map_or(reference, |(_, r)| r);
        let (family, revision) = match reference.rsplit_once(':') {
            Some((family, revision)) => {
                let revision = revision
                    .parse::<i64>()
                    .map_err(|_| client(format!("Invalid revision number. Number: {revision}")))?;
                (family, Some(revision))
            }
            None => (reference, None),
        };
        // A name no family can have is not looked up (PostgreSQL refuses NUL in text).
        if !valid_name(family) {
            return Ok(None);
        }
        let stored = self.inner.store.task_definition(family, revision).await?;
        stored
            .map(|s| serde_json::from_str(&s.doc).map_err(corrupt))
            .transpose()
    }

    /// The definition to run: it must exist, be ACTIVE, and ask for nothing
    /// the operator's settings forbid now (they may have changed since it was registered).
    pub async fn runnable_definition(&self, reference: &str) -> Result<TaskDefinition> {
        let definition = self
            .definition(reference)
            .await?
            .ok_or_else(|| client("Unable to describe task definition."))?;
        if definition.status != DefinitionStatus::Active {
            return Err(client(format!(
                "TaskDefinition is inactive: {}",
                definition.task_definition_arn
            )));
        }
        self.inner
            .settings
            .safety
            .check(&definition.network_mode, &definition.container_definitions)
            .map_err(client)?;
        Ok(definition)
    }

    pub async fn deregister_definition(&self, reference: &str) -> Result<TaskDefinition> {
        require_revision(reference)?;
        let mut definition = self
            .definition(reference)
            .await?
            .ok_or_else(|| client("The specified task definition does not exist."))?;
        if definition.status == DefinitionStatus::Active {
            definition.status = DefinitionStatus::Inactive;
            definition.deregistered_at = Some(seconds(crate::registry::now_ms()));
            self.inner
                .store
                .replace_task_definition(&StoredDefinition {
                    family: definition.family.clone(),
                    revision: definition.revision,
                    active: false,
                    doc: serde_json::to_string(&definition).map_err(corrupt)?,
                })
                .await?;
        }
        Ok(definition)
    }

    /// The revisions that pass `filter`, by family then revision.
    pub async fn definitions(&self, filter: &DefinitionFilter) -> Result<Vec<TaskDefinition>> {
        let mut all = self
            .filtered_definitions(filter)
            .await?
            .iter()
            .map(|d| serde_json::from_str(&d.doc).map_err(corrupt))
            .collect::<Result<Vec<TaskDefinition>>>()?;
        if filter.descending {
            all.reverse();
        }
        Ok(all)
    }

    /// The latest ACTIVE revision of `family`.
    pub async fn latest_definition(&self, family: &str) -> Result<Option<TaskDefinition>> {
        if !valid_name(family) {
            return Ok(None);
        }
        self.inner
            .store
            .task_definition(family, None)
            .await?
            .map(|s| serde_json::from_str(&s.doc).map_err(corrupt))
            .transpose()
    }

    /// Families with an ACTIVE revision.
    pub async fn active_families(&self) -> Result<BTreeSet<String>> {
        Ok(self
            .inner
            .store
            .task_definitions()
            .await?
            .into_iter()
            .filter(|d| d.active)
            .map(|d| d.family)
            .collect())
    }

    async fn filtered_definitions(
        &self,
        filter: &DefinitionFilter,
    ) -> Result<Vec<StoredDefinition>> {
        let status = filter.status.as_deref().unwrap_or("ACTIVE");
        if !["ACTIVE", "INACTIVE", "ALL"].contains(&status) {
            return Err(RunnerError::InvalidParameter(format!(
                "status {status:?}: ACTIVE, INACTIVE or ALL"
            )));
        }
        let mut all = self.inner.store.task_definitions().await?;
        all.retain(|d| {
            filter
                .family_prefix
                .as_deref()
                .is_none_or(|p| d.family.starts_with(p))
                && match status {
                    "ACTIVE" => d.active,
                    "INACTIVE" => !d.active,
                    _ => true,
                }
        });
        Ok(all)
    }
}

/// One container's own settings (not its dependencies).
fn check_container(
    hosts: &RegistryHosts,
    c: &ContainerDefinition,
    network: &str,
    task_cpu: Option<i64>,
    task_memory: Option<i64>,
) -> Result<()> {
    let name = &c.name;
    if !valid_name(name) {
        return Err(client(format!(
            "Container name {name:?}: up to 255 letters, numbers, hyphens and underscores"
        )));
    }
    hosts.parse(&c.image).map_err(RunnerError::Client)?;
    if c.memory.is_none() && c.memory_reservation.is_none() && task_memory.is_none() {
        return Err(client(format!(
            "Invalid setting for container '{name}'. At least one of 'memory' or 'memoryReservation' must be specified."
        )));
    }
    if let Some(m) = c.memory {
        if m < 6 {
            return Err(client(format!(
                "Invalid 'memory' setting for container '{name}'. The minimum is 6 MiB."
            )));
        }
        if c.memory_reservation.is_some_and(|r| r > m) {
            return Err(client(format!(
                "Invalid setting for container '{name}'. 'memory' must be greater than or equal to 'memoryReservation'."
            )));
        }
    }
    if c.cpu < 0 || task_cpu.is_some_and(|t| i64::from(c.cpu) > t) {
        return Err(client(format!(
            "Invalid 'cpu' setting for container '{name}'."
        )));
    }
    if let Some(t) = c.stop_timeout
        && !(2..=120).contains(&t)
    {
        return Err(client(format!(
            "Invalid 'stopTimeout' for container '{name}': 2 to 120 seconds."
        )));
    }
    if let Some(h) = &c.health_check {
        check_health(name, h)?;
    }
    check_ports(name, &c.port_mappings, network)
}

fn check_health(name: &str, h: &HealthCheck) -> Result<()> {
    let kind = h.command.first().map(String::as_str);
    if !matches!(kind, Some("CMD" | "CMD-SHELL" | "NONE"))
        || h.command.len() < 2 && kind != Some("NONE")
    {
        return Err(client(format!(
            "healthCheck of '{name}': command must start with CMD or CMD-SHELL and name a command"
        )));
    }
    let ranges = [
        ("interval", h.interval, 5, 300),
        ("timeout", h.timeout, 2, 60),
        ("retries", h.retries, 1, 10),
        ("startPeriod", h.start_period, 0, 300),
    ];
    for (field, value, min, max) in ranges {
        if !(min..=max).contains(&value) {
            return Err(client(format!(
                "healthCheck.{field} of '{name}' must be within {min}..{max}"
            )));
        }
    }
    Ok(())
}

fn check_ports(name: &str, ports: &[PortMapping], network: &str) -> Result<()> {
    for p in ports {
        if !(1..=65535).contains(&p.container_port)
            || p.host_port.is_some_and(|h| !(0..=65535).contains(&h))
        {
            return Err(client(format!("Invalid port mapping of '{name}'.")));
        }
        if p.protocol != "tcp" && p.protocol != "udp" {
            return Err(client(format!(
                "Invalid protocol {:?} of '{name}'.",
                p.protocol
            )));
        }
        if network == "host" && p.host_port.is_some_and(|h| h != 0 && h != p.container_port) {
            return Err(client(format!(
                "With networkMode host, hostPort must equal containerPort ('{name}')."
            )));
        }
    }
    Ok(())
}

/// `c`'s dependsOn: known containers, conditions that can be met.
fn check_dependencies(
    c: &ContainerDefinition,
    containers: &[ContainerDefinition],
    names: &BTreeSet<&str>,
) -> Result<()> {
    let name = &c.name;
    for dep in &c.depends_on {
        if !names.contains(dep.container_name.as_str()) || dep.container_name == *name {
            return Err(client(format!(
                "dependsOn of '{name}' names an unknown container '{}'",
                dep.container_name
            )));
        }
        let target = containers.iter().find(|t| t.name == dep.container_name);
        if let Some(target) = target {
            if target.essential
                && matches!(
                    dep.condition,
                    DependencyCondition::Complete | DependencyCondition::Success
                )
            {
                return Err(client(format!(
                    "'{}' is essential: no container may depend on it with {}",
                    target.name, dep.condition
                )));
            }
            if dep.condition == DependencyCondition::Healthy && target.health_check.is_none() {
                return Err(client(format!(
                    "'{}' has no healthCheck: a HEALTHY dependency on it can never be met",
                    target.name
                )));
            }
        }
    }
    Ok(())
}

/// A container on a `dependsOn` cycle, if there is one.
fn dependency_cycle(containers: &[ContainerDefinition]) -> Option<String> {
    fn visit<'a>(
        name: &'a str,
        containers: &'a [ContainerDefinition],
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if path.contains(&name) {
            return Some(name.to_string());
        }
        if done.contains(name) {
            return None;
        }
        path.push(name);
        let c = containers.iter().find(|c| c.name == name)?;
        for dep in &c.depends_on {
            if let Some(cycle) = visit(&dep.container_name, containers, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(name);
        None
    }
    let mut done = BTreeSet::new();
    containers
        .iter()
        .find_map(|c| visit(&c.name, containers, &mut Vec::new(), &mut done))
}

/// DeregisterTaskDefinition names one revision (`family:revision` or its
/// ARN); checked before any lookup, so the answer says nothing of the family.
pub fn require_revision(reference: &str) -> Result<()> {
    let bare = reference
        .rsplit_once(":task-definition/")
        .map_or(reference, |(_, r)| r);
    if bare.contains(':') {
        Ok(())
    } else {
        Err(client("A revision number is required: family:revision."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn containers(json: serde_json::Value) -> Vec<ContainerDefinition> {
        serde_json::from_value(json).unwrap()
    }

    fn dependencies(all: &[ContainerDefinition]) -> std::result::Result<(), String> {
        let names: BTreeSet<&str> = all.iter().map(|c| c.name.as_str()).collect();
        all.iter()
            .try_for_each(|c| check_dependencies(c, all, &names))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn dependencies_must_be_able_to_hold() {
        let ok = containers(serde_json::json!([
            {"name": "db", "image": "h/d", "healthCheck": {"command": ["CMD", "true"]}},
            {"name": "init", "image": "h/i", "essential": false},
            {"name": "app", "image": "h/a", "dependsOn": [
                {"containerName": "db", "condition": "HEALTHY"},
                {"containerName": "init", "condition": "SUCCESS"}]}
        ]));
        assert_eq!(dependencies(&ok), Ok(()));
        let unknown = containers(serde_json::json!([
            {"name": "app", "image": "h/a", "dependsOn": [{"containerName": "ghost", "condition": "START"}]}
        ]));
        assert!(
            dependencies(&unknown)
                .unwrap_err()
                .contains("unknown container 'ghost'")
        );
        let essential = containers(serde_json::json!([
            {"name": "db", "image": "h/d"},
            {"name": "app", "image": "h/a", "dependsOn": [{"containerName": "db", "condition": "COMPLETE"}]}
        ]));
        assert!(
            dependencies(&essential)
                .unwrap_err()
                .contains("'db' is essential")
        );
        let unchecked = containers(serde_json::json!([
            {"name": "db", "image": "h/d"},
            {"name": "app", "image": "h/a", "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]}
        ]));
        assert!(
            dependencies(&unchecked)
                .unwrap_err()
                .contains("no healthCheck")
        );
        let cycle = containers(serde_json::json!([
            {"name": "a", "image": "h/a", "dependsOn": [{"containerName": "b", "condition": "START"}]},
            {"name": "b", "image": "h/b", "dependsOn": [{"containerName": "a", "condition": "START"}]}
        ]));
        assert_eq!(dependency_cycle(&cycle).as_deref(), Some("a"));
    }

    #[test]
    fn ports_fit_the_network_mode() {
        let ports = |json| serde_json::from_value::<Vec<PortMapping>>(json).unwrap();
        let fixed = ports(serde_json::json!([{"containerPort": 80, "hostPort": 8080}]));
        assert!(check_ports("web", &fixed, "bridge").is_ok());
        assert!(check_ports("web", &fixed, "host").is_err());
        let udp = ports(serde_json::json!([{"containerPort": 53, "protocol": "sctp"}]));
        assert!(check_ports("dns", &udp, "bridge").is_err());
        let zero = ports(serde_json::json!([{"containerPort": 0}]));
        assert!(check_ports("web", &zero, "bridge").is_err());
    }

    #[test]
    fn task_units() {
        assert_eq!(units("256", "vCPU", 1024.0), Some(256));
        assert_eq!(units("1 vCPU", "vCPU", 1024.0), Some(1024));
        assert_eq!(units("0.5 vcpu", "vCPU", 1024.0), Some(512));
        assert_eq!(units("2 GB", "GB", 1024.0), Some(2048));
        assert_eq!(units("512", "GB", 1024.0), Some(512));
        assert_eq!(units("lots", "GB", 1024.0), None);
        assert_eq!(units("0", "GB", 1024.0), None);
    }
}
