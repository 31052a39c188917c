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
    /// `host[:port]` of the server, where every image comes from.
    pub registry_host: String,
}

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
        if owned
            .iter()
            .any(|c| c.id == id || (id.len() >= 12 && c.id.starts_with(id)))
        {
            return Ok(());
        }
        Err(refused(format!(
            "container {id} is not one of this installation's"
        )))
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
                spec.image = format!("{}/{}", self.registry_host, spec.image);
                Outcome::Created {
                    id: engine.create(&spec).await?,
                }
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
                let mut logs = engine.logs(&id, tail);
                let mut kept: Vec<u8> = Vec::new();
                while let Some(chunk) = logs.next().await {
                    kept.extend_from_slice(&chunk?);
                    // The newest bytes are what a tail is for.
                    if kept.len() > MAX_LOG_BYTES {
                        kept.drain(..kept.len() - MAX_LOG_BYTES);
                    }
                }
                Outcome::Logs {
                    data: base64::engine::general_purpose::STANDARD.encode(kept),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pinned_images_of_the_server_are_pulled() {
        let digest = format!("sha256:{}", "b".repeat(64));
        assert!(checked_image(&format!("team/app@{digest}")).is_ok());
        assert!(checked_image("team/app:latest").is_err());
        assert!(checked_image(&format!("evil.example/app@{digest}:x")).is_err());
        assert!(checked_image(&format!("../app@{digest}")).is_err());
    }
}
