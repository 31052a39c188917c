//! Carries out the server's commands on this host's Docker Engine, within
//! what an agent allows whatever the server says: images only from the
//! server it is connected to, pinned to a digest; containers only of this
//! installation (its `wharf.instance` label), named as the runner names them.

use base64::Engine as _;
use futures::StreamExt;

use crate::oci::{Digest, RepoName};
use crate::runner::engine::{
    ContainerEngine, DockerEngine, EngineError, LABEL_INSTANCE, LABEL_TASK, Listed,
};
use crate::runner::protocol::{Command, MAX_LOG_BYTES, Outcome};

pub struct Executor {
    pub engine: DockerEngine,
    /// `host:port` of the server, where every image comes from.
    pub registry_host: String,
    /// Whether tasks may use the host's network (`--allow-host-network`).
    pub allow_host_network: bool,
    /// Capabilities a container may add back (`--allow-capability`).
    pub allowed_capabilities: Vec<String>,
}

/// Log lines asked of the engine when the server names no tail.
const DEFAULT_TAIL: usize = 10_000;

fn refused(why: String) -> EngineError {
    EngineError::Failed(why)
}

/// `repo@sha256:...` checked, or why not.
fn checked_image(image: &str) -> Result<(), EngineError> {
    let refuse = || {
        refused(format!(
            "{image:?}: agents run images of their server pinned to a digest only"
        ))
    };
    let (repo, digest) = image.split_once('@').ok_or_else(refuse)?;
    repo.parse::<RepoName>().map_err(|_| refuse())?;
    digest.parse::<Digest>().map_err(|_| refuse())?;
    Ok(())
}

impl Executor {
    /// The outcome of `command` for the installation labelled `installation`.
    pub async fn run(&self, command: Command, installation: &str) -> Outcome {
        match self.step(command, installation).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::of_error(&e),
        }
    }

    /// The containers of this installation on this host.
    async fn owned(&self, installation: &str) -> Result<Vec<Listed>, EngineError> {
        self.engine.list(LABEL_INSTANCE, installation).await
    }

    /// Fails unless container `id` (id or name) is one of this installation's.
    async fn require_owned(&self, id: &str, installation: &str) -> Result<(), EngineError> {
        let owned = self.owned(installation).await?;
        // Full ids only: the engine would resolve a prefix or a name to
        // whichever container matches it.
        if owned.iter().any(|c| c.id == id) {
            return Ok(());
        }
        Err(refused(format!(
            "container {id} is not one of this installation's"
        )))
    }

    /// What the agent lets a container ask of the host, whatever the
    /// server's own checks said: no joining another container's namespaces,
    /// the host network only if allowed, no capability beyond the allowed.
    fn check_host_config(
        &self,
        spec: &crate::runner::engine::ContainerSpec,
    ) -> Result<(), EngineError> {
        match spec.network_mode.as_str() {
            "bridge" | "none" => {}
            "host" if self.allow_host_network => {}
            other => {
                return Err(refused(format!(
                    "network mode {other:?} is not allowed on this host (wharf agent --allow-host-network)"
                )));
            }
        }
        if let Some(cap) = spec.cap_add.iter().find(|c| {
            !self
                .allowed_capabilities
                .iter()
                .any(|a| a.eq_ignore_ascii_case(c))
        }) {
            return Err(refused(format!(
                "capability {cap} is not allowed on this host (wharf agent --allow-capability)"
            )));
        }
        Ok(())
    }

    async fn step(&self, command: Command, installation: &str) -> Result<Outcome, EngineError> {
        let engine = &self.engine;
        Ok(match command {
            Command::Ping => {
                engine.ping().await?;
                Outcome::Done
            }
            Command::Info => Outcome::Info {
                info: engine.info().await?,
            },
            Command::Pull { image, token } => {
                checked_image(&image)?;
                let reference = format!("{}/{image}", self.registry_host);
                engine.pull(&reference, token).await?;
                Outcome::Done
            }
            Command::Create { mut spec } => {
                checked_image(&spec.image)?;
                if spec.labels.get(LABEL_INSTANCE).map(String::as_str) != Some(installation)
                    || !spec.name.starts_with("wharf-")
                {
                    return Err(refused(format!(
                        "container {}: not labelled and named as this installation's",
                        spec.name
                    )));
                }
                self.check_host_config(&spec)?;
                spec.image = format!("{}/{}", self.registry_host, spec.image);
                let id = engine.create(&spec).await?;
                // A container of that name from elsewhere is not ours to hand out.
                self.require_owned(&id, installation).await?;
                Outcome::Created { id }
            }
            Command::Start { id } => {
                self.require_owned(&id, installation).await?;
                engine.start(&id).await?;
                Outcome::Done
            }
            Command::Stop {
                id,
                timeout_seconds,
            } => {
                self.require_owned(&id, installation).await?;
                engine.stop(&id, timeout_seconds).await?;
                Outcome::Done
            }
            Command::Remove { id } => {
                self.require_owned(&id, installation).await?;
                engine.remove(&id).await?;
                Outcome::Done
            }
            Command::Inspect { id } => {
                // Another installation's container is as good as missing.
                let owned = self.owned(installation).await?;
                let status = if owned.iter().any(|c| c.id == id) {
                    engine.inspect(&id).await?
                } else {
                    None
                };
                Outcome::Inspected { status }
            }
            Command::Stats { id } => {
                // As for Inspect: another installation's container is as good as missing.
                let owned = self.owned(installation).await?;
                let usage = if owned.iter().any(|c| c.id == id) {
                    engine.stats(&id).await?
                } else {
                    None
                };
                Outcome::Stats { usage }
            }
            Command::List { label, value } => {
                let owned = self.owned(installation).await?;
                let containers = match label.as_str() {
                    LABEL_INSTANCE if value == installation => owned,
                    LABEL_TASK => owned.into_iter().filter(|c| c.task == value).collect(),
                    _ => Vec::new(),
                };
                Outcome::Listed { containers }
            }
            Command::Logs { id, tail } => {
                self.require_owned(&id, installation).await?;
                let tail = tail.unwrap_or(DEFAULT_TAIL).min(DEFAULT_TAIL);
                let mut logs = engine.logs(&id, Some(tail));
                // The newest bytes are what a tail is for: whole chunks are
                // kept until they exceed the cap, then the oldest go.
                let mut kept: std::collections::VecDeque<bytes::Bytes> = Default::default();
                let mut size = 0usize;
                while let Some(chunk) = logs.next().await {
                    let chunk = chunk?;
                    size += chunk.len();
                    kept.push_back(chunk);
                    while size > MAX_LOG_BYTES {
                        let Some(old) = kept.pop_front() else { break };
                        size -= old.len();
                    }
                }
                let joined: Vec<u8> = kept.iter().flat_map(|c| c.iter().copied()).collect();
                Outcome::Logs {
                    data: base64::engine::general_purpose::STANDARD.encode(joined),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_ask_only_what_the_host_allows() {
        let executor = Executor {
            engine: DockerEngine::connect("unix:///nonexistent.sock").unwrap(),
            registry_host: "wharf:5000".into(),
            allow_host_network: false,
            allowed_capabilities: vec!["NET_BIND_SERVICE".into()],
        };
        let spec = |mode: &str, caps: &[&str]| crate::runner::engine::ContainerSpec {
            network_mode: mode.into(),
            cap_add: caps.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        };
        assert!(
            executor
                .check_host_config(&spec("bridge", &["NET_BIND_SERVICE"]))
                .is_ok()
        );
        assert!(executor.check_host_config(&spec("none", &[])).is_ok());
        assert!(executor.check_host_config(&spec("host", &[])).is_err());
        assert!(
            executor
                .check_host_config(&spec("container:abc", &[]))
                .is_err()
        );
        assert!(
            executor
                .check_host_config(&spec("bridge", &["SYS_ADMIN"]))
                .is_err()
        );
    }

    #[test]
    fn only_pinned_images_of_the_server_are_pulled() {
        let digest = format!("sha256:{}", "b".repeat(64));
        assert!(checked_image(&format!("team/app@{digest}")).is_ok());
        assert!(checked_image("team/app:latest").is_err());
        assert!(checked_image(&format!("evil.example/app@{digest}:x")).is_err());
        assert!(checked_image(&format!("../app@{digest}")).is_err());
    }
}
