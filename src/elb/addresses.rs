//! Resolving the ids of an `instance` target group's targets to addresses,
//! through the runner that knows the container instances.

use std::future::Future;

use crate::http::Fault;
use crate::runner::{Runner, RunnerError};

use super::ElbError;

/// Where a container instance is reached.
pub trait InstanceAddresses {
    /// The address of container instance `id`; `None` when no instance has
    /// that id (or its address is unknown).
    fn instance_address(&self, id: &str) -> impl Future<Output = Result<Option<String>, ElbError>>;
}

impl InstanceAddresses for Option<Runner> {
    async fn instance_address(&self, id: &str) -> Result<Option<String>, ElbError> {
        let Some(runner) = self else {
            return Ok(None);
        };
        runner.instance_address(id).await.map_err(|e| {
            let fault = match e {
                RunnerError::Store(e) => Fault::classify(e.is_unavailable(), e),
                other => Fault::Internal(format!("container instances: {other}")),
            };
            ElbError::Fault(fault)
        })
    }
}
