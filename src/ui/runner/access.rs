//! Who may see and do what on the runner pages: the ECS API's rules
//! (`ecs::Operation::authorization`, README "Who may call what"), judged by
//! `auth` alone, in one place.
//!
//! - The runner pages at all (the clusters, their container instances):
//!   [`EcsNeed::Deployer`], what ListContainerInstances needs. ListClusters
//!   alone needs less (any caller), but a caller who may push nowhere can
//!   run nothing, and the section is no more open than its busiest page.
//!   The anonymous never (the ECS API admits no unsigned call outside open
//!   mode).
//! - A service or a task: as DescribeServices / DescribeTasks
//!   ([`EcsNeed::Owner`] and `push` on every repository its images come
//!   from, [`Auth::may_use_repositories`]); lists show only those, and one
//!   the viewer may not see answers exactly as a missing one.
//! - Target health: DescribeTargetHealth's [`EcsNeed::Deployer`].
//! - Draining or activating a container instance: UpdateContainerInstancesState's
//!   [`EcsNeed::Operator`]; the button is shown only to operators.

use super::super::Console;
use super::super::error::{UiError, UiResult};
use super::super::session::Viewer;
use crate::auth::{Auth, EcsNeed, Mode, Principal};
use crate::runner::Runner;
use crate::runner::model::{Service, Task};

/// Whether `principal` may see the runner pages (and the "Runner" link).
pub fn may_see_runner(auth: &Auth, runner: Option<&Runner>, principal: &Principal) -> bool {
    runner.is_some()
        && (auth.mode == Mode::Open || *principal != Principal::Anonymous)
        && auth.admits_ecs(principal, EcsNeed::Deployer)
}

/// A viewer admitted to the runner pages.
pub struct Admitted<'a> {
    pub runner: &'a Runner,
    auth: &'a Auth,
    principal: &'a Principal,
}

/// Admits `viewer` to the runner pages, or answers as for a page that does
/// not exist (the runner off, or not the viewer's to see).
pub fn admit<'a>(console: &'a Console, viewer: &'a Viewer) -> UiResult<Admitted<'a>> {
    let runner = console.runner.as_ref().ok_or(UiError::NotFound)?;
    if !may_see_runner(&console.auth, Some(runner), &viewer.principal) {
        return Err(UiError::NotFound);
    }
    Ok(Admitted {
        runner,
        auth: &console.auth,
        principal: &viewer.principal,
    })
}

impl Admitted<'_> {
    /// Whether the viewer has `need` (the operator's, for draining).
    pub fn may(&self, need: EcsNeed) -> bool {
        self.auth.admits_ecs(self.principal, need)
    }

    /// Whether the viewer may see a resource running `images`.
    pub async fn may_use_images<'i>(
        &self,
        images: impl IntoIterator<Item = &'i str>,
    ) -> UiResult<bool> {
        if !self.may(EcsNeed::Owner) {
            return Ok(false);
        }
        let needs = crate::runner::images::repository_scopes(self.runner.hosts(), images);
        Ok(self
            .auth
            .may_use_repositories(self.principal, needs.as_deref())
            .await?)
    }

    /// DescribeTasks' rule: the images of the task's containers.
    pub async fn may_see_task(&self, task: &Task) -> UiResult<bool> {
        self.may_use_images(task.containers.iter().map(|c| c.image.as_str()))
            .await
    }

    /// DescribeServices' rule: the images of every task definition its
    /// deployments run (a service whose definition is gone is nobody's).
    pub async fn may_see_service(&self, service: &Service) -> UiResult<bool> {
        if !self.may(EcsNeed::Owner) {
            return Ok(false);
        }
        let needs = self.runner.service_scopes(service).await?;
        Ok(self
            .auth
            .may_use_repositories(self.principal, needs.as_deref())
            .await?)
    }

    /// The cluster named in the path, which must exist.
    pub async fn cluster(&self, name: &str) -> UiResult<String> {
        Ok(self.runner.cluster(Some(name)).await?)
    }

    /// A service the viewer may see, with its live counts.
    pub async fn service(&self, cluster: &str, name: &str) -> UiResult<Service> {
        let service = self.runner.describe_service(cluster, name).await?;
        if service.service_name != name || !self.may_see_service(&service).await? {
            return Err(UiError::NotFound);
        }
        Ok(service)
    }

    /// A task of `cluster` the viewer may see.
    pub async fn task(&self, cluster: &str, id: &str) -> UiResult<Task> {
        // An id only: an ARN in the path would name the same task twice over.
        if id.contains(['/', ':']) {
            return Err(UiError::NotFound);
        }
        match self.runner.task(Some(cluster), id).await? {
            Some(t) if self.may_see_task(&t).await? => Ok(t),
            _ => Err(UiError::NotFound),
        }
    }
}
