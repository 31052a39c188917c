//! The agent channel's messages (README "Agents"): what `wharf serve` and
//! `wharf agent` say to each other over one WebSocket per container instance,
//! as JSON text frames. Pure types; the server side is `remote`, the agent
//! side `wharf agent` (`src/agent/`).
//!
//! The shape follows ECS's ACS channel (reference §1): the server pushes
//! (`Hello`, `Heartbeat`, `Command`), the agent answers every command with a
//! `Reply` carrying its id (the acknowledgement), acknowledges heartbeats,
//! and reports on its own when a container of this installation changes
//! (`Changed`), so the server looks at once instead of at its next pass.
//! Unlike ECS, the server keeps the task state machine: a command is one
//! engine step (pull, create, start, inspect, ...), each idempotent, so a
//! step repeated after a lost reply or a reconnect does no harm.

use serde::{Deserialize, Serialize};

use super::engine::{ContainerSpec, ContainerStatus, EngineError, EngineInfo, Listed, Usage};

/// The channel's path on the server; the upgrade request is SigV4-signed for
/// the `ecs` service, with `cluster` and `containerInstance` in the query.
pub const CHANNEL_PATH: &str = "/agent/v1/channel";

/// The version of these messages; a server refuses agents of another.
pub const PROTOCOL_VERSION: u32 = 1;

/// The server sends a heartbeat this often; the agent answers each.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// The most a log reply carries (the newest bytes of the tail asked for).
pub const MAX_LOG_BYTES: usize = 1024 * 1024;

/// The largest frame either side accepts.
pub const MAX_FRAME_BYTES: usize = 2 * MAX_LOG_BYTES;

/// Server to agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerFrame {
    /// First frame: who the agent is to the server, and the label the
    /// agent's containers carry (the only ones it may touch).
    #[serde(rename_all = "camelCase")]
    Hello {
        container_instance_arn: String,
        installation: String,
        heartbeat_seconds: u64,
    },
    /// Sent every `heartbeat_seconds`; an agent that hears nothing for three
    /// of them reconnects.
    #[serde(rename_all = "camelCase")]
    Heartbeat { sent_at_ms: i64 },
    /// One engine step; answered by a `Reply` with the same `id`.
    Command { id: u64, command: Command },
}

/// One engine step on the agent's host. Images are named without a host
/// (`repo@sha256:...`): the agent pulls them from the server it is connected
/// to, and from nowhere else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Command {
    Ping,
    Info,
    /// `token`: a short-lived pull-only token for the image's repository.
    Pull {
        image: String,
        token: Option<String>,
    },
    /// `spec.image` names the image as `Pull` does.
    Create {
        spec: Box<ContainerSpec>,
    },
    Start {
        id: String,
    },
    #[serde(rename_all = "camelCase")]
    Stop {
        id: String,
        timeout_seconds: i32,
    },
    Inspect {
        id: String,
    },
    List {
        label: String,
        value: String,
    },
    Logs {
        id: String,
        tail: Option<usize>,
    },
    Remove {
        id: String,
    },
    /// A running container's resource use (service auto scaling's samples).
    Stats {
        id: String,
    },
}

/// Agent to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AgentFrame {
    #[serde(rename_all = "camelCase")]
    HeartbeatAck { sent_at_ms: i64 },
    /// The outcome of command `id`.
    Reply { id: u64, outcome: Outcome },
    /// A container of task `task` started, stopped, died or changed health.
    Changed { task: String },
}

/// What a command came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Outcome {
    Done,
    Info {
        info: EngineInfo,
    },
    Created {
        id: String,
    },
    Inspected {
        status: Option<ContainerStatus>,
    },
    Listed {
        containers: Vec<Listed>,
    },
    /// `None`: no such container of this installation, or it is not running.
    Stats {
        usage: Option<Usage>,
    },
    /// Base64 of the log bytes.
    Logs {
        data: String,
    },
    /// The engine refused the step (`EngineError::Failed`).
    Failed {
        message: String,
    },
    /// The agent's engine could not be reached (`EngineError::Unavailable`).
    Unavailable {
        message: String,
    },
}

impl Outcome {
    /// The outcome of a failed step.
    pub fn of_error(e: &EngineError) -> Outcome {
        match e {
            EngineError::Unavailable(m) => Outcome::Unavailable { message: m.clone() },
            EngineError::Failed(m) => Outcome::Failed { message: m.clone() },
        }
    }

    /// The error an outcome reports, if it is one.
    pub fn error(&self) -> Option<EngineError> {
        match self {
            Outcome::Failed { message } => Some(EngineError::Failed(message.clone())),
            Outcome::Unavailable { message } => Some(EngineError::Unavailable(message.clone())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_their_wire_shape() {
        let frame = ServerFrame::Command {
            id: 7,
            command: Command::Stop {
                id: "abc".into(),
                timeout_seconds: 30,
            },
        };
        let text = serde_json::to_string(&frame).unwrap();
        assert_eq!(
            text,
            r#"{"type":"command","id":7,"command":{"op":"stop","id":"abc","timeoutSeconds":30}}"#
        );
        assert_eq!(serde_json::from_str::<ServerFrame>(&text).unwrap(), frame);
        let reply: AgentFrame =
            serde_json::from_str(r#"{"type":"reply","id":7,"outcome":{"kind":"done"}}"#).unwrap();
        assert_eq!(
            reply,
            AgentFrame::Reply {
                id: 7,
                outcome: Outcome::Done
            }
        );
    }

    #[test]
    fn failures_keep_their_kind() {
        let unavailable = Outcome::of_error(&EngineError::Unavailable("gone".into()));
        assert!(matches!(
            unavailable.error(),
            Some(EngineError::Unavailable(m)) if m == "gone"
        ));
        assert!(matches!(
            Outcome::of_error(&EngineError::Failed("no".into())).error(),
            Some(EngineError::Failed(_))
        ));
        assert!(Outcome::Done.error().is_none());
    }

    #[test]
    fn stats_have_their_wire_shape() {
        let command = Command::Stats { id: "abc".into() };
        assert_eq!(
            serde_json::to_string(&command).unwrap(),
            r#"{"op":"stats","id":"abc"}"#
        );
        let outcome = Outcome::Stats {
            usage: Some(Usage {
                cpu_ns: 5,
                memory_bytes: 6,
                at_ms: 7,
            }),
        };
        let text = serde_json::to_string(&outcome).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"stats","usage":{"cpuNs":5,"memoryBytes":6,"atMs":7}}"#
        );
        assert_eq!(serde_json::from_str::<Outcome>(&text).unwrap(), outcome);
    }
}
