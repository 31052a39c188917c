//! Least privilege for containers: what a task definition may ask of the host
//! (host networking, a root user, ports below 1024, Linux capabilities), as
//! the operator's `[runner]` settings allow. One check, used when a definition
//! is registered, when RunTask/CreateService/UpdateService pick it, and again
//! when a task starts (the settings may have changed since).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use super::model::ContainerDefinition;

/// ECS's `KernelCapabilities` names (Linux capabilities without `CAP_`).
pub const CAPABILITIES: [&str; 38] = [
    "AUDIT_CONTROL",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
    "ALL",
];

/// Ports below this need root (or NET_BIND_SERVICE) on the host.
const PRIVILEGED_PORTS: i32 = 1024;

/// What the operator lets task definitions ask for (`[runner]` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Safety {
    /// Host address published container ports bind to.
    pub publish_address: IpAddr,
    /// Capabilities a container may add back (`linuxParameters.capabilities.add`);
    /// "ALL" allows every one.
    pub allowed_capabilities: BTreeSet<String>,
    pub allow_host_network: bool,
    pub allow_root_user: bool,
    pub allow_privileged_ports: bool,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            publish_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            allowed_capabilities: BTreeSet::new(),
            allow_host_network: false,
            allow_root_user: false,
            allow_privileged_ports: false,
        }
    }
}

/// Whether `user` (`user`, `user:group`, `uid`, `uid:gid`) names root. A
/// number is a uid however written (`00`, `+0`), as runc parses it.
pub fn is_root_user(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default().trim();
    name == "root" || name.parse::<i64>().is_ok_and(|uid| uid == 0)
}

/// The capabilities to add back to a container. Every container starts with
/// none, so `drop` has nothing left to remove; `add` wins over it, as with
/// Docker's `--cap-drop ALL --cap-add X` (ECS's usual `drop: ["ALL"]`).
pub fn added_capabilities(c: &ContainerDefinition) -> Vec<String> {
    let Some(caps) = c
        .linux_parameters
        .as_ref()
        .and_then(|l| l.capabilities.as_ref())
    else {
        return Vec::new();
    };
    let mut added = caps.add.clone();
    added.sort();
    added.dedup();
    added
}

impl Safety {
    /// Why these containers may not run here with `network_mode`, if they
    /// may not; the message names the setting that would allow it.
    pub fn check(
        &self,
        network_mode: &str,
        containers: &[ContainerDefinition],
    ) -> Result<(), String> {
        let host = network_mode == "host";
        if host && !self.allow_host_network {
            return Err(
                "networkMode host is not allowed on this runner (the operator allows it with \
                 [runner] allow_host_network = true); use bridge or none"
                    .into(),
            );
        }
        for c in containers {
            let name = &c.name;
            if let Some(caps) = c
                .linux_parameters
                .as_ref()
                .and_then(|l| l.capabilities.as_ref())
            {
                for cap in caps.add.iter().chain(&caps.drop) {
                    if !CAPABILITIES.contains(&cap.as_str()) {
                        return Err(format!(
                            "linuxParameters.capabilities of '{name}': unknown capability \
                             {cap:?} (names as in ECS, e.g. CHOWN, NET_BIND_SERVICE)"
                        ));
                    }
                }
            }
            let added = added_capabilities(c);
            for cap in &added {
                if !self.allowed_capabilities.contains(cap)
                    && !self.allowed_capabilities.contains("ALL")
                {
                    return Err(format!(
                        "Capability {cap} of '{name}' is not allowed on this runner (the \
                         operator allows it with [runner] allowed_capabilities)"
                    ));
                }
            }
            if let Some(user) = c.user.as_deref()
                && is_root_user(user)
                && !self.allow_root_user
            {
                return Err(format!(
                    "'{name}' runs as user {user:?} (root), which is not allowed on this runner \
                     (the operator allows it with [runner] allow_root_user = true); without \
                     `user` a container runs as its image's user with no capabilities"
                ));
            }
            if self.allow_privileged_ports {
                continue;
            }
            for p in &c.port_mappings {
                // The host port a mapping takes: in host mode the container's own.
                let host_port = match network_mode {
                    "host" => Some(p.container_port),
                    "bridge" => p.host_port.filter(|h| *h > 0),
                    _ => None,
                };
                if let Some(port) = host_port.filter(|h| *h < PRIVILEGED_PORTS) {
                    return Err(format!(
                        "Host port {port} of '{name}' is below {PRIVILEGED_PORTS}, which is not \
                         allowed on this runner (the operator allows it with [runner] \
                         allow_privileged_ports = true)"
                    ));
                }
            }
            // In the host's network namespace this capability is exactly the
            // right to bind its privileged ports.
            if host && added.iter().any(|a| a == "NET_BIND_SERVICE" || a == "ALL") {
                return Err(format!(
                    "Capability NET_BIND_SERVICE of '{name}' with networkMode host binds host \
                     ports below {PRIVILEGED_PORTS}, which is not allowed on this runner (the \
                     operator allows it with [runner] allow_privileged_ports = true)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::model::{KernelCapabilities, LinuxParameters, PortMapping};

    fn container(json: serde_json::Value) -> ContainerDefinition {
        let mut base = serde_json::json!({"name": "main", "image": "localhost:5000/a:1"});
        if let (Some(b), Some(extra)) = (base.as_object_mut(), json.as_object()) {
            b.extend(extra.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn root_users() {
        for root in [
            "0",
            "root",
            "0:0",
            "root:wheel",
            "00",
            "+0",
            " 0 ",
            "0:1000",
        ] {
            assert!(is_root_user(root), "{root}");
        }
        for other in ["1000", "nobody", "1000:0", "rooty", "10", ""] {
            assert!(!is_root_user(other), "{other}");
        }
    }

    #[test]
    fn defaults_refuse_what_needs_the_operator() {
        let safe = Safety::default();
        let refused = |mode: &str, c: serde_json::Value, setting: &str| {
            let e = safe.check(mode, &[container(c)]).unwrap_err();
            assert!(e.contains(setting), "{e}");
        };
        refused("host", serde_json::json!({}), "allow_host_network");
        refused(
            "bridge",
            serde_json::json!({"user": "0:0"}),
            "allow_root_user",
        );
        refused(
            "bridge",
            serde_json::json!({"portMappings": [{"containerPort": 80, "hostPort": 22}]}),
            "allow_privileged_ports",
        );
        refused(
            "bridge",
            serde_json::json!({"linuxParameters": {"capabilities": {"add": ["NET_RAW"]}}}),
            "allowed_capabilities",
        );
        refused(
            "bridge",
            serde_json::json!({"linuxParameters": {"capabilities": {"add": ["NET_RAW"], "drop": ["ALL"]}}}),
            "allowed_capabilities",
        );
        refused(
            "bridge",
            serde_json::json!({"linuxParameters": {"capabilities": {"add": ["CAP_FOO"]}}}),
            "unknown capability",
        );
        let fine = [
            ("bridge", serde_json::json!({"user": "1000:0"})),
            (
                "bridge",
                serde_json::json!({"portMappings": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 8081}]}),
            ),
            (
                "none",
                serde_json::json!({"portMappings": [{"containerPort": 80, "hostPort": 80}]}),
            ),
            (
                "bridge",
                serde_json::json!({"linuxParameters": {"capabilities": {"drop": ["ALL", "NET_RAW"]}}}),
            ),
        ];
        for (mode, c) in fine {
            safe.check(mode, &[container(c.clone())])
                .unwrap_or_else(|e| panic!("{mode} {c}: {e}"));
        }
    }

    #[test]
    fn settings_allow_it() {
        let open = Safety {
            allowed_capabilities: ["CHOWN".to_string(), "NET_BIND_SERVICE".to_string()].into(),
            allow_host_network: true,
            allow_root_user: true,
            allow_privileged_ports: true,
            ..Safety::default()
        };
        let mut c = container(serde_json::json!({"user": "root"}));
        c.port_mappings.push(PortMapping {
            container_port: 22,
            host_port: None,
            protocol: "tcp".into(),
            name: None,
        });
        c.linux_parameters = Some(LinuxParameters {
            capabilities: Some(KernelCapabilities {
                add: vec!["NET_BIND_SERVICE".into(), "CHOWN".into(), "CHOWN".into()],
                drop: vec!["ALL".into()],
            }),
        });
        open.check("host", std::slice::from_ref(&c)).unwrap();
        assert_eq!(added_capabilities(&c), ["CHOWN", "NET_BIND_SERVICE"]);
        // Host networking alone does not open privileged ports.
        let host_only = Safety {
            allow_privileged_ports: false,
            ..open
        };
        let e = host_only.check("host", &[c]).unwrap_err();
        assert!(e.contains("allow_privileged_ports"), "{e}");
    }
}
