//! Webhook notifications of pushes, pulls and deletes, in Distribution's
//! envelope (`application/vnd.docker.distribution.events.v1+json`). Requests
//! only enqueue (never wait; a full queue drops and counts); one task per
//! endpoint delivers in batches and retries with backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::metrics;

pub const MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";
const BATCH: usize = 100;
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// One webhook receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    /// Extra request headers, e.g. `Authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Which actions to send: `push`, `pull`, `delete`; empty means all.
    #[serde(default)]
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    pub endpoints: Vec<Endpoint>,
    /// Events waiting per endpoint before new ones are dropped.
    pub queue_size: usize,
    /// Delivery attempts of a batch before it is dropped.
    pub max_attempts: u32,
    pub timeout_seconds: u64,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            queue_size: 10_000,
            max_attempts: 10,
            timeout_seconds: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Push,
    Pull,
    Delete,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Delete => "delete",
        }
    }
}

/// What an event is about; handlers attach these to their responses.
#[derive(Debug, Clone)]
pub struct Notice {
    pub action: Action,
    pub repository: String,
    pub media_type: Option<String>,
    pub digest: Option<String>,
    pub size: Option<u64>,
    pub tag: Option<String>,
}

/// Response extension carrying a handler's notices to the dispatcher.
#[derive(Debug, Clone, Default)]
pub struct Notices(pub Vec<Notice>);

/// Who asked, for the envelope.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub request_id: String,
    pub addr: String,
    pub host: String,
    pub method: String,
    pub user_agent: String,
    pub actor: String,
}

impl Origin {
    /// The origin of an HTTP request, as the envelope reports it.
    pub fn of_request(
        request_id: Option<String>,
        headers: &axum::http::HeaderMap,
        method: &axum::http::Method,
        addr: std::net::IpAddr,
        actor: String,
    ) -> Origin {
        let header = |name: axum::http::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        Origin {
            request_id: request_id.unwrap_or_default(),
            addr: addr.to_string(),
            host: header(axum::http::header::HOST),
            method: method.to_string(),
            user_agent: header(axum::http::header::USER_AGENT),
            actor,
        }
    }
}

struct Route {
    actions: Vec<Action>,
    queue: mpsc::Sender<Value>,
}

/// The sending half, shared by every request; cheap to clone. It also
/// records manifest pushes and deletes in the audit log: every path that
/// pushes or deletes (`/v2/`, ECR, the console) reports here, so this is
/// the one place they are recorded.
#[derive(Clone, Default)]
pub struct Notifier {
    routes: std::sync::Arc<Vec<Route>>,
    // Shared: a notifier is cloned into every request's state.
    source: std::sync::Arc<str>,
    audit: crate::audit::Audit,
}

/// The delivering half of one endpoint, run by the server beside the HTTP loop.
#[derive(Debug)]
pub struct Delivery {
    endpoint: Endpoint,
    queue: mpsc::Receiver<Value>,
    client: reqwest::Client,
    max_attempts: u32,
}

impl Notifier {
    /// A notifier and the deliveries that must run for its events to go out.
    pub fn new(config: &NotificationsConfig, source: String) -> (Notifier, Vec<Delivery>) {
        let mut routes = Vec::new();
        let source = std::sync::Arc::<str>::from(source);
        if config.endpoints.is_empty() {
            return (
                Notifier {
                    routes: Default::default(),
                    source,
                    audit: Default::default(),
                },
                Vec::new(),
            );
        }
        // reqwest brings no TLS provider of its own; ring is the process's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds))
            .build()
            .unwrap_or_default();
        let mut deliveries = Vec::new();
        for endpoint in &config.endpoints {
            let (tx, rx) = mpsc::channel(config.queue_size.max(1));
            let actions = [Action::Push, Action::Pull, Action::Delete]
                .into_iter()
                .filter(|a| {
                    endpoint.actions.is_empty() || endpoint.actions.iter().any(|x| x == a.as_str())
                })
                .collect();
            routes.push(Route { actions, queue: tx });
            deliveries.push(Delivery {
                endpoint: endpoint.clone(),
                queue: rx,
                client: client.clone(),
                max_attempts: config.max_attempts.max(1),
            });
        }
        let notifier = Notifier {
            routes: std::sync::Arc::new(routes),
            source,
            audit: Default::default(),
        };
        (notifier, deliveries)
    }

    /// Records requests' manifest pushes and deletes in `audit` too.
    pub fn with_audit(mut self, audit: crate::audit::Audit) -> Self {
        self.audit = audit;
        self
    }

    /// Whether a notice of `action` goes anywhere: pushes and deletes are
    /// audited, pulls reach only the endpoints that ask for them.
    pub fn wants(&self, action: Action) -> bool {
        action != Action::Pull || self.routes.iter().any(|r| r.actions.contains(&action))
    }

    /// Enqueues events for every interested endpoint; never waits. Pushes
    /// and deletes of manifests and tags made by requests are also recorded
    /// in the audit log (a job's deletions are recorded by the job, once
    /// per run, not once per manifest).
    pub fn notify(&self, notices: &[Notice], origin: &Origin) {
        self.audit_requests(notices, origin);
        for notice in notices {
            let mut event = None;
            for route in self
                .routes
                .iter()
                .filter(|r| r.actions.contains(&notice.action))
            {
                let event = event.get_or_insert_with(|| self.envelope_event(notice, origin));
                if route.queue.try_send(event.clone()).is_err() {
                    metrics().notifications_dropped.inc();
                }
            }
        }
    }

    fn audit_requests(&self, notices: &[Notice], origin: &Origin) {
        if origin.method.is_empty() {
            return;
        }
        for n in notices {
            let action = match n.action {
                Action::Push => "push",
                Action::Delete => "delete",
                Action::Pull => continue,
            };
            // Blobs come and go with their manifests; only these are recorded.
            if n.media_type.as_deref() == Some("application/octet-stream") {
                continue;
            }
            let target = n.tag.as_deref().or(n.digest.as_deref()).unwrap_or_default();
            let mut detail = format!("client={}", origin.addr);
            if n.tag.is_some()
                && let Some(d) = &n.digest
            {
                detail.push_str(&format!(" digest={d}"));
            }
            if let Some(size) = n.size {
                detail.push_str(&format!(" size={size}"));
            }
            self.audit
                .record_now(&origin.actor, action, &n.repository, target, &detail);
        }
    }

    /// Deletions made by the registry's own jobs (lifecycle expiry, garbage
    /// collection): no request, the job's name as actor.
    pub fn notify_job(&self, job: &str, notices: &[Notice]) {
        let origin = Origin {
            actor: job.to_string(),
            ..Default::default()
        };
        self.notify(notices, &origin);
    }

    fn envelope_event(&self, n: &Notice, origin: &Origin) -> Value {
        let mut target = json!({ "repository": n.repository });
        if let Some(m) = &n.media_type {
            target["mediaType"] = m.clone().into();
        }
        if let Some(d) = &n.digest {
            target["digest"] = d.clone().into();
        }
        if let Some(s) = n.size {
            target["size"] = s.into();
            target["length"] = s.into();
        }
        if let Some(t) = &n.tag {
            target["tag"] = t.clone().into();
        }
        let timestamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "timestamp": timestamp,
            "action": n.action.as_str(),
            "target": target,
            "request": {
                "id": origin.request_id,
                "addr": origin.addr,
                "host": origin.host,
                "method": origin.method,
                "useragent": origin.user_agent,
            },
            "actor": { "name": origin.actor },
            "source": { "addr": self.source },
        })
    }
}

impl Delivery {
    /// Sends batches until `stop`; a batch is retried with backoff, then dropped.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let first = tokio::select! {
                () = stop.cancelled() => return,
                event = self.queue.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
            };
            let mut events = vec![first];
            while events.len() < BATCH {
                match self.queue.try_recv() {
                    Ok(event) => events.push(event),
                    Err(_) => break,
                }
            }
            let body = json!({ "events": events });
            let mut wait = FIRST_RETRY;
            for attempt in 1..=self.max_attempts {
                let sent = tokio::select! {
                    () = stop.cancelled() => return,
                    sent = self.send(&body) => sent,
                };
                match sent {
                    Ok(()) => {
                        metrics().notifications_sent.inc_by(events.len() as u64);
                        break;
                    }
                    Err(e) if attempt == self.max_attempts => {
                        metrics().notifications_failed.inc_by(events.len() as u64);
                        tracing::warn!(endpoint = self.endpoint.name, error = %e, events = events.len(), "notifications dropped after {attempt} attempts");
                    }
                    Err(e) => {
                        tracing::debug!(endpoint = self.endpoint.name, error = %e, attempt, "notification delivery failed; retrying");
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                        wait = (wait * 2).min(LAST_RETRY);
                    }
                }
            }
        }
    }

    async fn send(&self, body: &Value) -> Result<(), String> {
        let mut request = self
            .client
            .post(&self.endpoint.url)
            .header(reqwest::header::CONTENT_TYPE, MEDIA_TYPE)
            .body(body.to_string());
        for (name, value) in &self.endpoint.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("endpoint answered {}", response.status()))
        }
    }
}
