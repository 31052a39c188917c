//! Who may see and change the runner's resources (README, task runner: "Who
//! may call what"). A task definition, task or service belongs to the
//! repositories of the images it runs: seeing it (its environment, overrides
//! and logs are the deployers' data) and changing or running it both need
//! `push` on every one of them, as the rules, access token scopes and
//! repository policies grant it
//! ([`crate::auth::Auth::may_use_repositories`]). A resource the caller may
//! not see answers exactly as a missing one does. Clusters carry no secrets:
//! any caller sees them; only deployers create and delete them. Open mode and
//! the anonymous are judged by `Auth` alone.

use crate::auth::{EcsNeed, Scope};
use crate::metrics::metrics;
use crate::runner::images::RegistryHosts;
use crate::runner::model::{Service, Task, TaskDefinition};

use super::{Call, EcsError};

/// The scopes a resource running `images` requires (shared with auto
/// scaling, which guards services the same way).
pub fn needs<'i>(
    hosts: &RegistryHosts,
    images: impl IntoIterator<Item = &'i str>,
) -> Option<Vec<Scope>> {
    crate::runner::images::repository_scopes(hosts, images)
}

fn definition_images(d: &TaskDefinition) -> Vec<&str> {
    d.container_definitions
        .iter()
        .map(|c| c.image.as_str())
        .collect()
}

/// The answer for a task definition the caller may not see, as for a missing one.
fn no_definition() -> EcsError {
    EcsError::Client("Unable to describe task definition.".into())
}

impl Call<'_> {
    /// Checks an operation's need, before its handler runs.
    pub(super) fn check(&self, need: EcsNeed) -> Result<(), EcsError> {
        if self.auth.admits_ecs(&self.principal, need) {
            return Ok(());
        }
        let why = match need {
            EcsNeed::Caller => "to call this operation",
            EcsNeed::Deployer => "to create or delete clusters: that needs push on some repository",
            EcsNeed::Owner => "to use the task runner without signing in",
            EcsNeed::Operator => {
                "to manage container instances: that needs every action on every repository (`*`)"
            }
        };
        metrics().auth_failure("forbidden");
        Err(EcsError::AccessDenied(format!(
            "User: {} is not authorized {why}",
            self.principal.subject()
        )))
    }

    /// Whether the caller may see and change a resource running `images`.
    pub async fn may_use(&self, images: &[&str]) -> Result<bool, EcsError> {
        let needs = needs(self.runner.hosts(), images.iter().copied());
        Ok(self
            .auth
            .may_use_repositories(&self.principal, needs.as_deref())
            .await?)
    }

    /// Fails unless the caller may deploy `images` (for a new resource, whose
    /// images the caller named, so denying says why).
    pub async fn require_use(&self, images: &[&str]) -> Result<(), EcsError> {
        if self.may_use(images).await? {
            return Ok(());
        }
        for &image in images {
            let repo = self
                .runner
                .hosts()
                .parse(image)
                .map_err(EcsError::Client)?
                .repo;
            if !self.may_use(&[image]).await? {
                metrics().auth_failure("forbidden");
                return Err(EcsError::AccessDenied(format!(
                    "User: {} may not push to {repo}, so may not deploy its images",
                    self.principal.subject()
                )));
            }
        }
        Err(EcsError::Client("Container list cannot be empty.".into()))
    }

    pub async fn may_use_definition(&self, d: &TaskDefinition) -> Result<bool, EcsError> {
        self.may_use(&definition_images(d)).await
    }

    pub async fn may_use_task(&self, task: &Task) -> Result<bool, EcsError> {
        let images: Vec<&str> = task.containers.iter().map(|c| c.image.as_str()).collect();
        self.may_use(&images).await
    }

    /// A service runs the task definitions of its deployments.
    pub async fn may_use_service(&self, service: &Service) -> Result<bool, EcsError> {
        let mut arns = vec![service.task_definition.as_str()];
        arns.extend(
            service
                .deployments
                .iter()
                .map(|d| d.task_definition.as_str()),
        );
        arns.sort_unstable();
        arns.dedup();
        for arn in arns {
            let Some(d) = self.runner.definition(arn).await? else {
                return Ok(false);
            };
            if !self.may_use_definition(&d).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A task definition the caller may see (a ClientException as for a missing one otherwise).
    pub async fn definition(&self, reference: &str) -> Result<TaskDefinition, EcsError> {
        match self.runner.definition(reference).await? {
            Some(d) if self.may_use_definition(&d).await? => Ok(d),
            _ => Err(no_definition()),
        }
    }

    /// The same, and it must be ACTIVE.
    pub async fn runnable_definition(&self, reference: &str) -> Result<TaskDefinition, EcsError> {
        let seen = self.definition(reference).await?;
        // By ARN: the very revision just checked.
        Ok(self
            .runner
            .runnable_definition(&seen.task_definition_arn)
            .await?)
    }

    /// A service the caller may see (ServiceNotFoundException otherwise).
    pub async fn service(&self, cluster: &str, service: &str) -> Result<Service, EcsError> {
        let found = self.runner.describe_service(cluster, service).await?;
        if self.may_use_service(&found).await? {
            Ok(found)
        } else {
            Err(EcsError::ServiceNotFound)
        }
    }

    /// A task the caller may see, in `cluster` when given.
    pub async fn task(&self, cluster: Option<&str>, task: &str) -> Result<Option<Task>, EcsError> {
        match self.runner.task(cluster, task).await? {
            Some(t) if self.may_use_task(&t).await? => Ok(Some(t)),
            _ => Ok(None),
        }
    }

    /// Fails unless the caller may add a revision to `family`: one in use by
    /// others' deployments (its latest ACTIVE revision runs images the caller
    /// may not push) is theirs, or anyone could slip their own images under a
    /// name other teams run by family.
    pub async fn require_family(&self, family: &str) -> Result<(), EcsError> {
        match self.runner.latest_definition(family).await? {
            Some(d) if !self.may_use_definition(&d).await? => {
                metrics().auth_failure("forbidden");
                Err(EcsError::AccessDenied(format!(
                    "User: {} may not add revisions to task definition family {family}: its latest revision runs images the user may not push",
                    self.principal.subject()
                )))
            }
            _ => Ok(()),
        }
    }
}
