//! Where a container instance's published ports are reached, for the load
//! balancer's targets: the embedded engine's publish address (loopback
//! when it publishes on every address), an agent's host the address its
//! agent connects from.

use std::net::{IpAddr, Ipv4Addr};

use super::instances::InstanceRecord;
use super::{Result, Runner, corrupt};

impl Runner {
    /// The address of container instance `id` (in any cluster); `None`
    /// when there is no such instance or its agent never connected.
    pub async fn instance_address(&self, id: &str) -> Result<Option<String>> {
        for stored in self.inner.store.instances(None).await? {
            let record: InstanceRecord = serde_json::from_str(&stored.doc).map_err(corrupt)?;
            if record.id == id {
                return Ok(self.address_of(&record));
            }
        }
        Ok(None)
    }

    pub(super) fn address_of(&self, record: &InstanceRecord) -> Option<String> {
        if record.embedded {
            let published = self.inner.settings.safety.publish_address;
            let address = if published.is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                published
            };
            return Some(address.to_string());
        }
        record.address.clone()
    }
}
