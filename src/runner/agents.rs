//! Container instances run by `wharf agent` (README "Agents"): the server's
//! side of their channels. The replica an agent is connected to supervises
//! that host's tasks through a `RemoteEngine`, with the same supervisor as
//! the embedded engine's; the replica holding the runner's lease (the one
//! scheduler) notices agents whose replica went silent, and hands the
//! service tasks of agents lost for longer than `agent_lost_timeout` to the
//! scheduler, which replaces them elsewhere as it does for a drain.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::engine::{ContainerEngine, LABEL_INSTANCE};
use super::instances::{InstanceRecord, instance_id};
use super::model::TaskRecord;
use super::protocol::{HEARTBEAT, ServerFrame};
use super::remote::{RemoteEngine, Session};
use super::status::InstanceState;
use super::{Result, Runner, RunnerError};
use crate::registry::now_ms;

/// An agent (or the replica it is connected to) silent this long is away.
const SILENT: Duration = Duration::from_secs(30);
/// Containers of unknown tasks are looked for this often.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// An agent's channel while it is open. Dropping it ends the session.
pub struct Attached {
    pub session: Arc<Session>,
    /// What to send the agent, in order (`Hello` first).
    pub frames: mpsc::Receiver<ServerFrame>,
    pub hello: ServerFrame,
    runner: Runner,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let runner = self.runner.clone();
        let session = self.session.clone();
        session.close();
        runner.inner.sessions.remove(&session);
        tokio::spawn(async move {
            if let Err(e) = runner.mark_away(&session).await {
                tracing::warn!(instance = %session.instance, error = %e, "agent: cannot record its departure");
            }
        });
    }
}

/// Whether an instance's agent has been away longer than `timeout` at `now_ms`:
/// its service tasks are then replaced elsewhere. The embedded instance and
/// deregistered ones are judged elsewhere.
pub fn lost(record: &InstanceRecord, now_ms: i64, timeout: Duration) -> bool {
    if record.embedded || record.agent_connected {
        return false;
    }
    let since = record.agent_seen_ms.unwrap_or(record.registered_at_ms);
    now_ms.saturating_sub(since) >= i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
}

/// Whether a connected agent has not been heard of for [`SILENT`]: the
/// replica holding its channel is gone.
fn silent(record: &InstanceRecord, now_ms: i64) -> bool {
    !record.embedded
        && record.agent_connected
        && record
            .agent_seen_ms
            .is_none_or(|seen| now_ms.saturating_sub(seen) >= SILENT.as_millis() as i64)
}

impl Runner {
    /// Opens the channel of the agent of instance `reference` (id or ARN)
    /// in `cluster`: the instance must be registered there and not be
    /// INACTIVE or the embedded one.
    /// `peer`: the address the agent connects from, where load balancers
    /// reach the ports its tasks publish.
    pub async fn attach_agent(
        &self,
        cluster: Option<&str>,
        reference: &str,
        peer: std::net::IpAddr,
    ) -> Result<Attached> {
        let cluster = self.cluster(cluster).await?;
        let not_registered = || {
            RunnerError::InvalidParameter(format!(
                "Container instance {reference} is not registered in this cluster."
            ))
        };
        let id = instance_id(reference).ok_or_else(not_registered)?;
        let (session, frames) = Session::new(&cluster, id);
        let mut refused = None;
        let now = now_ms();
        self.modify_instance(&cluster, id, |record| {
            if record.embedded || record.status == InstanceState::Inactive {
                refused = Some(record.status);
                return Ok(false);
            }
            record.agent_connected = true;
            record.agent_seen_ms = Some(now);
            record.agent_session = Some(session.id.clone());
            record.address = Some(peer.to_string());
            Ok(true)
        })
        .await?
        .ok_or_else(not_registered)?;
        if let Some(status) = refused {
            return Err(RunnerError::InvalidParameter(format!(
                "Container instance {reference} cannot connect: it is {status} or this server's own engine."
            )));
        }
        self.inner.sessions.insert(session.clone());
        tracing::info!(cluster = %cluster, instance = %id, "agent connected");
        let hello = ServerFrame::Hello {
            container_instance_arn: self.container_instance_arn(&cluster, id),
            installation: self.inner.instance.clone(),
            heartbeat_seconds: HEARTBEAT.as_secs(),
        };
        tokio::spawn(self.clone().drive_agent(session.clone()));
        tokio::spawn(self.clone().keep_present(session.clone()));
        self.wake();
        Ok(Attached {
            session,
            frames,
            hello,
            runner: self.clone(),
        })
    }

    /// Records that `session`'s agent left, unless it reconnected meanwhile.
    async fn mark_away(&self, session: &Session) -> Result<()> {
        let now = now_ms();
        self.modify_instance(&session.cluster, &session.instance, |record| {
            if record.agent_session.as_deref() != Some(session.id.as_str()) {
                return Ok(false);
            }
            record.agent_connected = false;
            record.agent_seen_ms = Some(now);
            record.agent_session = None;
            Ok(true)
        })
        .await?;
        tracing::info!(cluster = %session.cluster, instance = %session.instance, "agent disconnected");
        Ok(())
    }

    /// Whether `signature` (of a channel upgrade) is used for the first
    /// time in this process: a captured upgrade request is not replayed.
    pub fn first_channel_use(&self, signature: &str) -> bool {
        self.inner.sessions.first_use(signature)
    }

    /// Records every heartbeat that `session`'s agent is here, for as long
    /// as it sends frames: presence follows the channel, not how long the
    /// supervision passes take.
    async fn keep_present(self, session: Arc<Session>) {
        loop {
            tokio::select! {
                () = session.closed.cancelled() => return,
                () = tokio::time::sleep(HEARTBEAT) => {}
            }
            let heard = now_ms().saturating_sub(session.heard_ms());
            if heard >= SILENT.as_millis() as i64 {
                continue;
            }
            if let Err(e) = self.touch_agent(&session).await {
                tracing::warn!(instance = %session.instance, error = %e, "agent: cannot record it is here");
            }
        }
    }

    /// Supervises the tasks of `session`'s host until the session ends.
    async fn drive_agent(self, session: Arc<Session>) {
        let engine: Arc<dyn ContainerEngine> =
            Arc::new(RemoteEngine::new(session.clone(), self.inner.hosts.clone()));
        let mut swept_at: Option<tokio::time::Instant> = None;
        while !session.closed.is_cancelled() {
            let pass = async {
                let tasks = self.tasks_on(&session.cluster, &session.instance).await?;
                self.supervise(&engine, &tasks, false).await?;
                if swept_at.is_none_or(|at| at.elapsed() >= SWEEP_INTERVAL) {
                    swept_at = Some(tokio::time::Instant::now());
                    self.sweep(engine.as_ref(), &session).await?;
                }
                Ok::<(), RunnerError>(())
            };
            match pass.await {
                Ok(()) | Err(RunnerError::Engine(super::engine::EngineError::Unavailable(_))) => {}
                Err(e) => {
                    tracing::warn!(instance = %session.instance, error = %e, "agent: supervising its tasks");
                }
            }
            tokio::select! {
                () = session.closed.cancelled() => {}
                () = session.changed.notified() => {}
                () = self.inner.agents_wake.notified() => {}
                () = tokio::time::sleep(self.inner.settings.poll_interval) => {}
            }
        }
    }

    /// Records that the agent of `session` is still here.
    async fn touch_agent(&self, session: &Session) -> Result<()> {
        let now = now_ms();
        self.modify_instance(&session.cluster, &session.instance, |record| {
            if record.agent_session.as_deref() != Some(session.id.as_str()) {
                // Another connection took over; this one is on its way out.
                session.close();
                return Ok(false);
            }
            record.agent_connected = true;
            record.agent_seen_ms = Some(now);
            Ok(true)
        })
        .await?;
        Ok(())
    }

    /// The live tasks placed on instance `id` of `cluster`.
    pub(super) async fn tasks_on(&self, cluster: &str, id: &str) -> Result<Vec<TaskRecord>> {
        Ok(self
            .live_tasks(Some(cluster))
            .await?
            .into_iter()
            .filter(|t| {
                t.task
                    .container_instance_arn
                    .as_deref()
                    .and_then(instance_id)
                    == Some(id)
            })
            .collect())
    }

    /// Removes containers of this installation on the agent's host whose
    /// task the store does not know (pruned, or never recorded): each is
    /// checked against the store once more right before it goes.
    async fn sweep(&self, engine: &dyn ContainerEngine, session: &Session) -> Result<()> {
        let listed = engine.list(LABEL_INSTANCE, &self.inner.instance).await?;
        for container in listed {
            if self.task_record(&container.task).await?.is_some() {
                continue;
            }
            tracing::info!(
                instance = %session.instance,
                task = %container.task,
                container = %container.container,
                "agent: removing a container of a task this server does not know"
            );
            if container.running {
                engine.stop(&container.id, 10).await?;
            }
            engine.remove(&container.id).await?;
        }
        Ok(())
    }

    /// The lease holder's pass over registered instances: an agent whose
    /// replica went silent is marked disconnected.
    pub(super) async fn check_agents(&self) -> Result<()> {
        let now = now_ms();
        for stored in self.inner.store.instances(None).await? {
            let record: InstanceRecord =
                serde_json::from_str(&stored.doc).map_err(super::corrupt)?;
            if !silent(&record, now) {
                continue;
            }
            self.modify_instance(&record.cluster, &record.id, |r| {
                if !silent(r, now) {
                    return Ok(false);
                }
                r.agent_connected = false;
                r.agent_session = None;
                Ok(true)
            })
            .await?;
            tracing::warn!(cluster = %record.cluster, instance = %record.id, "agent: not heard from; marked disconnected");
        }
        Ok(())
    }

    /// The id of the container instance `task` runs on (records older than
    /// placement ran on the embedded one); `None` for an ARN that names none.
    pub(super) fn instance_of(&self, task: &TaskRecord) -> Option<String> {
        match task.task.container_instance_arn.as_deref() {
            Some(arn) => instance_id(arn).map(String::from),
            None => Some(self.embedded_id(&task.cluster)),
        }
    }

    /// Whether `task` runs on an embedded instance (records older than
    /// placement do).
    pub(super) fn on_embedded(&self, task: &TaskRecord) -> bool {
        match task
            .task
            .container_instance_arn
            .as_deref()
            .and_then(instance_id)
        {
            None => true,
            Some(id) => id == self.embedded_id(&task.cluster),
        }
    }

    /// The engine of the host `task` is on, if this process can reach it:
    /// the embedded engine, or an agent connected here.
    pub(super) fn engine_for(&self, task: &TaskRecord) -> Option<Arc<dyn ContainerEngine>> {
        if self.on_embedded(task) {
            return Some(self.inner.engine.clone());
        }
        let id = task
            .task
            .container_instance_arn
            .as_deref()
            .and_then(instance_id)?;
        let session = self.inner.sessions.get(&task.cluster, id)?;
        Some(Arc::new(RemoteEngine::new(
            session,
            self.inner.hosts.clone(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::runner::instances::VersionInfo;

    fn record(connected: bool, seen: Option<i64>) -> InstanceRecord {
        InstanceRecord {
            id: "i".into(),
            cluster: "c".into(),
            embedded: false,
            status: InstanceState::Active,
            status_reason: None,
            agent_connected: connected,
            ec2_instance_id: None,
            cpu: 1024,
            memory_mib: 512,
            ports_tcp: BTreeSet::new(),
            ports_udp: BTreeSet::new(),
            attributes: BTreeMap::new(),
            version_info: VersionInfo::default(),
            registered_at_ms: 1_000,
            agent_seen_ms: seen,
            agent_session: None,
            address: None,
        }
    }

    #[test]
    fn an_agent_is_lost_only_after_the_timeout() {
        let timeout = Duration::from_secs(60);
        let away = record(false, Some(10_000));
        assert!(!lost(&away, 10_000 + 59_999, timeout));
        assert!(lost(&away, 10_000 + 60_000, timeout));
        // Connected, or the embedded engine: never lost here.
        assert!(!lost(&record(true, Some(0)), 1_000_000, timeout));
        let mut embedded = record(false, Some(0));
        embedded.embedded = true;
        assert!(!lost(&embedded, 1_000_000, timeout));
        // Never connected: counted from its registration.
        assert!(lost(&record(false, None), 61_000, timeout));
    }

    #[test]
    fn a_connected_agent_not_heard_of_is_silent() {
        assert!(!silent(&record(true, Some(100_000)), 129_999));
        assert!(silent(&record(true, Some(100_000)), 130_000));
        assert!(!silent(&record(false, Some(0)), 1_000_000));
    }
}
