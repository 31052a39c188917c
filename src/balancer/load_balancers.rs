//! Load balancers and their listeners. A listener binds a real port on the
//! Wharf host, so a port holds one listener across every load balancer: a
//! claim document per port (kind [`KIND_LISTENER_PORT`]) names the listener
//! holding it. The listener is stored before its claim, so a claim naming a
//! listener that does not exist is stale (its deletion was interrupted) and
//! may be taken over.

use super::groups::{check_name, name_id};
use super::model::{
    KIND_LISTENER, KIND_LISTENER_PORT, KIND_LOAD_BALANCER, Listener, LoadBalancer, Protocol, Tag,
};
use super::{Balancer, BalancerError, Result, corrupt, now_ms, to_doc};

/// At most this many load balancers and listeners (ELB's quotas are per
/// region and per load balancer; ours count every one on this server).
pub const MAX_LOAD_BALANCERS: usize = 50;
pub const MAX_LISTENERS: usize = 50;

/// CreateLoadBalancer's input (subnets and security groups are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewLoadBalancer {
    pub name: String,
    /// `application` (the default) or `network`.
    pub kind: Option<String>,
    /// `internet-facing` (the default) or `internal`.
    pub scheme: Option<String>,
    pub tags: Vec<Tag>,
}

/// CreateListener's input: its default action forwards to one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewListener {
    pub load_balancer_arn: String,
    pub port: Option<u16>,
    /// `None`: HTTP on an application load balancer, TCP on a network one.
    pub protocol: Option<Protocol>,
    pub target_group_arn: String,
}

fn validation(message: impl Into<String>) -> BalancerError {
    BalancerError::Validation(message.into())
}

/// The ARN kind segment of a load balancer type.
fn kind_segment(kind: &str) -> &'static str {
    if kind == "network" { "net" } else { "app" }
}

/// The protocol a load balancer type's listeners speak.
fn listener_protocol(kind: &str) -> Protocol {
    if kind == "network" {
        Protocol::Tcp
    } else {
        Protocol::Http
    }
}

impl Balancer {
    pub async fn load_balancer(&self, arn: &str) -> Result<LoadBalancer> {
        let stored = self
            .inner
            .store
            .document(KIND_LOAD_BALANCER, arn)
            .await?
            .ok_or(BalancerError::LoadBalancerNotFound)?;
        serde_json::from_str(&stored.doc).map_err(corrupt)
    }

    pub async fn listener(&self, arn: &str) -> Result<Listener> {
        let stored = self
            .inner
            .store
            .document(KIND_LISTENER, arn)
            .await?
            .ok_or(BalancerError::ListenerNotFound)?;
        serde_json::from_str(&stored.doc).map_err(corrupt)
    }

    /// CreateLoadBalancer: `active` at once (there is nothing to
    /// provision); the existing one when a load balancer of that name has
    /// the same type and scheme. Its DNS name is
    /// `<name>-<id>.<region>.elb.localhost`: `.localhost` names resolve to
    /// loopback (RFC 6761), where clients on the Wharf host reach the
    /// listeners; others use the host's own name and the listener's port.
    pub async fn create_load_balancer(&self, input: NewLoadBalancer) -> Result<LoadBalancer> {
        check_name("Load balancer", &input.name)?;
        if input.name.starts_with("internal-") {
            return Err(validation(
                "Load balancer names must not begin with 'internal-'",
            ));
        }
        let kind = input.kind.unwrap_or_else(|| "application".into());
        if !matches!(kind.as_str(), "application" | "network") {
            return Err(validation(format!(
                "Load balancer type '{kind}' is not supported: use 'application' or 'network'"
            )));
        }
        let scheme = input.scheme.unwrap_or_else(|| "internet-facing".into());
        if !matches!(scheme.as_str(), "internet-facing" | "internal") {
            return Err(validation(format!(
                "Scheme '{scheme}' must be 'internet-facing' or 'internal'"
            )));
        }
        let id = name_id("loadbalancer", &input.name);
        let arn = self.arn(&format!(
            "loadbalancer/{}/{}/{id}",
            kind_segment(&kind),
            input.name
        ));
        let balancer = LoadBalancer {
            arn: arn.clone(),
            dns_name: format!(
                "{}-{id}.{}.elb.localhost",
                input.name,
                self.settings().region
            ),
            name: input.name,
            kind,
            scheme,
            created_ms: now_ms(),
            tags: input.tags,
        };
        loop {
            let existing = self
                .load_balancers()
                .await?
                .into_iter()
                .find(|b| b.name == balancer.name);
            if let Some(existing) = existing {
                return if existing.kind == balancer.kind && existing.scheme == balancer.scheme {
                    Ok(existing)
                } else {
                    Err(BalancerError::DuplicateLoadBalancerName(balancer.name))
                };
            }
            if self.inner.store.documents(KIND_LOAD_BALANCER).await?.len() >= MAX_LOAD_BALANCERS {
                return Err(BalancerError::TooMany(
                    "TooManyLoadBalancers",
                    format!("You have reached the limit of {MAX_LOAD_BALANCERS} load balancers"),
                ));
            }
            if self
                .inner
                .store
                .insert_document(KIND_LOAD_BALANCER, &arn, &to_doc(&balancer)?)
                .await?
            {
                return Ok(balancer);
            }
        }
    }

    /// DescribeLoadBalancers: all, or those named by ARN or by name (each
    /// must exist), by name.
    pub async fn describe_load_balancers(
        &self,
        arns: &[String],
        names: &[String],
    ) -> Result<Vec<LoadBalancer>> {
        if !arns.is_empty() && !names.is_empty() {
            return Err(validation(
                "Only one of LoadBalancerArns and Names may be specified",
            ));
        }
        let mut all = self.load_balancers().await?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let keep = |b: &LoadBalancer| {
            (arns.is_empty() || arns.contains(&b.arn))
                && (names.is_empty() || names.contains(&b.name))
        };
        let found: Vec<LoadBalancer> = all.into_iter().filter(keep).collect();
        if found.len() < arns.len().max(names.len()) {
            return Err(BalancerError::LoadBalancerNotFound);
        }
        Ok(found)
    }

    /// DeleteLoadBalancer: its listeners first; deleting one that does not
    /// exist succeeds, as in ELB.
    pub async fn delete_load_balancer(&self, arn: &str) -> Result<()> {
        for listener in self.listeners().await? {
            if listener.load_balancer_arn == arn {
                match self.delete_listener(&listener.arn).await {
                    Ok(()) | Err(BalancerError::ListenerNotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        loop {
            let Some(stored) = self.inner.store.document(KIND_LOAD_BALANCER, arn).await? else {
                return Ok(());
            };
            if self
                .inner
                .store
                .delete_document(KIND_LOAD_BALANCER, arn, stored.version)
                .await?
            {
                return Ok(());
            }
        }
    }

    /// CreateListener: HTTP on application load balancers, TCP on network
    /// ones, forwarding to a group of the same protocol; one listener per
    /// port on this server.
    pub async fn create_listener(&self, input: NewListener) -> Result<Listener> {
        let balancer = self.load_balancer(&input.load_balancer_arn).await?;
        let port = input
            .port
            .filter(|p| *p > 0)
            .ok_or_else(|| validation("A port between 1 and 65535 must be specified"))?;
        if self.settings().reserved_ports.contains(&port) {
            return Err(validation(format!(
                "Port {port} is reserved on this server (its own port, or runner.reserved_ports)"
            )));
        }
        let allowed = listener_protocol(&balancer.kind);
        let protocol = input.protocol.unwrap_or(allowed);
        if protocol != allowed {
            return Err(validation(format!(
                "Listener protocol '{}' is not supported by {} load balancers: use '{}'",
                protocol.as_str(),
                balancer.kind,
                allowed.as_str()
            )));
        }
        let group = self.target_group(&input.target_group_arn).await?;
        if group.protocol != protocol {
            return Err(BalancerError::InvalidConfiguration(format!(
                "The listener protocol '{}' does not match the protocol '{}' of target group '{}'",
                protocol.as_str(),
                group.protocol.as_str(),
                group.name
            )));
        }
        let listeners = self.listeners().await?;
        if listeners.iter().any(|l| l.port == port) {
            return Err(BalancerError::DuplicateListener(port));
        }
        if listeners.len() >= MAX_LISTENERS {
            return Err(BalancerError::TooMany(
                "TooManyListeners",
                format!("You have reached the limit of {MAX_LISTENERS} listeners"),
            ));
        }
        let resource = balancer
            .arn
            .split_once(":loadbalancer/")
            .map(|(_, r)| r.to_string())
            .unwrap_or_default();
        let arn = self.arn(&format!(
            "listener/{resource}/{}",
            hex::encode(rand::random::<[u8; 8]>())
        ));
        let listener = Listener {
            arn: arn.clone(),
            load_balancer_arn: balancer.arn,
            port,
            protocol,
            target_group_arn: group.arn,
            created_ms: now_ms(),
        };
        self.inner
            .store
            .insert_document(KIND_LISTENER, &arn, &to_doc(&listener)?)
            .await?;
        if !self.claim_port(port, &arn).await? {
            self.remove_listener(&arn).await?;
            return Err(BalancerError::DuplicateListener(port));
        }
        Ok(listener)
    }

    /// DescribeListeners: a load balancer's (which must exist) or those
    /// named (each must exist), by port.
    pub async fn describe_listeners(
        &self,
        load_balancer_arn: Option<&str>,
        arns: &[String],
    ) -> Result<Vec<Listener>> {
        let mut listeners = self.listeners().await?;
        listeners.sort_by_key(|l| l.port);
        match (load_balancer_arn, arns.is_empty()) {
            (Some(_), false) => Err(validation(
                "Only one of LoadBalancerArn and ListenerArns may be specified",
            )),
            (None, true) => Err(validation(
                "You must specify either a load balancer ARN or listener ARNs",
            )),
            (Some(lb), true) => {
                self.load_balancer(lb).await?;
                listeners.retain(|l| l.load_balancer_arn == lb);
                Ok(listeners)
            }
            (None, false) => {
                listeners.retain(|l| arns.contains(&l.arn));
                if listeners.len() < arns.len() {
                    return Err(BalancerError::ListenerNotFound);
                }
                Ok(listeners)
            }
        }
    }

    /// DeleteListener: the listener, then its port's claim.
    pub async fn delete_listener(&self, arn: &str) -> Result<()> {
        let listener = self.listener(arn).await?;
        self.remove_listener(arn).await?;
        let key = listener.port.to_string();
        if let Some(stored) = self.inner.store.document(KIND_LISTENER_PORT, &key).await? {
            let holder: String = serde_json::from_str(&stored.doc).map_err(corrupt)?;
            if holder == arn {
                // Lost only to a creator that found the claim stale anyway.
                self.inner
                    .store
                    .delete_document(KIND_LISTENER_PORT, &key, stored.version)
                    .await?;
            }
        }
        Ok(())
    }

    async fn remove_listener(&self, arn: &str) -> Result<()> {
        loop {
            let Some(stored) = self.inner.store.document(KIND_LISTENER, arn).await? else {
                return Err(BalancerError::ListenerNotFound);
            };
            if self
                .inner
                .store
                .delete_document(KIND_LISTENER, arn, stored.version)
                .await?
            {
                return Ok(());
            }
        }
    }

    /// Claims `port` for listener `arn`; false when another listener holds it.
    async fn claim_port(&self, port: u16, arn: &str) -> Result<bool> {
        let key = port.to_string();
        let doc = to_doc(&arn)?;
        loop {
            if self
                .inner
                .store
                .insert_document(KIND_LISTENER_PORT, &key, &doc)
                .await?
            {
                return Ok(true);
            }
            let Some(stored) = self.inner.store.document(KIND_LISTENER_PORT, &key).await? else {
                continue;
            };
            let holder: String = serde_json::from_str(&stored.doc).map_err(corrupt)?;
            if holder == arn {
                return Ok(true);
            }
            if self
                .inner
                .store
                .document(KIND_LISTENER, &holder)
                .await?
                .is_some()
            {
                return Ok(false);
            }
            if self
                .inner
                .store
                .save_document(KIND_LISTENER_PORT, &key, stored.version, &doc)
                .await?
            {
                return Ok(true);
            }
        }
    }
}
