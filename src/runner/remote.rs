//! The server's end of agent channels: one `Session` per `wharf agent`
//! connected to this process, and `RemoteEngine`, the `ContainerEngine` whose
//! steps are commands over that session (`protocol`). The supervisor drives
//! a remote host's tasks through it exactly as it drives the embedded
//! engine's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::engine::{
    ContainerEngine, ContainerSpec, ContainerStatus, EngineError, EngineInfo, Listed, Usage,
};
use super::images::RegistryHosts;
use super::protocol::{AgentFrame, Command, Outcome, ServerFrame};
use crate::oci::Reference;

/// Frames waiting to be written to one agent's socket.
const OUTBOX: usize = 256;
/// Commands one agent may have unanswered; more wait for a slot.
const MAX_PENDING: usize = 1024;
/// How long an ordinary step may take on the agent's host.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// A stats reading is one quick engine call; a slow agent only loses a sample.
const STATS_TIMEOUT: Duration = Duration::from_secs(10);
/// Pulls: as long as the Docker Engine's own request timeout.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

fn gone() -> EngineError {
    EngineError::Unavailable("the container instance's agent is not connected".into())
}

/// One connected agent.
pub struct Session {
    pub cluster: String,
    pub instance: String,
    /// Tells this connection from the agent's earlier and later ones.
    pub id: String,
    outbox: mpsc::Sender<ServerFrame>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    slots: tokio::sync::Semaphore,
    next_id: AtomicU64,
    /// The agent reported a change: its tasks are looked at now.
    pub changed: Notify,
    pub closed: CancellationToken,
    heard_ms: std::sync::atomic::AtomicI64,
}

/// A call's claim on its reply, released when the call ends.
struct Waiting<'a> {
    session: &'a Session,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.session.lock().remove(&self.id);
    }
}

impl Session {
    /// A session and the frames it will send.
    pub fn new(cluster: &str, instance: &str) -> (Arc<Session>, mpsc::Receiver<ServerFrame>) {
        let (outbox, frames) = mpsc::channel(OUTBOX);
        let session = Session {
            cluster: cluster.to_string(),
            instance: instance.to_string(),
            id: uuid::Uuid::new_v4().simple().to_string(),
            outbox,
            pending: Mutex::default(),
            slots: tokio::sync::Semaphore::new(MAX_PENDING),
            next_id: AtomicU64::new(1),
            changed: Notify::new(),
            closed: CancellationToken::new(),
            heard_ms: std::sync::atomic::AtomicI64::new(crate::registry::now_ms()),
        };
        (Arc::new(session), frames)
    }

    /// Sends `command` and waits for its reply, at most `timeout`. A lost
    /// channel or no reply in time is `Unavailable`: the supervisor retries
    /// later, and every step is idempotent.
    async fn call(&self, command: Command, timeout: Duration) -> Result<Outcome, EngineError> {
        let _slot = tokio::select! {
            slot = self.slots.acquire() => slot.map_err(|_| gone())?,
            () = self.closed.cancelled() => return Err(gone()),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        // However the call ends (an answer, a timeout, its caller gone), the
        // slot for its reply goes.
        let _waiting = Waiting { session: self, id };
        let exchange = async {
            self.outbox
                .send(ServerFrame::Command { id, command })
                .await
                .map_err(|_| gone())?;
            rx.await.map_err(|_| gone())
        };
        // A full outbox (an agent that stopped reading) counts against the
        // timeout too, and a closed session ends the wait.
        let outcome = tokio::select! {
            answered = tokio::time::timeout(timeout, exchange) => answered.unwrap_or_else(|_| {
                Err(EngineError::Unavailable(
                    "the container instance's agent did not answer in time".into(),
                ))
            }),
            () = self.closed.cancelled() => Err(gone()),
        }?;
        match outcome.error() {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Outcome>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the agent last sent a frame (ms since the Unix epoch).
    pub fn heard_ms(&self) -> i64 {
        self.heard_ms.load(Ordering::Relaxed)
    }

    /// Takes a frame from the agent. Replies to commands nobody waits for
    /// (timed out, or from before a reconnect) are dropped.
    pub fn receive(&self, frame: AgentFrame) {
        self.heard_ms
            .store(crate::registry::now_ms(), Ordering::Relaxed);
        match frame {
            AgentFrame::Reply { id, outcome } => {
                if let Some(waiting) = self.lock().remove(&id) {
                    let _ = waiting.send(outcome);
                }
            }
            AgentFrame::Changed { .. } => self.changed.notify_one(),
            AgentFrame::HeartbeatAck { .. } => {}
        }
    }

    /// Ends the session: waiting calls fail, the supervision loop stops.
    pub fn close(&self) {
        self.closed.cancel();
        self.lock().clear();
    }
}

/// The sessions of this process, by (cluster, instance id).
#[derive(Default)]
pub struct Sessions {
    by_instance: Mutex<HashMap<(String, String), Arc<Session>>>,
    /// Signatures of channel upgrades already used, with when they were.
    used: Mutex<HashMap<String, std::time::Instant>>,
}

/// A signature is valid for 15 minutes either side of its date; one used
/// since then is a replay.
const SIGNATURE_LIFE: Duration = Duration::from_secs(30 * 60);
/// Upgrades remembered at most; beyond, new ones are refused until old ones expire.
const MAX_USED: usize = 100_000;

impl Sessions {
    /// Whether `signature` opens a channel for the first time here (then
    /// it is remembered), so a captured upgrade request cannot be replayed.
    pub fn first_use(&self, signature: &str) -> bool {
        let now = std::time::Instant::now();
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.len() >= MAX_USED / 2 {
            used.retain(|_, at| now.duration_since(*at) < SIGNATURE_LIFE);
        }
        if used.len() >= MAX_USED || used.contains_key(signature) {
            return false;
        }
        used.insert(signature.to_string(), now);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Session>>> {
        self.by_instance.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, cluster: &str, instance: &str) -> Option<Arc<Session>> {
        self.lock()
            .get(&(cluster.to_string(), instance.to_string()))
            .filter(|s| !s.closed.is_cancelled())
            .cloned()
    }

    /// Makes `session` its instance's; an earlier one (a connection the
    /// agent gave up on) is closed.
    pub fn insert(&self, session: Arc<Session>) {
        let key = (session.cluster.clone(), session.instance.clone());
        if let Some(old) = self.lock().insert(key, session) {
            old.close();
        }
    }

    /// Forgets `session` unless a newer one took its place.
    pub fn remove(&self, session: &Session) {
        let key = (session.cluster.clone(), session.instance.clone());
        let mut map = self.lock();
        if map.get(&key).is_some_and(|s| s.id == session.id) {
            map.remove(&key);
        }
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }
}

/// A container instance's engine, reached through its agent.
pub struct RemoteEngine {
    session: Arc<Session>,
    hosts: RegistryHosts,
}

impl RemoteEngine {
    pub fn new(session: Arc<Session>, hosts: RegistryHosts) -> RemoteEngine {
        RemoteEngine { session, hosts }
    }

    /// `host/repo@sha256:...` as the agent names it: `repo@sha256:...`.
    /// Only images of this registry pinned to a digest ever reach an agent.
    fn relative(&self, reference: &str) -> Result<String, EngineError> {
        let image = self.hosts.parse(reference).map_err(EngineError::Failed)?;
        match image.reference {
            Reference::Digest(digest) => Ok(format!("{}@{digest}", image.repo)),
            Reference::Tag(_) => Err(EngineError::Failed(format!(
                "{reference}: agents run images pinned to a digest only"
            ))),
        }
    }
}

fn unexpected(outcome: &Outcome) -> EngineError {
    EngineError::Failed(format!("the agent answered out of turn: {outcome:?}"))
}

#[async_trait]
impl ContainerEngine for RemoteEngine {
    async fn ping(&self) -> Result<(), EngineError> {
        self.session
            .call(Command::Ping, STEP_TIMEOUT)
            .await
            .map(drop)
    }

    async fn info(&self) -> Result<EngineInfo, EngineError> {
        match self.session.call(Command::Info, STEP_TIMEOUT).await? {
            Outcome::Info { info } => Ok(info),
            other => Err(unexpected(&other)),
        }
    }

    async fn pull(&self, reference: &str, token: Option<String>) -> Result<(), EngineError> {
        let image = self.relative(reference)?;
        let command = Command::Pull { image, token };
        self.session.call(command, PULL_TIMEOUT).await.map(drop)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let mut spec = spec.clone();
        spec.image = self.relative(&spec.image)?;
        let command = Command::Create {
            spec: Box::new(spec),
        };
        match self.session.call(command, STEP_TIMEOUT).await? {
            Outcome::Created { id } => Ok(id),
            other => Err(unexpected(&other)),
        }
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        let command = Command::Start { id: id.to_string() };
        self.session.call(command, STEP_TIMEOUT).await.map(drop)
    }

    async fn stop(&self, id: &str, timeout_seconds: i32) -> Result<(), EngineError> {
        let command = Command::Stop {
            id: id.to_string(),
            timeout_seconds,
        };
        let wait = STEP_TIMEOUT + Duration::from_secs(u64::try_from(timeout_seconds).unwrap_or(0));
        self.session.call(command, wait).await.map(drop)
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerStatus>, EngineError> {
        let command = Command::Inspect { id: id.to_string() };
        match self.session.call(command, STEP_TIMEOUT).await? {
            Outcome::Inspected { status } => Ok(status),
            other => Err(unexpected(&other)),
        }
    }

    async fn list(&self, label: &str, value: &str) -> Result<Vec<Listed>, EngineError> {
        let command = Command::List {
            label: label.to_string(),
            value: value.to_string(),
        };
        match self.session.call(command, STEP_TIMEOUT).await? {
            Outcome::Listed { containers } => Ok(containers),
            other => Err(unexpected(&other)),
        }
    }

    fn logs(
        &self,
        id: &str,
        tail: Option<usize>,
    ) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let session = self.session.clone();
        let command = Command::Logs {
            id: id.to_string(),
            tail,
        };
        Box::pin(futures::stream::once(async move {
            match session.call(command, STEP_TIMEOUT).await? {
                Outcome::Logs { data } => base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map(Bytes::from)
                    .map_err(|e| EngineError::Failed(format!("agent logs: {e}"))),
                other => Err(unexpected(&other)),
            }
        }))
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let command = Command::Remove { id: id.to_string() };
        self.session.call(command, STEP_TIMEOUT).await.map(drop)
    }

    async fn stats(&self, id: &str) -> Result<Option<Usage>, EngineError> {
        let command = Command::Stats { id: id.to_string() };
        match self.session.call(command, STATS_TIMEOUT).await? {
            Outcome::Stats { usage } => Ok(usage),
            other => Err(unexpected(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent that answers every command with `answer`.
    fn answering(
        mut frames: mpsc::Receiver<ServerFrame>,
        session: Arc<Session>,
        answer: fn(&Command) -> Outcome,
    ) {
        tokio::spawn(async move {
            while let Some(frame) = frames.recv().await {
                if let ServerFrame::Command { id, command } = frame {
                    session.receive(AgentFrame::Reply {
                        id,
                        outcome: answer(&command),
                    });
                }
            }
        });
    }

    fn hosts() -> RegistryHosts {
        RegistryHosts::new("", 5000)
    }

    #[tokio::test]
    async fn commands_are_answered_by_id_and_images_lose_their_host() {
        let (session, frames) = Session::new("default", "i1");
        answering(frames, session.clone(), |command| match command {
            Command::Pull { image, .. } if image.starts_with("app@sha256:") => Outcome::Done,
            Command::Create { spec } => Outcome::Created {
                id: format!("id-of-{}", spec.image),
            },
            _ => Outcome::Failed {
                message: "unexpected".into(),
            },
        });
        let engine = RemoteEngine::new(session, hosts());
        let digest = format!("sha256:{}", "a".repeat(64));
        let reference = format!("localhost:5000/app@{digest}");
        engine.pull(&reference, None).await.unwrap();
        let spec = ContainerSpec {
            image: reference,
            ..Default::default()
        };
        assert_eq!(
            engine.create(&spec).await.unwrap(),
            format!("id-of-app@{digest}")
        );
        // Tags and other registries never reach an agent.
        assert!(
            engine
                .pull("localhost:5000/app:latest", None)
                .await
                .is_err()
        );
        assert!(
            engine
                .pull(&format!("docker.io/library/app@{digest}"), None)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn stats_come_back_from_the_agent() {
        let (session, frames) = Session::new("default", "i1");
        answering(frames, session.clone(), |command| match command {
            Command::Stats { id } if id == "running" => Outcome::Stats {
                usage: Some(Usage {
                    cpu_ns: 42,
                    memory_bytes: 1024,
                    at_ms: 7,
                }),
            },
            Command::Stats { .. } => Outcome::Stats { usage: None },
            _ => Outcome::Done,
        });
        let engine = RemoteEngine::new(session, hosts());
        let usage = engine.stats("running").await.unwrap().unwrap();
        assert_eq!((usage.cpu_ns, usage.memory_bytes), (42, 1024));
        assert_eq!(engine.stats("gone").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_closed_session_is_unavailable_and_refusals_stay_refusals() {
        let (session, frames) = Session::new("default", "i1");
        answering(frames, session.clone(), |_| Outcome::Failed {
            message: "no such container".into(),
        });
        let engine = RemoteEngine::new(session.clone(), hosts());
        assert!(matches!(
            engine.start("x").await,
            Err(EngineError::Failed(m)) if m == "no such container"
        ));
        session.close();
        assert!(matches!(
            engine.start("x").await,
            Err(EngineError::Unavailable(_))
        ));
    }

    #[test]
    fn a_signature_opens_one_channel() {
        let sessions = Sessions::default();
        assert!(sessions.first_use("sig-a"));
        assert!(!sessions.first_use("sig-a"));
        assert!(sessions.first_use("sig-b"));
    }

    #[tokio::test]
    async fn a_full_outbox_does_not_outlive_the_timeout_or_the_session() {
        let (session, _frames) = Session::new("c", "i");
        // Nobody reads: fill the outbox.
        for _ in 0..OUTBOX {
            let _ = session
                .outbox
                .try_send(ServerFrame::Heartbeat { sent_at_ms: 0 });
        }
        let call = session.call(Command::Ping, Duration::from_millis(20));
        assert!(matches!(
            tokio::time::timeout(Duration::from_secs(2), call).await,
            Ok(Err(EngineError::Unavailable(_)))
        ));
        assert!(
            session.lock().is_empty(),
            "the reply slot went with the call"
        );
        let waiting = session.clone();
        let call =
            tokio::spawn(async move { waiting.call(Command::Ping, Duration::from_secs(60)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        session.close();
        assert!(matches!(
            tokio::time::timeout(Duration::from_secs(2), call).await,
            Ok(Ok(Err(EngineError::Unavailable(_))))
        ));
    }

    #[test]
    fn a_newer_session_replaces_and_closes_the_older() {
        let sessions = Sessions::default();
        let (old, _f1) = Session::new("c", "i");
        let (new, _f2) = Session::new("c", "i");
        sessions.insert(old.clone());
        sessions.insert(new.clone());
        assert!(old.closed.is_cancelled());
        // The old connection's end does not take the new one with it.
        sessions.remove(&old);
        assert_eq!(
            sessions.get("c", "i").map(|s| s.id.clone()),
            Some(new.id.clone())
        );
        sessions.remove(&new);
        assert!(sessions.get("c", "i").is_none());
    }
}
