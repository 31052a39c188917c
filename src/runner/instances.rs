//! Container instances (reference §1): the hosts a cluster's tasks are
//! placed on, one stored record per (cluster, instance), and the ECS shape
//! DescribeContainerInstances answers with.
//!
//! The embedded instance (`embedded`): this server's own Docker Engine is a
//! container instance of **every** cluster (one record per cluster, with its
//! own id and status, so draining it in `prod` leaves `default` alone). It is
//! registered when the cluster is created (for `default` and clusters older
//! than this code, when first needed), so CreateCluster then RunTask works as
//! before with no step in between. The records share one host: what a task
//! reserves in one cluster is gone from the others' remaining resources.
//!
//! Depends on the store and the placement engine; no HTTP.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::model::TaskRecord;
use super::placement::{self, RunningTask};
use super::status::{DesiredStatus, InstanceState, TaskStatus};
use super::{Result, Runner, RunnerError, corrupt};

/// What the embedded instance registers beyond what the engine reports
/// (`[runner]` in the configuration).
#[derive(Debug, Clone, Default)]
pub struct EmbeddedSettings {
    /// No embedded instance: every task runs on a `wharf agent`'s host
    /// (`runner.embedded_instance = false`).
    pub disabled: bool,
    /// CPU units to register instead of the engine's CPUs × 1024.
    pub cpu: Option<u32>,
    /// MiB to register instead of the engine's memory.
    pub memory_mib: Option<u32>,
    /// `ecs.availability-zone`; empty: `<region>a`.
    pub availability_zone: String,
    /// Host TCP ports no task may take (ECS's `PORTS`).
    pub reserved_ports: BTreeSet<u16>,
}

/// ECS `versionInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A container instance as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    pub id: String,
    pub cluster: String,
    /// This server's own Docker Engine.
    #[serde(default, skip_serializing_if = "is_false")]
    pub embedded: bool,
    pub status: InstanceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub agent_connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_instance_id: Option<String>,
    /// Registered CPU units and MiB.
    pub cpu: u32,
    pub memory_mib: u32,
    /// Registered (reserved) host ports.
    #[serde(default)]
    pub ports_tcp: BTreeSet<u16>,
    #[serde(default)]
    pub ports_udp: BTreeSet<u16>,
    /// Built-in (`ecs.*`) and custom attributes; `None`: a name alone.
    #[serde(default)]
    pub attributes: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub version_info: VersionInfo,
    pub registered_at_ms: i64,
    /// When a replica last heard the agent (connected) or saw its channel
    /// close (disconnected); `None` before its first connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_seen_ms: Option<i64>,
    /// The agent's current connection (`remote::Session::id`), so the end
    /// of an older connection does not mark a reconnected agent away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session: Option<String>,
    /// Where the host's published ports are reached: the address its agent
    /// last connected from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// ECS `Resource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integer_value: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_set_value: Option<Vec<String>>,
}

/// ECS `Attribute` (as DescribeContainerInstances shows it: no target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// ECS `ContainerInstance`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstance {
    pub container_instance_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec2_instance_id: Option<String>,
    pub version: i64,
    pub version_info: VersionInfo,
    pub registered_resources: Vec<Resource>,
    pub remaining_resources: Vec<Resource>,
    pub status: InstanceState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub agent_connected: bool,
    pub running_tasks_count: i64,
    pub pending_tasks_count: i64,
    pub attributes: Vec<Attribute>,
    pub registered_at: f64,
}

/// An instance with what placement and Describe need: its record, its
/// stored version, and the placement view (tasks and what they reserve).
#[derive(Debug, Clone)]
pub struct InstanceView {
    pub record: InstanceRecord,
    pub version: i64,
    /// `registered` here is what the host has left for this cluster: the
    /// registration less other clusters' reservations on a shared host.
    pub placement: placement::Instance,
    pub running: i64,
    pub pending: i64,
}

/// Built-in attributes are `ecs.*` (and the agent's legacy
/// `com.amazonaws.ecs.*`); only the others count toward the ten allowed.
pub fn is_builtin(name: &str) -> bool {
    name.starts_with("ecs.") || name.starts_with("com.amazonaws.ecs.")
}

/// Ids and ARNs in requests: the last path segment, which must look like an id.
pub fn instance_id(reference: &str) -> Option<&str> {
    let id = reference.rsplit('/').next().unwrap_or(reference);
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some(id)
}

/// Whether a live task holds a reservation on instance `id`; tasks recorded
/// before placement existed ran on the embedded engine.
fn placed_on(task: &TaskRecord, id: &str, embedded_ids: &BTreeSet<String>) -> bool {
    match task.task.container_instance_arn.as_deref() {
        Some(arn) => instance_id(arn) == Some(id),
        None => embedded_ids.contains(id),
    }
}

impl InstanceRecord {
    /// The ECS shape, with what its tasks leave and how many there are.
    pub fn shape(&self, arn: String, view: &InstanceView) -> ContainerInstance {
        let registered = placement::Resources {
            cpu: self.cpu,
            memory_mib: self.memory_mib,
            ports_tcp: self.ports_tcp.clone(),
            ports_udp: self.ports_udp.clone(),
        };
        ContainerInstance {
            container_instance_arn: arn,
            ec2_instance_id: self.ec2_instance_id.clone(),
            version: view.version,
            version_info: self.version_info.clone(),
            registered_resources: resources(&registered),
            remaining_resources: resources(&view.placement.remaining()),
            status: self.status,
            status_reason: self.status_reason.clone(),
            agent_connected: self.agent_connected,
            running_tasks_count: view.running,
            pending_tasks_count: view.pending,
            attributes: self
                .attributes
                .iter()
                .map(|(name, value)| Attribute {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            registered_at: super::seconds(self.registered_at_ms),
        }
    }
}

fn resources(r: &placement::Resources) -> Vec<Resource> {
    let integer = |name, value: u32| Resource {
        name,
        kind: "INTEGER",
        integer_value: Some(i64::from(value)),
        string_set_value: None,
    };
    let ports = |name, set: &BTreeSet<u16>| Resource {
        name,
        kind: "STRINGSET",
        integer_value: None,
        string_set_value: Some(set.iter().map(u16::to_string).collect()),
    };
    vec![
        integer("CPU", r.cpu),
        integer("MEMORY", r.memory_mib),
        ports("PORTS", &r.ports_tcp),
        ports("PORTS_UDP", &r.ports_udp),
    ]
}

impl Runner {
    pub fn container_instance_arn(&self, cluster: &str, id: &str) -> String {
        self.arn(&format!("container-instance/{cluster}/{id}"))
    }

    /// Applies `change` to the stored instance until it sticks; `change`
    /// returns false to leave it. The record and its version afterwards.
    pub(super) async fn modify_instance(
        &self,
        cluster: &str,
        id: &str,
        mut change: impl FnMut(&mut InstanceRecord) -> Result<bool>,
    ) -> Result<Option<(InstanceRecord, i64)>> {
        loop {
            let Some(stored) = self.inner.store.instance(cluster, id).await? else {
                return Ok(None);
            };
            let mut record: InstanceRecord = serde_json::from_str(&stored.doc).map_err(corrupt)?;
            if !change(&mut record)? {
                return Ok(Some((record, stored.version)));
            }
            let doc = serde_json::to_string(&record).map_err(corrupt)?;
            if self
                .inner
                .store
                .save_instance(cluster, id, stored.version, &doc)
                .await?
            {
                return Ok(Some((record, stored.version + 1)));
            }
        }
    }

    /// Every instance of `cluster` (its embedded one registered first if
    /// need be) with its tasks: the input of placement, the filter and
    /// DescribeContainerInstances.
    pub async fn instance_views(&self, cluster: &str) -> Result<Vec<InstanceView>> {
        self.ensure_embedded(cluster).await?;
        let records: Vec<(InstanceRecord, i64)> = self
            .inner
            .store
            .instances(None)
            .await?
            .iter()
            .map(|v| {
                serde_json::from_str::<InstanceRecord>(&v.doc)
                    .map(|r| (r, v.version))
                    .map_err(corrupt)
            })
            .collect::<Result<_>>()?;
        let embedded_ids: BTreeSet<String> = records
            .iter()
            .filter(|(r, _)| r.embedded)
            .map(|(r, _)| r.id.clone())
            .collect();
        let tasks = self.live_tasks(None).await?;
        let mut views = Vec::new();
        // With the embedded instance turned off, records of it from before are not hosts.
        let disabled = self.inner.settings.embedded.disabled;
        for (record, version) in records
            .iter()
            .filter(|(r, _)| r.cluster == cluster && !(disabled && r.embedded))
        {
            let on = |t: &&TaskRecord| {
                if record.embedded {
                    // The host is shared by every cluster's embedded record.
                    match t.task.container_instance_arn.as_deref() {
                        Some(arn) => instance_id(arn).is_some_and(|i| embedded_ids.contains(i)),
                        None => true,
                    }
                } else {
                    placed_on(t, &record.id, &embedded_ids)
                }
            };
            let mut registered = placement::Resources {
                cpu: record.cpu,
                memory_mib: record.memory_mib,
                ports_tcp: record.ports_tcp.clone(),
                ports_udp: record.ports_udp.clone(),
            };
            let mut mine = Vec::new();
            let (mut running, mut pending) = (0, 0);
            for task in tasks.iter().filter(on) {
                let reserved = super::placing::demand_of(task).resources;
                if task.cluster == cluster {
                    if task.task.desired_status == DesiredStatus::Running {
                        running += 1;
                    }
                    if task.task.last_status == TaskStatus::Pending {
                        pending += 1;
                    }
                    mine.push(RunningTask {
                        id: task.id.clone(),
                        group: task.task.group.clone().unwrap_or_default(),
                        reserved,
                    });
                } else {
                    registered.cpu = registered.cpu.saturating_sub(reserved.cpu);
                    registered.memory_mib =
                        registered.memory_mib.saturating_sub(reserved.memory_mib);
                    registered.ports_tcp.extend(reserved.ports_tcp);
                    registered.ports_udp.extend(reserved.ports_udp);
                }
            }
            let registered_at =
                time::OffsetDateTime::from_unix_timestamp(record.registered_at_ms.div_euclid(1000))
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            views.push(InstanceView {
                placement: placement::Instance {
                    id: record.id.clone(),
                    ec2_instance_id: record.ec2_instance_id.clone(),
                    status: record.status.placement(),
                    agent_connected: record.agent_connected,
                    agent_version: record.version_info.agent_version.clone(),
                    registered_at,
                    registered,
                    attributes: record
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                        .collect(),
                    tasks: mine,
                },
                record: record.clone(),
                version: *version,
                running,
                pending,
            });
        }
        Ok(views)
    }

    /// ListContainerInstances: ARNs of the instances in `status` (every one
    /// but INACTIVE when none is given) that satisfy `filter`.
    pub async fn list_instances(
        &self,
        cluster: &str,
        filter: Option<&placement::Expression>,
        status: Option<InstanceState>,
    ) -> Result<Vec<String>> {
        Ok(self
            .instance_views(cluster)
            .await?
            .iter()
            .filter(|v| match status {
                Some(s) => v.record.status == s,
                None => v.record.status != InstanceState::Inactive,
            })
            .filter(|v| filter.is_none_or(|f| f.evaluate(&v.placement)))
            .map(|v| self.container_instance_arn(cluster, &v.record.id))
            .collect())
    }

    /// DescribeContainerInstances: the instances found and, for the
    /// others, (ARN, `MISSING`).
    pub async fn describe_instances(
        &self,
        cluster: &str,
        references: &[String],
    ) -> Result<(Vec<ContainerInstance>, Vec<(String, String)>)> {
        let views = self.instance_views(cluster).await?;
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for reference in references {
            let view =
                instance_id(reference).and_then(|id| views.iter().find(|v| v.record.id == id));
            match view {
                Some(v) => found.push(
                    v.record
                        .shape(self.container_instance_arn(cluster, &v.record.id), v),
                ),
                None => missing.push((self.reference_arn(cluster, reference), "MISSING".into())),
            }
        }
        Ok((found, missing))
    }

    /// The ARN a failure names for `reference` (an id or an ARN).
    pub(super) fn reference_arn(&self, cluster: &str, reference: &str) -> String {
        if reference.starts_with("arn:") {
            reference.to_string()
        } else {
            self.container_instance_arn(cluster, reference)
        }
    }

    /// UpdateContainerInstancesState: ACTIVE ↔ DRAINING. Only ACTIVE and
    /// DRAINING instances change (to the same status is no change); others
    /// come back as failures, as do unknown ones (`MISSING`).
    pub async fn update_instances_state(
        &self,
        cluster: &str,
        references: &[String],
        status: InstanceState,
    ) -> Result<(Vec<ContainerInstance>, Vec<(String, String)>)> {
        if !matches!(status, InstanceState::Active | InstanceState::Draining) {
            return Err(RunnerError::InvalidParameter(
                "status must be ACTIVE or DRAINING".into(),
            ));
        }
        let mut failures = Vec::new();
        let mut changed_any = false;
        let mut wanted = Vec::new();
        for reference in references {
            let Some(id) = instance_id(reference) else {
                failures.push((self.reference_arn(cluster, reference), "MISSING".into()));
                continue;
            };
            let mut refused = None;
            let outcome = self
                .modify_instance(cluster, id, |record| {
                    match record.status {
                        InstanceState::Active | InstanceState::Draining => {}
                        other => {
                            refused = Some(format!(
                                "Container instance is {other}; only ACTIVE and DRAINING instances change state"
                            ));
                            return Ok(false);
                        }
                    }
                    let changed = record.status != status;
                    record.status = status;
                    Ok(changed)
                })
                .await?;
            match (outcome, refused) {
                (None, _) => {
                    failures.push((self.reference_arn(cluster, reference), "MISSING".into()))
                }
                (Some(_), Some(reason)) => {
                    failures.push((self.reference_arn(cluster, reference), reason))
                }
                (Some(_), None) => {
                    changed_any = true;
                    wanted.push(id.to_string());
                }
            }
        }
        if changed_any {
            // Draining changes what the scheduler does at once.
            self.wake();
        }
        let views = self.instance_views(cluster).await?;
        let shown = wanted
            .iter()
            .filter_map(|id| views.iter().find(|v| &v.record.id == id))
            .map(|v| {
                v.record
                    .shape(self.container_instance_arn(cluster, &v.record.id), v)
            })
            .collect();
        Ok((shown, failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_come_from_ids_and_arns() {
        assert_eq!(instance_id("abc123"), Some("abc123"));
        assert_eq!(
            instance_id("arn:aws:ecs:us-east-1:1:container-instance/prod/abc123"),
            Some("abc123")
        );
        assert_eq!(instance_id(""), None);
        assert_eq!(instance_id("a\0b"), None);
        assert_eq!(
            instance_id("arn:aws:ecs:r:1:container-instance/prod/"),
            None
        );
    }

    #[test]
    fn builtin_attributes_do_not_count_as_custom() {
        assert!(is_builtin("ecs.availability-zone"));
        assert!(is_builtin(
            "com.amazonaws.ecs.capability.docker-remote-api.1.44"
        ));
        assert!(!is_builtin("stack"));
        assert!(!is_builtin("ecsx"));
    }

    #[test]
    fn resources_have_the_wire_shape() {
        let r = placement::Resources {
            cpu: 2048,
            memory_mib: 512,
            ports_tcp: BTreeSet::from([22, 5000]),
            ports_udp: BTreeSet::new(),
        };
        let json = serde_json::to_value(resources(&r)).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"name": "CPU", "type": "INTEGER", "integerValue": 2048},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 512},
                {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22", "5000"]},
                {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
            ])
        );
    }
}
