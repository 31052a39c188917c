//! What an endpoint needs of its caller, declared by the endpoint and judged
//! in one place ([`super::Auth::check`]). Open mode and the anonymous rules
//! are applied there, never by the adapters.

use super::Principal;
use super::scope::Scope;
use crate::oci::{Digest, RepoName};

/// An action on a repository, as endpoints need it. Scopes on the wire keep
/// strings: a client may ask for actions we do not know, which yield nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    /// The name in scopes and token claims.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

/// What a request needs before its handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Any valid credential, an anonymous token included: the `/v2/` base,
    /// where clients learn whether and how to sign in.
    Credential,
    /// A named identity (not anonymous, not an anonymous token).
    SignedIn,
    /// `registry:catalog:*`.
    Catalog,
    /// These actions on one repository (Distribution's mapping: reads pull,
    /// writes pull and push, deletes delete).
    Repository(RepoName, &'static [Action]),
    /// A blob read: pull, or the token of a download URL (ECR's
    /// GetDownloadUrlForLayer) for exactly this blob, which needs no other
    /// credential.
    BlobRead {
        repo: RepoName,
        digest: Digest,
        download_token: Option<String>,
    },
    /// A cross-repository mount (end-11): pull and push on `repo`. Whether
    /// `from` may be read decides between mounting and an ordinary session,
    /// so a refusal there is no error ([`Granted::may_mount`]).
    Mount { repo: RepoName, from: RepoName },
    /// Every one of these scopes (the ECS logs: what DescribeTasks needs of
    /// each image's repository).
    Scopes(Vec<Scope>),
    /// What no right grants (a task running an image this registry does not
    /// hold): only open mode lets it through.
    Unattainable,
}

impl Need {
    /// The scopes checked (and named in a Bearer challenge); empty for the
    /// needs of an identity alone.
    pub fn scopes(&self) -> Vec<Scope> {
        match self {
            Need::Credential | Need::SignedIn | Need::Unattainable => Vec::new(),
            Need::Catalog => vec![Scope::catalog()],
            Need::Repository(repo, actions) => vec![Scope::repository(repo.as_str(), actions)],
            Need::BlobRead { repo, .. } => vec![Scope::repository(repo.as_str(), &[Action::Pull])],
            Need::Mount { repo, .. } => vec![Scope::repository(
                repo.as_str(),
                &[Action::Pull, Action::Push],
            )],
            Need::Scopes(scopes) => scopes.clone(),
        }
    }
}

/// What an ECR operation needs; each operation declares it
/// (`ecr::Operation::authorization`) and [`super::Auth::may_call`] judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcrNeed {
    /// Nothing beyond being let in by the front door (DescribeRegistry).
    Admitted,
    /// A signed-in user, whom a login password can be bound to
    /// (GetAuthorizationToken).
    User,
    /// The action on the one repository the input names.
    Repository(EcrAction),
    /// The action on each repository named; a listing shows only those the
    /// caller may act on (DescribeRepositories).
    EachRepository(EcrAction),
}

/// An ECR action on a repository: the name a repository policy allows or
/// denies, and the configuration-rule action that grants it when no policy
/// speaks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcrAction {
    /// The IAM action, e.g. `ecr:BatchGetImage`.
    pub policy: &'static str,
    /// `pull`, `push`, `delete`, or `*` (every action: changing who may do what).
    pub rule: &'static str,
}

/// What an ECS operation needs before its handler runs (README, task runner:
/// "Who may call what"); [`super::Auth::admits_ecs`] judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcsNeed {
    /// Any caller the front door let in.
    Caller,
    /// `push` on some repository: clusters are shared by every team.
    Deployer,
    /// `push` on the repositories of every resource it names or shows; the
    /// handler checks each resource ([`super::Auth::may_use_repositories`]).
    Owner,
    /// Every action on every repository (a rule or token scope whose pattern
    /// is `*` with actions `*`): container instances are the hosts every
    /// team's tasks run on, so registering, draining or relabelling one is
    /// the operator's business.
    Operator,
}

/// A request that may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// Who asked; anonymous for open mode and download URLs.
    pub principal: Principal,
    /// For [`Need::Mount`]: whether the source repository may be read.
    pub may_mount: bool,
}
