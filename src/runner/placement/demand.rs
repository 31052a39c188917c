//! What one task reserves on the instance it is placed on (reference §2,
//! "What a task reserves").

use std::collections::{BTreeMap, BTreeSet};

use super::Resources;

/// The parts of a task definition (after overrides) that decide its
/// reservation. The runner's `TaskDefinition` maps onto it field by field:
/// task `cpu`/`memory` (already converted from the wire strings, e.g.
/// "1 vCPU" → 1024), `networkMode` ("bridge" when absent on EC2), and per
/// container `cpu` (0 when absent), `memory`, `memoryReservation` and
/// `portMappings` (`hostPort` absent → `None`, protocol "tcp" by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskShape {
    pub cpu: Option<u32>,
    pub memory_mib: Option<u32>,
    pub network_mode: NetworkMode,
    pub containers: Vec<ContainerShape>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerShape {
    pub cpu: u32,
    pub memory_mib: Option<u32>,
    pub memory_reservation_mib: Option<u32>,
    pub port_mappings: Vec<PortShape>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortShape {
    pub container_port: u16,
    /// `None` or `Some(0)`: a dynamic port in bridge mode.
    pub host_port: Option<u16>,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetworkMode {
    #[default]
    Bridge,
    Host,
    /// Ports live on the task's own interface, not the host's.
    Awsvpc,
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

/// What a task needs from an instance, and which group it counts in for
/// spread and distinctInstance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskDemand {
    pub resources: Resources,
    /// `service:NAME` for service tasks, else RunTask's `group`
    /// (default `family:FAMILY`).
    pub group: String,
    /// The task definition's `requiresAttributes`: each name must be present
    /// on the instance, with this value when one is given.
    pub required_attributes: BTreeMap<String, Option<String>>,
}

impl TaskDemand {
    /// The reservation by the reference's rules: task-level cpu/memory when
    /// set, else the containers' sums (`memoryReservation` before `memory`);
    /// static host ports in bridge mode, container ports in host mode,
    /// nothing for dynamic ports or awsvpc.
    pub fn from_shape(shape: &TaskShape, group: impl Into<String>) -> Self {
        let cpu = shape.cpu.unwrap_or_else(|| {
            shape
                .containers
                .iter()
                .fold(0u32, |sum, c| sum.saturating_add(c.cpu))
        });
        let memory_mib = shape.memory_mib.unwrap_or_else(|| {
            shape.containers.iter().fold(0u32, |sum, c| {
                sum.saturating_add(c.memory_reservation_mib.or(c.memory_mib).unwrap_or(0))
            })
        });
        let mut ports_tcp = BTreeSet::new();
        let mut ports_udp = BTreeSet::new();
        for mapping in shape.containers.iter().flat_map(|c| &c.port_mappings) {
            let host = match shape.network_mode {
                NetworkMode::Bridge => mapping.host_port.filter(|p| *p != 0),
                NetworkMode::Host => Some(mapping.container_port),
                NetworkMode::Awsvpc | NetworkMode::None => None,
            };
            if let Some(port) = host {
                match mapping.protocol {
                    Protocol::Tcp => ports_tcp.insert(port),
                    Protocol::Udp => ports_udp.insert(port),
                };
            }
        }
        TaskDemand {
            resources: Resources {
                cpu,
                memory_mib,
                ports_tcp,
                ports_udp,
            },
            group: group.into(),
            required_attributes: BTreeMap::new(),
        }
    }

    /// Adds `requiresAttributes` entries.
    pub fn with_required_attributes(
        mut self,
        attributes: impl IntoIterator<Item = (String, Option<String>)>,
    ) -> Self {
        self.required_attributes.extend(attributes);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(container: u16, host: Option<u16>, protocol: Protocol) -> PortShape {
        PortShape {
            container_port: container,
            host_port: host,
            protocol,
        }
    }

    fn two_containers(mode: NetworkMode) -> TaskShape {
        TaskShape {
            cpu: None,
            memory_mib: None,
            network_mode: mode,
            containers: vec![
                ContainerShape {
                    cpu: 256,
                    memory_mib: Some(512),
                    memory_reservation_mib: Some(128),
                    port_mappings: vec![
                        port(80, Some(8080), Protocol::Tcp),
                        port(53, Some(53), Protocol::Udp),
                        port(9000, Some(0), Protocol::Tcp),
                    ],
                },
                ContainerShape {
                    cpu: 0,
                    memory_mib: Some(300),
                    memory_reservation_mib: None,
                    port_mappings: vec![port(443, None, Protocol::Tcp)],
                },
            ],
        }
    }

    #[test]
    fn sums_containers_preferring_memory_reservation() {
        let demand = TaskDemand::from_shape(&two_containers(NetworkMode::Bridge), "family:web");
        assert_eq!(demand.resources.cpu, 256);
        assert_eq!(demand.resources.memory_mib, 128 + 300);
        assert_eq!(demand.group, "family:web");
    }

    #[test]
    fn task_level_values_win() {
        let mut shape = two_containers(NetworkMode::Bridge);
        shape.cpu = Some(1024);
        shape.memory_mib = Some(2048);
        let demand = TaskDemand::from_shape(&shape, "g");
        assert_eq!(demand.resources.cpu, 1024);
        assert_eq!(demand.resources.memory_mib, 2048);
    }

    #[test]
    fn bridge_reserves_static_host_ports_only() {
        let demand = TaskDemand::from_shape(&two_containers(NetworkMode::Bridge), "g");
        assert_eq!(demand.resources.ports_tcp, BTreeSet::from([8080]));
        assert_eq!(demand.resources.ports_udp, BTreeSet::from([53]));
    }

    #[test]
    fn host_mode_reserves_container_ports() {
        let demand = TaskDemand::from_shape(&two_containers(NetworkMode::Host), "g");
        assert_eq!(demand.resources.ports_tcp, BTreeSet::from([80, 443, 9000]));
        assert_eq!(demand.resources.ports_udp, BTreeSet::from([53]));
    }

    #[test]
    fn awsvpc_reserves_no_host_ports() {
        let demand = TaskDemand::from_shape(&two_containers(NetworkMode::Awsvpc), "g");
        assert!(demand.resources.ports_tcp.is_empty());
        assert!(demand.resources.ports_udp.is_empty());
    }
}
