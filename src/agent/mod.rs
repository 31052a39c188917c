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
use crate::runner::protocol::{AgentFrame, HEARTBEAT, ServerFrame};
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

/// Commands carried out at once; more wait (a pull may take minutes).
const CONCURRENT_COMMANDS: usize = 16;
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
        registry_host: server.host().to_string(),
    });
    let mut backoff = BACKOFF_FIRST;
    loop {
        let started = tokio::time::Instant::now();
        let ended = match server.connect(&settings.cluster, &arn).await {
            Ok(Channel::Plain(ws)) => serve(*ws, &executor, &stop).await,
            Ok(Channel::Tls(ws)) => serve(*ws, &executor, &stop).await,
            Err(e @ AgentError::Refused { .. }) => return Err(e),
            Err(e) => Err(e.to_string()),
        };
        match ended {
            Ok(()) => return Ok(()),
            Err(why) => tracing::warn!(reason = %why, "agent: channel lost; reconnecting"),
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

/// Serves one channel: `Ok` when stopped, `Err(why)` when it was lost.
async fn serve<S>(
    ws: WebSocketStream<S>,
    executor: &Arc<Executor>,
    stop: &CancellationToken,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut frames) = ws.split();
    let (replies, mut outbox) = mpsc::channel::<AgentFrame>(256);
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_COMMANDS));
    let mut installation: Option<Arc<str>> = None;
    let silence = HEARTBEAT * 3;
    let mut deadline = tokio::time::Instant::now() + silence;
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                return Ok(());
            }
            () = tokio::time::sleep_until(deadline) => return Err("the server fell silent".into()),
            reply = outbox.recv() => {
                let Some(message) = reply.as_ref().and_then(frame) else { continue };
                sink.send(message).await.map_err(|e| e.to_string())?;
            }
            message = frames.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => return Err("the server closed the channel".into()),
                    Some(Ok(_)) => return Err("unexpected binary frame".into()),
                    Some(Err(e)) => return Err(e.to_string()),
                };
                deadline = tokio::time::Instant::now() + silence;
                let parsed: ServerFrame = serde_json::from_str(&text).map_err(|e| format!("unreadable frame: {e}"))?;
                match parsed {
                    ServerFrame::Hello { installation: label, container_instance_arn, .. } => {
                        tracing::info!(container_instance = %container_instance_arn, "agent: connected");
                        installation = Some(label.into());
                    }
                    ServerFrame::Heartbeat { sent_at_ms } => {
                        if let Some(message) = frame(&AgentFrame::HeartbeatAck { sent_at_ms }) {
                            sink.send(message).await.map_err(|e| e.to_string())?;
                        }
                    }
                    ServerFrame::Command { id, command } => {
                        let Some(label) = installation.clone() else {
                            return Err("a command before the server's hello".into());
                        };
                        let executor = executor.clone();
                        let replies = replies.clone();
                        let slots = slots.clone();
                        tokio::spawn(async move {
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
