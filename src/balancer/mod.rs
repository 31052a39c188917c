//! The built-in load balancer: target groups, load balancers and listeners
//! (the control plane ELBv2's API drives), target health checks with ELB's
//! state machine, and the data plane that forwards each listener's traffic
//! to its target group's routable targets. Records live in the metadata
//! store's documents; this module knows nothing of HTTP APIs or the runner
//! (the runner and the API resolve target ids to addresses and call in).

pub mod groups;
pub mod haproxy;
pub mod health;
pub mod load_balancers;
pub mod model;
pub mod targets;
mod tasks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::storage::MetadataError;
use crate::storage::metadata::DocumentStore;
use model::{
    KIND_LISTENER, KIND_LOAD_BALANCER, KIND_TARGET_GROUP, Listener, LoadBalancer, TargetGroup,
};

/// Why a balancer operation failed; `elb` maps each to ELB's error name.
#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    InvalidConfiguration(String),
    #[error("One or more target groups not found")]
    TargetGroupNotFound,
    #[error("A target group with the same name '{0}' exists, but with different settings")]
    DuplicateTargetGroupName(String),
    #[error("One or more load balancers not found")]
    LoadBalancerNotFound,
    #[error("A load balancer with the same name '{0}' exists, but with different settings")]
    DuplicateLoadBalancerName(String),
    #[error("One or more listeners not found")]
    ListenerNotFound,
    #[error("A listener already exists on port {0}")]
    DuplicateListener(u16),
    #[error("{0}")]
    InvalidTarget(String),
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    TooMany(&'static str, String),
    #[error("metadata store: {0}")]
    Store(#[from] MetadataError),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = BalancerError> = std::result::Result<T, E>;

/// How the balancer is set up.
#[derive(Debug, Clone)]
pub struct BalancerSettings {
    /// ARNs: `arn:aws:elasticloadbalancing:<region>:<account>:...`.
    pub region: String,
    pub account: String,
    /// Ports no listener may take: the server's own and the runner's
    /// reserved ones.
    pub reserved_ports: Vec<u16>,
}

/// One target as a caller names it: ELB's `TargetDescription`, with the
/// address the caller resolved its id to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub id: String,
    /// `None`: the target group's port.
    pub port: Option<u16>,
    pub availability_zone: Option<String>,
    /// Where the target is reached; `None` for deregistration.
    pub address: Option<String>,
}

#[derive(Clone)]
pub struct Balancer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn DocumentStore>,
    settings: BalancerSettings,
    /// Requests this process's data plane forwarded, by target group ARN.
    requests: Mutex<HashMap<String, u64>>,
    /// Wakes the data plane after a change.
    changed: tokio::sync::Notify,
}

fn corrupt(e: serde_json::Error) -> BalancerError {
    BalancerError::Corrupt(e.to_string())
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn to_doc<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(corrupt)
}

impl Balancer {
    pub fn new(store: Arc<dyn DocumentStore>, settings: BalancerSettings) -> Balancer {
        Balancer {
            inner: Arc::new(Inner {
                store,
                settings,
                requests: Mutex::new(HashMap::new()),
                changed: tokio::sync::Notify::new(),
            }),
        }
    }

    pub fn settings(&self) -> &BalancerSettings {
        &self.inner.settings
    }

    /// `arn:aws:elasticloadbalancing:<region>:<account>:<resource>`.
    pub fn arn(&self, resource: &str) -> String {
        let s = &self.inner.settings;
        format!(
            "arn:aws:elasticloadbalancing:{}:{}:{resource}",
            s.region, s.account
        )
    }

    /// Resolves when a record changed in this process (the data plane
    /// also looks every second, for changes made by other replicas).
    pub async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    /// Tells the data plane to look now.
    pub fn notify(&self) {
        self.inner.changed.notify_waiters();
    }

    /// Counts requests the data plane forwarded to target group `arn`.
    pub fn add_requests(&self, arn: &str, n: u64) {
        let mut requests = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *requests.entry(arn.to_string()).or_default() += n;
    }

    /// Requests this process forwarded to target group `arn` since it started.
    pub fn requests_total(&self, arn: &str) -> Option<u64> {
        let requests = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        requests.get(arn).copied()
    }

    pub async fn target_groups(&self) -> Result<Vec<TargetGroup>> {
        self.all(KIND_TARGET_GROUP).await
    }

    pub async fn load_balancers(&self) -> Result<Vec<LoadBalancer>> {
        self.all(KIND_LOAD_BALANCER).await
    }

    pub async fn listeners(&self) -> Result<Vec<Listener>> {
        self.all(KIND_LISTENER).await
    }

    pub async fn target_group(&self, arn: &str) -> Result<TargetGroup> {
        let stored = self
            .inner
            .store
            .document(KIND_TARGET_GROUP, arn)
            .await?
            .ok_or(BalancerError::TargetGroupNotFound)?;
        serde_json::from_str(&stored.doc).map_err(corrupt)
    }

    /// Applies `change` to target group `arn` and saves it when it says it
    /// changed, retrying when another writer got there first; the group as
    /// saved (or as it was).
    pub async fn modify_group(
        &self,
        arn: &str,
        mut change: impl FnMut(&mut TargetGroup) -> Result<bool>,
    ) -> Result<TargetGroup> {
        loop {
            let stored = self
                .inner
                .store
                .document(KIND_TARGET_GROUP, arn)
                .await?
                .ok_or(BalancerError::TargetGroupNotFound)?;
            let mut group: TargetGroup = serde_json::from_str(&stored.doc).map_err(corrupt)?;
            if !change(&mut group)? {
                return Ok(group);
            }
            let doc = to_doc(&group)?;
            if self
                .inner
                .store
                .save_document(KIND_TARGET_GROUP, arn, stored.version, &doc)
                .await?
            {
                self.notify();
                return Ok(group);
            }
        }
    }

    async fn all<T: serde::de::DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>> {
        self.inner
            .store
            .documents(kind)
            .await?
            .iter()
            .map(|d| serde_json::from_str(&d.doc).map_err(corrupt))
            .collect()
    }
}
