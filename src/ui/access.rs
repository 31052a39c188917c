//! Who may see and do what in the console, judged by `auth` with the grants
//! `/v2/` uses (`Auth::grant`: configuration rules, anonymous pull, access
//! token scopes, repository policies, open mode). Every repository page
//! declares its [`Need`] and is checked here, once, before it renders.

use super::Console;
use super::error::{UiError, UiResult};
use crate::auth::{Action, EcrAction, Mode, Principal, Scope, scope};
use crate::oci::RepoName;

/// What the viewer may do to one repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rights {
    pub pull: bool,
    pub push: bool,
    pub delete: bool,
}

/// What a repository page needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reading: tags, images, the delete confirmation's facts.
    Pull,
    /// Untagging or deleting a manifest (as `DELETE /v2/…/manifests/…`).
    Delete,
    /// Every one of these ECR actions, judged as the ECR API judges them
    /// (`Auth::may_call`: the repository policy's `ecr:` action, else the
    /// configuration's rule action), so the console and the API agree.
    Ecr(&'static [EcrAction]),
}

/// PutLifecyclePolicy: saving a lifecycle policy.
pub const PUT_LIFECYCLE_POLICY: &[EcrAction] = &[EcrAction {
    policy: "ecr:PutLifecyclePolicy",
    rule: scope::DELETE,
}];
/// GetLifecyclePolicy: reading the page (its policy, preview and runs).
pub const GET_LIFECYCLE_POLICY: &[EcrAction] = &[EcrAction {
    policy: "ecr:GetLifecyclePolicy",
    rule: scope::PULL,
}];
/// StartLifecyclePolicyPreview: previewing a draft.
pub const PREVIEW_LIFECYCLE_POLICY: &[EcrAction] = &[EcrAction {
    policy: "ecr:StartLifecyclePolicyPreview",
    rule: scope::PULL,
}];
/// DeleteLifecyclePolicy.
pub const DELETE_LIFECYCLE_POLICY: &[EcrAction] = &[EcrAction {
    policy: "ecr:DeleteLifecyclePolicy",
    rule: scope::DELETE,
}];
/// Running the stored policy now: ECR has no such call; it is what putting
/// the policy lets the schedule do, and it deletes images (BatchDeleteImage).
pub const APPLY_LIFECYCLE_POLICY: &[EcrAction] = &[
    EcrAction {
        policy: "ecr:PutLifecyclePolicy",
        rule: scope::DELETE,
    },
    EcrAction {
        policy: "ecr:BatchDeleteImage",
        rule: scope::DELETE,
    },
];
/// PutImageTagMutability.
pub const PUT_IMAGE_TAG_MUTABILITY: &[EcrAction] = &[EcrAction {
    policy: "ecr:PutImageTagMutability",
    rule: scope::PUSH,
}];

/// Whether the viewer may do every one of `actions` on `repo`, as the ECR
/// API would let them.
pub async fn may_call(
    console: &Console,
    principal: &Principal,
    repo: &RepoName,
    actions: &[EcrAction],
) -> UiResult<bool> {
    for action in actions {
        if !console.auth.may_call(principal, repo, *action).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The viewer's rights on `repo`.
pub async fn rights(console: &Console, principal: &Principal, repo: &RepoName) -> UiResult<Rights> {
    let asked = Scope::repository(repo.as_str(), &[Action::Pull, Action::Push, Action::Delete]);
    let granted = console.auth.grant(principal, &[asked]).await?;
    let has = |action: &str| {
        granted
            .iter()
            .any(|g| g.actions.iter().any(|a| a == action || a == scope::ALL))
    };
    Ok(Rights {
        pull: has(scope::PULL),
        push: has(scope::PUSH),
        delete: has(scope::DELETE),
    })
}

/// Reads, in one query, what judging many repositories needs (their
/// repository policies), so a list page's checks cost no query per row.
pub async fn prepare(console: &Console, repos: &[RepoName]) -> UiResult<()> {
    if console.auth.mode == Mode::Enforced {
        console.auth.repository_policies.prefetch(repos).await?;
    }
    Ok(())
}

/// Checks `need` on `repo`. Without pull the repository does not exist for
/// the viewer: the answer is the very page a missing one gets.
pub async fn authorize(
    console: &Console,
    principal: &Principal,
    repo: &RepoName,
    need: Need,
) -> UiResult<Rights> {
    let rights = rights(console, principal, repo).await?;
    if !rights.pull {
        return Err(UiError::NotFound);
    }
    let allowed = match need {
        Need::Pull => true,
        Need::Delete => rights.delete,
        Need::Ecr(actions) => may_call(console, principal, repo, actions).await?,
    };
    if !allowed {
        return Err(UiError::Forbidden);
    }
    Ok(rights)
}
