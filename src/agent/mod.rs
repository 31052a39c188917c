//! `wharf agent`: makes this host a container instance of a Wharf cluster
//! (README "Agents"). It registers the host with RegisterContainerInstance
//! (remembering its ARN in the state directory, so a restarted agent is the
//! same instance), then keeps one WebSocket to the server open
//! (`runner::protocol`), reconnecting with backoff, and carries out the
//! server's engine steps on the local Docker Engine (`executor`).

mod client;
mod executor;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::runner::engine::{ContainerEngine, DockerEngine, EngineInfo};
use crate::runner::protocol::{AgentFrame, HEARTBEAT, Outcome, ServerFrame};
pub use client::Server;
use executor::Executor;

/// How `wharf agent` was asked to run.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The server's URL, `http://host:port` or `https://...`.
    pub server: String,
    pub cluster: String,
    /// `unix:///var/run/docker.sock`; empty: `DOCKER_HOST`, else the default.
    pub docker_host: String,
    /// Custom and built-in (`ecs.availability-zone`, ...) attributes.
    pub attributes: Vec<(String, String)>,
    /// CPU units and MiB to register instead of the engine's.
    pub cpu: Option<u32>,
    pub memory_mib: Option<u32>,
    /// Host TCP ports no task may take.
    pub reserved_ports: Vec<u16>,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The region the server signs for (its `ecr.region`).
    pub region: String,
    /// Where the agent remembers which instance it is.
    pub state_dir: PathBuf,
    /// CA certificates (PEM) for an `https` server; else the system's.
    pub ca_file: Option<PathBuf>,
    /// Whether tasks may use this host's network namespace.
    pub allow_host_network: bool,
    /// Capabilities a container may add back on this host.
    pub allowed_capabilities: Vec<String>,
    /// Where load balancers reach this host's published ports; `None`: the
    /// address the server sees the agent connect from.
    pub advertise_address: Option<std::net::IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Config(String),
    /// The server refused a call: its ECS error name and message.
    #[error("the server refused {operation}: {name}: {message}")]
    Refused {
        operation: String,
        name: String,
        message: String,
    },
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
    #[error("state directory: {0}")]
    State(String),
}

impl AgentError {
    /// Whether trying again cannot help: the key or its rights are refused,
    /// or the instance is deregistered. Anything else (a replica being
    /// upgraded, a proxy's 4xx, a clock off) is retried.
    fn is_terminal(&self) -> bool {
        match self {
            AgentError::Refused { name, message, .. } => {
                matches!(
                    name.as_str(),
                    "AccessDeniedException" | "UnrecognizedClientException"
                ) || message.contains("cannot connect")
            }
            AgentError::Config(_) | AgentError::State(_) => true,
            AgentError::Unreachable(_) => false,
        }
    }
}

/// Pulls carried out at once (a pull may take minutes), and other steps:
/// separate, so pulls never hold up the inspections and stops that keep
/// tasks' states current.
const CONCURRENT_PULLS: usize = 4;
const CONCURRENT_STEPS: usize = 16;
/// Commands accepted and not yet answered; beyond, a command is answered
/// `unavailable` at once (the server retries later).
const MAX_QUEUED: usize = 256;
/// Connecting (TCP, TLS and the upgrade) gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Reconnection backoff: from 250 ms, ×1.5 each time, up to 30 s.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Runs the agent until `stop`.
pub async fn run(settings: AgentSettings, stop: CancellationToken) -> Result<(), AgentError> {
    let server = Server::new(&settings)?;
    let engine = DockerEngine::connect(&settings.docker_host)
        .map_err(|e| AgentError::Config(e.to_string()))?;
    let info = loop {
        match engine.info().await {
            Ok(info) => break info,
            Err(e) => {
                tracing::warn!(error = %e, "agent: the Docker Engine does not answer; waiting");
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    };
    let arn = loop {
        match server.register(&settings, &info).await {
            Ok(arn) => break arn,
            Err(e @ AgentError::Unreachable(_)) => {
                tracing::warn!(error = %e, "agent: cannot register yet; retrying");
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
            Err(e) => return Err(e),
        }
    };
    tracing::info!(container_instance = %arn, cluster = %settings.cluster, "agent: registered");
    let executor = Arc::new(Executor {
        engine,
        registry_host: server.registry_host(),
        allow_host_network: settings.allow_host_network,
        allowed_capabilities: settings.allowed_capabilities.clone(),
    });
    let mut backoff = BACKOFF_FIRST;
    loop {
        let started = tokio::time::Instant::now();
        let connected = tokio::time::timeout(
            CONNECT_TIMEOUT,
            server.connect(&settings.cluster, &arn, settings.advertise_address),
        )
        .await
        .unwrap_or_else(|_| Err(AgentError::Unreachable("connecting timed out".into())));
        let session = Session {
            executor: &executor,
            stop: &stop,
            arn: &arn,
            server: &server,
        };
        let ended = match connected {
            Ok(Channel::Plain(ws)) => session.serve(*ws).await,
            Ok(Channel::Tls(ws)) => session.serve(*ws).await,
            Err(e) if e.is_terminal() => return Err(e),
            Err(e) => Err(Ended::Lost(e.to_string())),
        };
        match ended {
            Ok(()) => return Ok(()),
            Err(Ended::Refused(why)) => return Err(AgentError::Config(why)),
            Err(Ended::Lost(why)) => {
                tracing::warn!(reason = %why, "agent: channel lost; reconnecting")
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = BACKOFF_FIRST;
        }
        let jitter = Duration::from_millis(u64::from(rand::random::<u16>() % 250));
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = backoff.mul_f32(1.5).min(BACKOFF_MAX);
    }
}

/// An open channel, over plain TCP or TLS.
pub enum Channel {
    Plain(Box<WebSocketStream<tokio::net::TcpStream>>),
    Tls(Box<WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>),
}

fn frame(frame: &AgentFrame) -> Option<Message> {
    serde_json::to_string(frame)
        .ok()
        .map(|t| Message::Text(t.into()))
}

/// Why a channel ended other than by `stop`.
enum Ended {
    /// Reconnect.
    Lost(String),
    /// The server is not who it was: stop (an operator must look).
    Refused(String),
}

/// One channel's work.
struct Session<'a> {
    executor: &'a Arc<Executor>,
    stop: &'a CancellationToken,
    arn: &'a str,
    server: &'a Server,
}

impl Session<'_> {
    /// Serves one channel: `Ok` when stopped.
    async fn serve<S>(&self, ws: WebSocketStream<S>) -> Result<(), Ended>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let lost = |e: &dyn std::fmt::Display| Ended::Lost(e.to_string());
        let (mut sink, mut frames) = ws.split();
        let (replies, mut outbox) = mpsc::channel::<AgentFrame>(256);
        let pulls = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_PULLS));
        let steps = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_STEPS));
        let queued = Arc::new(tokio::sync::Semaphore::new(MAX_QUEUED));
        let mut installation: Option<Arc<str>> = None;
        let silence = HEARTBEAT * 3;
        let mut deadline = tokio::time::Instant::now() + silence;
        loop {
            tokio::select! {
                () = self.stop.cancelled() => {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ok(());
                }
                () = tokio::time::sleep_until(deadline) => return Err(Ended::Lost("the server fell silent".into())),
                reply = outbox.recv() => {
                    let Some(message) = reply.as_ref().and_then(frame) else { continue };
                    sink.send(message).await.map_err(|e| lost(&e))?;
                }
                message = frames.next() => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_))) | None => return Err(Ended::Lost("the server closed the channel".into())),
                        Some(Ok(_)) => return Err(Ended::Lost("unexpected binary frame".into())),
                        Some(Err(e)) => return Err(lost(&e)),
                    };
                    deadline = tokio::time::Instant::now() + silence;
                    let parsed: ServerFrame = serde_json::from_str(&text).map_err(|e| lost(&format!("unreadable frame: {e}")))?;
                    match parsed {
                        ServerFrame::Hello { installation: label, container_instance_arn, .. } => {
                            if container_instance_arn != self.arn {
                                return Err(Ended::Refused(format!(
                                    "the server greeted {container_instance_arn}, not this host's {}", self.arn
                                )));
                            }
                            // The first label the server named is this host's for good:
                            // a server cannot later claim another installation's containers.
                            self.server.pin_installation(&label).map_err(|e| Ended::Refused(e.to_string()))?;
                            tracing::info!(container_instance = %container_instance_arn, "agent: connected");
                            if installation.is_none() {
                                tokio::spawn(report_changes(self.executor.clone(), label.clone(), replies.clone()));
                            }
                            installation = Some(label.into());
                        }
                        ServerFrame::Heartbeat { sent_at_ms } => {
                            if let Some(message) = frame(&AgentFrame::HeartbeatAck { sent_at_ms }) {
                                sink.send(message).await.map_err(|e| lost(&e))?;
                            }
                        }
                        ServerFrame::Command { id, command } => {
                            let Some(label) = installation.clone() else {
                                return Err(Ended::Lost("a command before the server's hello".into()));
                            };
                            let Ok(ticket) = queued.clone().try_acquire_owned() else {
                                let busy = Outcome::Unavailable { message: "the agent is busy".into() };
                                if let Some(message) = frame(&AgentFrame::Reply { id, outcome: busy }) {
                                    sink.send(message).await.map_err(|e| lost(&e))?;
                                }
                                continue;
                            };
                            let slots = if matches!(command, crate::runner::protocol::Command::Pull { .. }) {
                                pulls.clone()
                            } else {
                                steps.clone()
                            };
                            let executor = self.executor.clone();
                            let replies = replies.clone();
                            tokio::spawn(async move {
                                let _ticket = ticket;
                                let Ok(_slot) = slots.acquire_owned().await else { return };
                                let outcome = executor.run(command, &label).await;
                                let _ = replies.send(AgentFrame::Reply { id, outcome }).await;
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Reports the tasks whose containers change on this host (`Changed`), so
/// the server looks at them at once rather than at its next pass; ends with
/// the channel (when `replies` closes). The engine's event stream is
/// followed again after it ends or fails.
async fn report_changes(
    executor: Arc<Executor>,
    installation: String,
    replies: mpsc::Sender<AgentFrame>,
) {
    use crate::runner::engine::LABEL_INSTANCE;
    loop {
        let mut events = executor.engine.task_events(LABEL_INSTANCE, &installation);
        loop {
            tokio::select! {
                () = replies.closed() => return,
                event = events.next() => match event {
                    Some(Ok(task)) => {
                        if replies.send(AgentFrame::Changed { task }).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(_)) | None => break,
                },
            }
        }
        tokio::select! {
            () = replies.closed() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// What this host registers: the engine's CPUs and memory unless the
/// settings say otherwise.
fn resources(settings: &AgentSettings, info: &EngineInfo) -> serde_json::Value {
    let cpu = settings.cpu.unwrap_or(info.cpus.saturating_mul(1024));
    let memory = settings.memory_mib.unwrap_or(info.memory_mib);
    let ports: Vec<String> = settings.reserved_ports.iter().map(u16::to_string).collect();
    serde_json::json!([
        {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
        {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ports},
        {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
    ])
}

/// The attributes this host registers: the built-ins it knows, then the
/// settings' (which may override them, e.g. `ecs.availability-zone`).
fn attributes(settings: &AgentSettings, info: &EngineInfo) -> serde_json::Value {
    let architecture = match info.architecture.as_str() {
        "aarch64" | "arm64" => "arm64",
        "x86_64" | "amd64" => "x86_64",
        other => other,
    };
    let mut all: std::collections::BTreeMap<String, String> = [
        ("ecs.os-type", "linux"),
        ("ecs.os-family", "LINUX"),
        ("ecs.cpu-architecture", architecture),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (name, value) in &settings.attributes {
        all.insert(name.clone(), value.clone());
    }
    all.into_iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect()
}
