//! An in-memory `ContainerEngine` for unit tests: containers are records in
//! a map that tests move through their states (exit, health, removal) by
//! hand. It keeps the Docker driver's contract where the runner relies on
//! it: `create` finds an existing container by name, `stop` and `remove` of
//! an absent container succeed, `inspect` of one is `None`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::engine::{
    ContainerEngine, ContainerSpec, ContainerStatus, EngineError, LABEL_CONTAINER, LABEL_TASK,
    Listed,
};
use super::model::HealthStatus;

/// One container the engine holds.
#[derive(Debug, Clone)]
pub struct Fake {
    pub spec: ContainerSpec,
    pub status: ContainerStatus,
}

#[derive(Default)]
pub struct MemoryEngine {
    containers: Mutex<BTreeMap<String, Fake>>,
    /// Every call, in order (`"start <id>"`, ...), for tests to check.
    calls: Mutex<Vec<String>>,
    /// While set, every call fails as an unreachable engine would.
    pub unreachable: std::sync::atomic::AtomicBool,
}

impl MemoryEngine {
    fn note(&self, call: String) -> Result<(), EngineError> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
        if self.unreachable.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(EngineError::Unavailable("the engine is away".into()));
        }
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Fake>) -> T) -> T {
        f(&mut self.containers.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The calls made so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes container `id`'s status as the engine would report it.
    pub fn set(&self, id: &str, change: impl FnOnce(&mut ContainerStatus)) {
        self.with(|c| {
            if let Some(f) = c.get_mut(id) {
                change(&mut f.status);
            }
        });
    }

    /// The container ends with `code`.
    pub fn exit(&self, id: &str, code: i32) {
        self.set(id, |s| {
            s.running = false;
            s.exited = true;
            s.exit_code = Some(code);
        });
    }

    /// Someone removed container `id` behind the runner's back.
    pub fn vanish(&self, id: &str) {
        self.with(|c| c.remove(id));
    }
}

#[async_trait]
impl ContainerEngine for MemoryEngine {
    async fn ping(&self) -> Result<(), EngineError> {
        self.note("ping".into())
    }

    async fn info(&self) -> Result<super::engine::EngineInfo, EngineError> {
        self.note("info".into())?;
        Ok(super::engine::EngineInfo {
            cpus: 2,
            memory_mib: 4096,
            architecture: "x86_64".into(),
            server_version: "memory".into(),
        })
    }

    async fn pull(&self, reference: &str, _token: Option<String>) -> Result<(), EngineError> {
        self.note(format!("pull {reference}"))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        self.note(format!("create {}", spec.name))?;
        Ok(self.with(|c| {
            if let Some(f) = c.values().find(|f| f.spec.name == spec.name) {
                return f.status.id.clone();
            }
            let id = format!("c{}", c.len() + 1);
            let status = ContainerStatus {
                id: id.clone(),
                running: false,
                exited: false,
                exit_code: None,
                oom_killed: false,
                health: HealthStatus::Unknown,
                error: None,
                bindings: Vec::new(),
            };
            let fake = Fake {
                spec: spec.clone(),
                status,
            };
            c.insert(id.clone(), fake);
            id
        }))
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        self.note(format!("start {id}"))?;
        self.with(|c| match c.get_mut(id) {
            Some(f) => {
                f.status.running = !f.status.exited;
                Ok(())
            }
            None => Err(EngineError::Failed(format!("No such container: {id}"))),
        })
    }

    async fn stop(&self, id: &str, timeout_seconds: i32) -> Result<(), EngineError> {
        self.note(format!("stop {id} {timeout_seconds}"))?;
        self.with(|c| {
            if let Some(f) = c.get_mut(id).filter(|f| f.status.running) {
                f.status.running = false;
                f.status.exited = true;
                // SIGTERM's exit status, as a shell would report it.
                f.status.exit_code = Some(143);
            }
        });
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerStatus>, EngineError> {
        self.note(format!("inspect {id}"))?;
        Ok(self.with(|c| {
            c.get(id)
                .or_else(|| c.values().find(|f| f.spec.name == id))
                .map(|f| f.status.clone())
        }))
    }

    async fn list(&self, label: &str, value: &str) -> Result<Vec<Listed>, EngineError> {
        self.note(format!("list {label}={value}"))?;
        Ok(self.with(|c| {
            c.values()
                .filter(|f| f.spec.labels.get(label).map(String::as_str) == Some(value))
                .filter_map(|f| {
                    Some(Listed {
                        id: f.status.id.clone(),
                        task: f.spec.labels.get(LABEL_TASK)?.clone(),
                        container: f.spec.labels.get(LABEL_CONTAINER)?.clone(),
                        running: f.status.running,
                    })
                })
                .collect()
        }))
    }

    fn logs(
        &self,
        id: &str,
        _tail: Option<usize>,
    ) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let line = Bytes::from(format!("logs of {id}\n"));
        futures::stream::once(async move { Ok(line) }).boxed()
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        self.note(format!("remove {id}"))?;
        self.with(|c| c.remove(id));
        Ok(())
    }

    async fn stats(&self, id: &str) -> Result<Option<super::engine::Usage>, EngineError> {
        self.note(format!("stats {id}"))?;
        // A running container that has used nothing yet.
        let running = self.with(|c| c.get(id).is_some_and(|f| f.status.running));
        Ok(running.then(|| super::engine::Usage {
            cpu_ns: 0,
            memory_bytes: 0,
            at_ms: crate::registry::now_ms(),
        }))
    }
}
