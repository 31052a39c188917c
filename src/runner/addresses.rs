//! Where a container instance is reached, for the load balancer's targets
//! of type `instance`. A placeholder until the instances record their
//! addresses: the embedded instance is this host (loopback); an agent's
//! instance has no known address yet.

use super::instances::InstanceRecord;
use super::{Result, Runner, corrupt};

impl Runner {
    /// The address of container instance `id` (of any cluster); `None` when
    /// there is no such instance or its address is not known.
    pub async fn instance_address(&self, id: &str) -> Result<Option<String>> {
        for stored in self.inner.store.instances(None).await? {
            let record: InstanceRecord = serde_json::from_str(&stored.doc).map_err(corrupt)?;
            if record.id == id {
                return Ok(record.embedded.then(|| "127.0.0.1".to_string()));
            }
        }
        Ok(None)
    }
}
