//! Attributes of container instances (PutAttributes, DeleteAttributes,
//! ListAttributes) and the agent-facing RegisterContainerInstance and
//! DeregisterContainerInstance (reference §1).
//!
//! Choices: the `ecs.` and `com.amazonaws.ecs.` names are the built-in
//! attributes the instance registers; PutAttributes and DeleteAttributes
//! refuse them, so a caller cannot move a host to another zone or
//! architecture behind placement's back. A target that is not in the
//! cluster fails the whole call before anything changes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::instances::{ContainerInstance, InstanceRecord, VersionInfo, instance_id, is_builtin};
use super::status::InstanceState;
use super::{Result, Runner, RunnerError, corrupt};

/// At most this many custom attributes per container instance, and per call.
pub const MAX_CUSTOM_ATTRIBUTES: usize = 10;
/// The only `targetType`.
pub const TARGET_TYPE: &str = "container-instance";

/// ECS `Attribute` with its target, as the attribute calls take and give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetAttribute {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
}

/// RegisterContainerInstance's `totalResources[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInput {
    pub name: String,
    #[serde(default)]
    pub integer_value: Option<i64>,
    #[serde(default)]
    pub long_value: Option<i64>,
    #[serde(default)]
    pub string_set_value: Vec<String>,
}

/// What an agent registers.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub cluster: String,
    /// Set when an agent registers again: the same instance comes back.
    pub container_instance_arn: Option<String>,
    pub total_resources: Vec<ResourceInput>,
    pub attributes: Vec<TargetAttribute>,
    pub version_info: VersionInfo,
}

/// Checks a name and value by ECS's rules: names 1–128 of
/// `[A-Za-z0-9_/\.-]`, values 1–128 of letters, digits, `-_.@/\:` and
/// spaces, not at either end.
pub fn check_attribute(name: &str, value: Option<&str>) -> Result<()> {
    let name_ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_/\\.-".contains(&b));
    if !name_ok {
        return Err(RunnerError::InvalidParameter(format!(
            "Attribute name {name:?}: 1 to 128 letters, numbers, and _ / \\ . -"
        )));
    }
    if let Some(value) = value {
        let value_ok = (1..=128).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@/\\: ".contains(&b))
            && !value.starts_with(' ')
            && !value.ends_with(' ');
        if !value_ok {
            return Err(RunnerError::InvalidParameter(format!(
                "Attribute value of {name}: 1 to 128 letters, numbers, spaces (not at either end) and - _ . @ / \\ :"
            )));
        }
    }
    Ok(())
}

fn custom_count(attributes: &BTreeMap<String, Option<String>>) -> usize {
    attributes.keys().filter(|n| !is_builtin(n)).count()
}

fn limit_exceeded() -> RunnerError {
    RunnerError::AttributeLimitExceeded(format!(
        "You can have at most {MAX_CUSTOM_ATTRIBUTES} custom attributes per resource."
    ))
}

impl Runner {
    /// The instance ids `attributes` target, each checked to be in `cluster`.
    async fn targets(&self, cluster: &str, attributes: &[TargetAttribute]) -> Result<Vec<String>> {
        if attributes.is_empty() || attributes.len() > MAX_CUSTOM_ATTRIBUTES {
            return Err(RunnerError::InvalidParameter(format!(
                "attributes: between 1 and {MAX_CUSTOM_ATTRIBUTES} per call"
            )));
        }
        let mut ids = Vec::new();
        for a in attributes {
            if a.target_type.as_deref().is_some_and(|t| t != TARGET_TYPE) {
                return Err(RunnerError::InvalidParameter(format!(
                    "targetType must be {TARGET_TYPE}"
                )));
            }
            let target = a
                .target_id
                .as_deref()
                .ok_or_else(|| RunnerError::InvalidParameter("targetId is required".into()))?;
            let not_found = || {
                RunnerError::TargetNotFound(format!(
                    "Could not find {target}. Make sure the target exists in the cluster and try again."
                ))
            };
            let id = instance_id(target).ok_or_else(not_found)?;
            match self.inner.store.instance(cluster, id).await? {
                Some(stored) => {
                    let record: InstanceRecord =
                        serde_json::from_str(&stored.doc).map_err(corrupt)?;
                    if record.status == InstanceState::Inactive {
                        return Err(not_found());
                    }
                }
                None => return Err(not_found()),
            }
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    fn shown(&self, cluster: &str, id: &str, a: &TargetAttribute) -> TargetAttribute {
        TargetAttribute {
            name: a.name.clone(),
            value: a.value.clone(),
            target_type: Some(TARGET_TYPE.into()),
            target_id: Some(self.container_instance_arn(cluster, id)),
        }
    }

    /// PutAttributes: adds or replaces custom attributes.
    pub async fn put_attributes(
        &self,
        cluster: &str,
        attributes: &[TargetAttribute],
    ) -> Result<Vec<TargetAttribute>> {
        for a in attributes {
            check_attribute(&a.name, a.value.as_deref())?;
            if is_builtin(&a.name) {
                return Err(RunnerError::InvalidParameter(format!(
                    "Attribute {}: the ecs. namespace is reserved for built-in attributes",
                    a.name
                )));
            }
        }
        let ids = self.targets(cluster, attributes).await?;
        let by_target = group(&ids, attributes);
        // Every target within the limit before any changes.
        for (id, mine) in &by_target {
            if let Some(stored) = self.inner.store.instance(cluster, id).await? {
                let mut record: InstanceRecord =
                    serde_json::from_str(&stored.doc).map_err(corrupt)?;
                for a in mine {
                    record.attributes.insert(a.name.clone(), a.value.clone());
                }
                if custom_count(&record.attributes) > MAX_CUSTOM_ATTRIBUTES {
                    return Err(limit_exceeded());
                }
            }
        }
        for (id, mine) in &by_target {
            self.modify_instance(cluster, id, |record| {
                for a in mine {
                    record.attributes.insert(a.name.clone(), a.value.clone());
                }
                if custom_count(&record.attributes) > MAX_CUSTOM_ATTRIBUTES {
                    return Err(limit_exceeded());
                }
                Ok(true)
            })
            .await?;
        }
        self.wake();
        Ok(ids
            .iter()
            .zip(attributes)
            .map(|(id, a)| self.shown(cluster, id, a))
            .collect())
    }

    /// DeleteAttributes: removes custom attributes by name.
    pub async fn delete_attributes(
        &self,
        cluster: &str,
        attributes: &[TargetAttribute],
    ) -> Result<Vec<TargetAttribute>> {
        for a in attributes {
            check_attribute(&a.name, None)?;
            if is_builtin(&a.name) {
                return Err(RunnerError::InvalidParameter(format!(
                    "Attribute {}: built-in attributes cannot be deleted",
                    a.name
                )));
            }
        }
        let ids = self.targets(cluster, attributes).await?;
        for (id, mine) in &group(&ids, attributes) {
            self.modify_instance(cluster, id, |record| {
                let mut changed = false;
                for a in mine {
                    changed |= record.attributes.remove(&a.name).is_some();
                }
                Ok(changed)
            })
            .await?;
        }
        Ok(ids
            .iter()
            .zip(attributes)
            .map(|(id, a)| self.shown(cluster, id, a))
            .collect())
    }

    /// ListAttributes: one entry per (instance, attribute), built-in ones
    /// included, optionally only `name` (with `value`).
    pub async fn list_attributes(
        &self,
        cluster: &str,
        name: Option<&str>,
        value: Option<&str>,
    ) -> Result<Vec<TargetAttribute>> {
        if value.is_some() && name.is_none() {
            return Err(RunnerError::InvalidParameter(
                "attributeValue needs attributeName".into(),
            ));
        }
        let mut out = Vec::new();
        for view in self.instance_views(cluster).await? {
            let record = &view.record;
            if record.status == InstanceState::Inactive {
                continue;
            }
            for (n, v) in &record.attributes {
                if name.is_some_and(|want| want != n)
                    || value.is_some_and(|want| v.as_deref() != Some(want))
                {
                    continue;
                }
                out.push(TargetAttribute {
                    name: n.clone(),
                    value: v.clone(),
                    target_type: Some(TARGET_TYPE.into()),
                    target_id: Some(self.container_instance_arn(cluster, &record.id)),
                });
            }
        }
        Ok(out)
    }

    /// RegisterContainerInstance: a new ACTIVE instance, or the same one
    /// again when `container_instance_arn` names it. Until its agent's
    /// channel is open (`agents`), a registered host is not connected and
    /// gets no placements.
    pub async fn register_instance(&self, r: Registration) -> Result<ContainerInstance> {
        let mut attributes = BTreeMap::new();
        for a in &r.attributes {
            check_attribute(&a.name, a.value.as_deref())?;
            attributes.insert(a.name.clone(), a.value.clone());
        }
        if custom_count(&attributes) > MAX_CUSTOM_ATTRIBUTES {
            return Err(limit_exceeded());
        }
        let mut cpu = 0u32;
        let mut memory_mib = 0u32;
        let mut ports_tcp = BTreeSet::new();
        let mut ports_udp = BTreeSet::new();
        for resource in &r.total_resources {
            let number = resource.integer_value.or(resource.long_value).unwrap_or(0);
            let number = u32::try_from(number.max(0)).unwrap_or(u32::MAX);
            let ports = || -> Result<BTreeSet<u16>> {
                resource
                    .string_set_value
                    .iter()
                    .map(|p| {
                        p.parse::<u16>().map_err(|_| {
                            RunnerError::InvalidParameter(format!(
                                "{}: bad port {p:?}",
                                resource.name
                            ))
                        })
                    })
                    .collect()
            };
            match resource.name.as_str() {
                "CPU" => cpu = number,
                "MEMORY" => memory_mib = number,
                "PORTS" => ports_tcp = ports()?,
                "PORTS_UDP" => ports_udp = ports()?,
                // GPUs and the like are not placed on yet.
                _ => {}
            }
        }
        let id = match r.container_instance_arn.as_deref() {
            Some(arn) => {
                let id = instance_id(arn).ok_or_else(|| {
                    RunnerError::InvalidParameter(format!("containerInstanceArn {arn:?}"))
                })?;
                let mut refused = None;
                let found = self
                    .modify_instance(&r.cluster, id, |record| {
                        if record.embedded || record.status == InstanceState::Inactive {
                            refused = Some(record.status);
                            return Ok(false);
                        }
                        record.cpu = cpu;
                        record.memory_mib = memory_mib;
                        record.ports_tcp = ports_tcp.clone();
                        record.ports_udp = ports_udp.clone();
                        record.version_info = r.version_info.clone();
                        // Built-ins are replaced; custom ones stay (the agent
                        // sends its custom attributes on first registration only).
                        record.attributes.retain(|n, _| !is_builtin(n));
                        for (n, v) in &attributes {
                            record.attributes.insert(n.clone(), v.clone());
                        }
                        if custom_count(&record.attributes) > MAX_CUSTOM_ATTRIBUTES {
                            return Err(limit_exceeded());
                        }
                        Ok(true)
                    })
                    .await?;
                match (found, refused) {
                    (None, _) => {
                        return Err(RunnerError::InvalidParameter(format!(
                            "Container instance {arn} is not registered in this cluster."
                        )));
                    }
                    (Some(_), Some(status)) => {
                        return Err(RunnerError::InvalidParameter(format!(
                            "Container instance {arn} cannot register again ({status}, or this server's own engine)."
                        )));
                    }
                    (Some(_), None) => id.to_string(),
                }
            }
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let record = InstanceRecord {
                    id: id.clone(),
                    cluster: r.cluster.clone(),
                    embedded: false,
                    status: InstanceState::Active,
                    status_reason: None,
                    agent_connected: false,
                    ec2_instance_id: None,
                    cpu,
                    memory_mib,
                    ports_tcp,
                    ports_udp,
                    attributes,
                    version_info: r.version_info.clone(),
                    registered_at_ms: crate::registry::now_ms(),
                    agent_seen_ms: None,
                    agent_session: None,
                    address: None,
                };
                let doc = serde_json::to_string(&record).map_err(corrupt)?;
                self.inner
                    .store
                    .insert_instance(&r.cluster, &id, &doc)
                    .await?;
                id
            }
        };
        self.instance_shape(&r.cluster, &id).await
    }

    /// DeregisterContainerInstance: INACTIVE. With tasks meant to run there
    /// it needs `force` (they are then left to themselves, as ECS does). The
    /// embedded instance cannot be deregistered: drain it instead.
    pub async fn deregister_instance(
        &self,
        cluster: &str,
        reference: &str,
        force: bool,
    ) -> Result<ContainerInstance> {
        let not_found = || {
            RunnerError::InvalidParameter(format!(
                "Container instance {reference} is not registered in this cluster."
            ))
        };
        let id = instance_id(reference).ok_or_else(not_found)?;
        let views = self.instance_views(cluster).await?;
        let view = views
            .iter()
            .find(|v| v.record.id == id)
            .ok_or_else(not_found)?;
        may_deregister(&view.record, view.running, force)?;
        self.modify_instance(cluster, id, |record| {
            let changed = record.status != InstanceState::Inactive;
            record.status = InstanceState::Inactive;
            record.agent_connected = false;
            record.agent_session = None;
            Ok(changed)
        })
        .await?
        .ok_or_else(not_found)?;
        // Its agent is told by the channel closing; it cannot connect again.
        if let Some(session) = self.inner.sessions.get(cluster, id) {
            session.close();
        }
        // Nothing will report on its tasks again: they are STOPPED here (their
        // containers, untracked now, are the host's operator's), and services
        // replace theirs.
        let now = super::seconds(crate::registry::now_ms());
        for task in self.tasks_on(cluster, id).await? {
            self.update_task(&task.id, |r| {
                super::lifecycle::request_stop(
                    r,
                    super::status::StopCode::UserInitiated,
                    "Container instance deregistered",
                    now,
                );
                super::lifecycle::stopped(r, &std::collections::HashMap::new(), now, now);
                true
            })
            .await?;
        }
        self.wake();
        self.instance_shape(cluster, id).await
    }

    async fn instance_shape(&self, cluster: &str, id: &str) -> Result<ContainerInstance> {
        let views = self.instance_views(cluster).await?;
        let view = views
            .iter()
            .find(|v| v.record.id == id)
            .ok_or_else(|| RunnerError::Corrupt(format!("container instance {id} vanished")))?;
        Ok(view
            .record
            .shape(self.container_instance_arn(cluster, id), view))
    }
}

/// Whether an instance with `running` tasks meant to run may be
/// deregistered: not the embedded one (drain it instead), and with such
/// tasks only by `force`.
fn may_deregister(record: &InstanceRecord, running: i64, force: bool) -> Result<()> {
    if record.embedded {
        return Err(RunnerError::InvalidParameter(
            "This container instance is the server's own Docker Engine: drain it (UpdateContainerInstancesState DRAINING) instead.".into(),
        ));
    }
    if running > 0 && !force {
        return Err(RunnerError::InvalidParameter(
            "Found running tasks on the instance.".into(),
        ));
    }
    Ok(())
}

/// The attributes per target id, in the order first named.
fn group<'a>(
    ids: &[String],
    attributes: &'a [TargetAttribute],
) -> Vec<(String, Vec<&'a TargetAttribute>)> {
    let mut out: Vec<(String, Vec<&TargetAttribute>)> = Vec::new();
    for (id, a) in ids.iter().zip(attributes) {
        match out.iter_mut().find(|(i, _)| i == id) {
            Some((_, list)) => list.push(a),
            None => out.push((id.clone(), vec![a])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names_and_values_follow_ecs_rules() {
        assert!(check_attribute("stack", Some("prod")).is_ok());
        assert!(check_attribute("a/b\\c.d-e_f", Some("x y@z:1/2\\3")).is_ok());
        assert!(check_attribute("flag", None).is_ok());
        assert!(check_attribute("", Some("x")).is_err());
        assert!(check_attribute(&"n".repeat(129), None).is_err());
        assert!(check_attribute("bad name", None).is_err());
        assert!(check_attribute("n", Some("")).is_err());
        assert!(check_attribute("n", Some(" lead")).is_err());
        assert!(check_attribute("n", Some("trail ")).is_err());
        assert!(check_attribute("n", Some("semi;colon")).is_err());
        assert!(check_attribute("n", Some(&"v".repeat(129))).is_err());
    }

    #[test]
    fn only_custom_attributes_count() {
        let mut attributes: BTreeMap<String, Option<String>> =
            (0..10).map(|i| (format!("custom{i}"), None)).collect();
        attributes.insert("ecs.os-type".into(), Some("linux".into()));
        attributes.insert("com.amazonaws.ecs.capability.x".into(), None);
        assert_eq!(custom_count(&attributes), 10);
    }

    #[test]
    fn deregistering_needs_force_with_running_tasks_and_spares_the_embedded_instance() {
        let mut record: InstanceRecord = serde_json::from_value(serde_json::json!({
            "id": "i1", "cluster": "prod", "status": "ACTIVE", "agentConnected": false,
            "cpu": 1024, "memoryMib": 512, "registeredAtMs": 0
        }))
        .unwrap();
        assert!(may_deregister(&record, 0, false).is_ok());
        let refused = may_deregister(&record, 2, false).unwrap_err();
        assert_eq!(refused.to_string(), "Found running tasks on the instance.");
        assert!(may_deregister(&record, 2, true).is_ok());
        record.embedded = true;
        assert!(may_deregister(&record, 0, true).is_err());
    }

    #[test]
    fn attributes_are_grouped_by_target() {
        let a = |n: &str| TargetAttribute {
            name: n.into(),
            value: None,
            target_type: None,
            target_id: None,
        };
        let list = [a("x"), a("y"), a("z")];
        let ids = ["i1".to_string(), "i2".into(), "i1".into()];
        let grouped = group(&ids, &list);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0].0, "i1");
        assert_eq!(grouped[0].1.len(), 2);
    }
}
