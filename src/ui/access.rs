//! Who may see and do what in the console, judged by `auth` with the grants
//! `/v2/` uses (`Auth::grant`: configuration rules, anonymous pull, access
//! token scopes, repository policies, open mode). Every repository page
//! declares its [`Need`] and is checked here, once, before it renders.

use super::Console;
use super::error::{UiError, UiResult};
use crate::auth::{Action, Mode, Principal, Scope, scope};
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
    if need == Need::Delete && !rights.delete {
        return Err(UiError::Forbidden);
    }
    Ok(rights)
}
