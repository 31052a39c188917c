//! The embedded container instance: this server's own Docker Engine,
//! registered in every cluster (README "Container instances"). One record per
//! cluster, with an id derived from the installation and the cluster, so
//! replicas and restarts agree; CreateCluster registers it, the runner's loop
//! keeps `agentConnected`, resources and attributes up to date.

use std::collections::{BTreeMap, BTreeSet};

use super::engine::EngineInfo;
use super::instances::{InstanceRecord, VersionInfo};
use super::status::InstanceState;
use super::{Result, Runner, corrupt};

/// ECS `ecs.cpu-architecture` for Docker's architecture name.
fn ecs_architecture(docker: &str) -> &str {
    match docker {
        "aarch64" | "arm64" => "arm64",
        "x86_64" | "amd64" => "x86_64",
        other => other,
    }
}

/// What this host offers when the engine cannot say (it is not reachable
/// yet): the CPUs and memory the server itself sees. The runner only speaks
/// to Docker over a Unix socket, so the engine shares this machine.
fn host_info() -> EngineInfo {
    let cpus = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let memory_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| u32::try_from(kib / 1024).unwrap_or(u32::MAX));
    EngineInfo {
        cpus,
        memory_mib,
        architecture: std::env::consts::ARCH.to_string(),
        server_version: String::new(),
    }
}

impl Runner {
    /// The embedded instance's id in `cluster`: the same on every replica
    /// and after restarts (32 hex digits, like ECS's).
    pub(super) fn embedded_id(&self, cluster: &str) -> String {
        let digest = crate::oci::Digest::compute(
            crate::oci::Algorithm::Sha256,
            format!("{}/{cluster}", self.inner.instance).as_bytes(),
        );
        digest.hex().chars().take(32).collect()
    }

    /// What the engine last said of its host, asked now when it never did.
    async fn engine_info(&self) -> Option<EngineInfo> {
        let cached = self
            .inner
            .engine_info
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if cached.is_some() {
            return cached;
        }
        let info = self.inner.engine.info().await.ok()?;
        *self
            .inner
            .engine_info
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(info.clone());
        Some(info)
    }

    /// The ports the load balancer's listeners take. They are taken on
    /// this host (the data plane runs beside the embedded engine), so no
    /// task may be placed there with one of them.
    pub(super) async fn listener_ports(&self) -> Result<BTreeSet<u16>> {
        let Some(balancer) = self.balancer() else {
            return Ok(BTreeSet::new());
        };
        let listeners = balancer
            .listeners()
            .await
            .map_err(super::targets::balancer_error)?;
        Ok(listeners.iter().map(|l| l.port).collect())
    }

    /// Reserves the configured ports and the listeners' on an embedded
    /// record, engine or not; whether that changed it.
    fn reserve_ports(&self, record: &mut InstanceRecord, listener_ports: &BTreeSet<u16>) -> bool {
        let ports = &self.inner.settings.embedded.reserved_ports | listener_ports;
        let changed = record.ports_tcp != ports;
        record.ports_tcp = ports;
        changed
    }

    /// Applies what is known of the host (engine or, failing that, this
    /// machine) and the settings to an embedded record; whether it changed.
    fn describe_host(
        &self,
        record: &mut InstanceRecord,
        info: &EngineInfo,
        connected: bool,
    ) -> bool {
        let before = record.clone();
        let settings = &self.inner.settings.embedded;
        record.cpu = settings
            .cpu
            .unwrap_or_else(|| info.cpus.saturating_mul(1024));
        record.memory_mib = settings.memory_mib.unwrap_or(info.memory_mib);
        record.agent_connected = connected;
        let zone = if settings.availability_zone.is_empty() {
            format!("{}a", self.inner.settings.region)
        } else {
            settings.availability_zone.clone()
        };
        for (name, value) in [
            ("ecs.os-type", "linux".to_string()),
            ("ecs.os-family", "LINUX".to_string()),
            (
                "ecs.cpu-architecture",
                ecs_architecture(&info.architecture).to_string(),
            ),
            ("ecs.availability-zone", zone),
        ] {
            record.attributes.insert(name.to_string(), Some(value));
        }
        record.version_info = VersionInfo {
            agent_version: Some(format!("wharf {}", env!("CARGO_PKG_VERSION"))),
            agent_hash: None,
            docker_version: (!info.server_version.is_empty())
                .then(|| format!("DockerVersion: {}", info.server_version)),
        };
        *record != before
    }

    /// Registers the embedded instance in `cluster` unless it is there.
    pub(super) async fn ensure_embedded(&self, cluster: &str) -> Result<()> {
        if self.inner.settings.embedded.disabled {
            return Ok(());
        }
        let id = self.embedded_id(cluster);
        if self.inner.store.instance(cluster, &id).await?.is_some() {
            return Ok(());
        }
        let listener_ports = self.listener_ports().await?;
        let (info, connected) = match self.engine_info().await {
            Some(info) => (info, true),
            None => (host_info(), false),
        };
        let mut record = InstanceRecord {
            id: id.clone(),
            cluster: cluster.to_string(),
            embedded: true,
            status: InstanceState::Active,
            status_reason: None,
            agent_connected: connected,
            ec2_instance_id: None,
            cpu: 0,
            memory_mib: 0,
            ports_tcp: BTreeSet::new(),
            ports_udp: BTreeSet::new(),
            attributes: BTreeMap::new(),
            version_info: VersionInfo::default(),
            registered_at_ms: crate::registry::now_ms(),
            agent_seen_ms: None,
            agent_session: None,
            address: None,
        };
        self.describe_host(&mut record, &info, connected);
        self.reserve_ports(&mut record, &listener_ports);
        let doc = serde_json::to_string(&record).map_err(corrupt)?;
        self.inner.store.insert_instance(cluster, &id, &doc).await?;
        Ok(())
    }

    /// The loop's pass over the embedded instances: every cluster has one,
    /// and each says whether the engine answers and what it offers.
    pub(super) async fn refresh_embedded(
        &self,
        reachable: bool,
        listener_ports: &BTreeSet<u16>,
    ) -> Result<()> {
        if self.inner.settings.embedded.disabled {
            return Ok(());
        }
        let info = if reachable {
            self.engine_info().await
        } else {
            None
        };
        let connected = info.is_some();
        let info = info.unwrap_or_else(host_info);
        for (cluster, _) in self.inner.store.clusters().await? {
            self.ensure_embedded(&cluster).await?;
            let id = self.embedded_id(&cluster);
            self.modify_instance(&cluster, &id, |record| {
                let mut changed = record.agent_connected != connected;
                record.agent_connected = connected;
                changed |= self.reserve_ports(record, listener_ports);
                // Resources stay as last measured while the engine is away.
                if connected {
                    changed |= self.describe_host(record, &info, connected);
                }
                Ok(changed)
            })
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_architectures_map_to_ecs_names() {
        assert_eq!(ecs_architecture("aarch64"), "arm64");
        assert_eq!(ecs_architecture("x86_64"), "x86_64");
        assert_eq!(ecs_architecture("riscv64"), "riscv64");
    }

    #[test]
    fn the_host_is_measured_without_the_engine() {
        let info = host_info();
        assert!(info.cpus >= 1);
        assert!(info.memory_mib > 0);
    }
}
