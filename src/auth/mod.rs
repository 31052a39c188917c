//! Authentication and authorization (Docker registry token spec): who is
//! asking, and may they do what the request needs. The `/v2/` adapter calls
//! [`Auth::authorize`]; the token endpoint lives in [`api`].

pub mod api;
pub mod iam;
mod keys;
pub mod login;
mod need;
pub mod policy;
mod repository_policies;
pub mod scope;
mod secrets;
pub mod throttle;
pub mod token;

use std::collections::BTreeSet;
use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::http::{Fault, TrustedProxies};
use crate::metrics::metrics;
use crate::oci::RepoName;
use crate::storage::MetadataError;

pub use keys::{KeyError, SigningKey, generate_pem};
pub use login::{
    Authenticated, Authenticator, ConfigUser, Credential, LoginError, hash_password,
    new_access_key, new_access_token,
};
pub use need::{Action, EcrAction, EcrNeed, EcsNeed, Granted, Need};
pub use policy::{Policy, Principal, Rule, permits};
pub use repository_policies::{PolicyStoreError, RepositoryPolicies};
pub use scope::{Access, Scope};
pub use secrets::{SealError, SecretsKey};
pub use token::{DOWNLOAD_TOKEN, SessionClaims, TokenIssuer};

/// Whether requests must prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No credentials exist and Wharf listens on loopback (or `auth.open` is set): anyone may do anything.
    Open,
    Enforced,
}

/// Why a request was refused.
#[derive(Debug)]
pub enum Denial {
    /// 401 with a Bearer challenge; `error` is `invalid_token` or `insufficient_scope`.
    Unauthorized {
        error: Option<&'static str>,
        message: String,
    },
    /// 403: signed in (HTTP Basic), but not allowed.
    Forbidden(String),
    /// The credential store failed or does not answer now.
    Fault(Fault),
    /// Too many login attempts now: 429 with `Retry-After` (seconds).
    Throttled { retry_after: u64 },
}

impl From<MetadataError> for Denial {
    fn from(e: MetadataError) -> Self {
        Denial::Fault(Fault::classify(e.is_unavailable(), e))
    }
}

/// The auth service shared by every request.
pub struct Auth {
    pub mode: Mode,
    pub policy: Policy,
    /// Per-repository IAM-style documents (ECR's SetRepositoryPolicy).
    pub repository_policies: RepositoryPolicies,
    pub tokens: TokenIssuer,
    pub login: Authenticator,
    /// Public base URL for the realm; `None`: from each request's `Host`.
    pub external_url: Option<String>,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// Whether this server itself speaks TLS (for the realm's scheme).
    pub tls: bool,
    /// The audit log: sign-ins are recorded here ([`Auth::sign_in`]), and
    /// the adapters record what they change through it.
    pub audit: crate::audit::Audit,
}

impl Auth {
    /// A sign-in (the console's form, the `/token` endpoint): checks the
    /// credential as [`Authenticator::login`] does and records the outcome,
    /// `login` or `login.failed` (bounded per client address), with `via`
    /// and the client's address.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
        via: &str,
    ) -> Result<Authenticated, LoginError> {
        let result = self.login.login(username, password, client).await;
        match &result {
            Ok(a) => {
                let detail = format!("via={via} client={client}");
                self.audit
                    .record(&a.principal.subject(), "login", "", "", &detail)
                    .await;
            }
            Err(LoginError::Invalid) => self.audit.login_failed(username, client, via).await,
            Err(_) => {}
        }
        result
    }

    /// The client's address (see [`TrustedProxies::client`]).
    pub fn client_ip(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        self.trusted_proxies.client(headers, peer)
    }

    /// This registry's base URL as the client reached it (`external_url`, or
    /// the request's scheme and `Host`, forwarded ones only from trusted proxies).
    pub fn base_url(&self, headers: &HeaderMap, peer: IpAddr) -> String {
        if let Some(base) = &self.external_url {
            return base.trim_end_matches('/').to_string();
        }
        let trusted = self.trusted_proxies.contains(peer);
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let forwarded = |name: &str| if trusted { header(name) } else { None };
        let scheme = forwarded("x-forwarded-proto")
            .unwrap_or_else(|| if self.tls { "https" } else { "http" }.into());
        let host = forwarded("x-forwarded-host")
            .or_else(|| header(header::HOST.as_str()))
            .unwrap_or_else(|| "localhost".into());
        format!("{scheme}://{host}")
    }

    /// The token endpoint URL, as clients must reach it.
    pub fn realm(&self, headers: &HeaderMap, peer: IpAddr) -> String {
        format!("{}/token", self.base_url(headers, peer))
    }

    /// Everything `principal` may do to a resource: the configuration's rules
    /// and anonymous pull, widened by the repository policy's Allows and
    /// narrowed by its Denies.
    pub async fn allowed(
        &self,
        principal: &Principal,
        kind: &str,
        name: &str,
    ) -> Result<BTreeSet<String>, MetadataError> {
        let by_rules = self.policy.allowed(principal, kind, name);
        let Some(repo) = (kind == "repository")
            .then(|| name.parse::<RepoName>().ok())
            .flatten()
        else {
            return Ok(by_rules);
        };
        let Some(document) = self.repository_policies.get(&repo).await? else {
            return Ok(by_rules);
        };
        Ok([scope::PULL, scope::PUSH, scope::DELETE]
            .into_iter()
            .filter(|a| document.permits_registry_action(principal, a, permits(&by_rules, a)))
            .map(String::from)
            .collect())
    }

    /// The intersection of what was asked and what is allowed, scope by scope.
    /// Asking for more is not an error: it just yields less.
    pub async fn grant(
        &self,
        principal: &Principal,
        requested: &[Scope],
    ) -> Result<Vec<Access>, MetadataError> {
        if self.mode == Mode::Open {
            return Ok(requested.iter().cloned().map(Into::into).collect());
        }
        let mut granted = Vec::new();
        for s in requested {
            let allowed = self.allowed(principal, &s.kind, &s.name).await?;
            granted.extend(policy::intersect(s, &allowed));
        }
        Ok(granted)
    }

    /// Whether `principal` may do the ECR `action` on `repo`.
    pub async fn may_call(
        &self,
        principal: &Principal,
        repo: &RepoName,
        action: EcrAction,
    ) -> Result<bool, MetadataError> {
        if self.mode == Mode::Open {
            return Ok(true);
        }
        let document = self.repository_policies.get(repo).await?;
        Ok(self.judge_call(principal, repo, action, document.as_deref()))
    }

    /// The same against a given repository policy (to check one before it is set).
    pub fn judge_call(
        &self,
        principal: &Principal,
        repo: &RepoName,
        action: EcrAction,
        document: Option<&iam::RepositoryPolicy>,
    ) -> bool {
        if self.mode == Mode::Open {
            return true;
        }
        let by_rules = permits(
            &self.policy.allowed(principal, "repository", repo.as_str()),
            action.rule,
        );
        match document {
            Some(document) => document.permits(principal, action.policy, by_rules),
            None => by_rules,
        }
    }

    /// Whether `principal` may call an ECS operation that needs `need`.
    pub fn admits_ecs(&self, principal: &Principal, need: EcsNeed) -> bool {
        if self.mode == Mode::Open {
            return true;
        }
        match need {
            EcsNeed::Caller => true,
            EcsNeed::Deployer => self.policy.grants_somewhere(principal, scope::PUSH),
            EcsNeed::Owner => *principal != Principal::Anonymous,
            EcsNeed::Operator => self.policy.grants_everywhere(principal),
        }
    }

    /// Whether `principal` holds every one of `scopes` (the runner's: `push`
    /// on each repository a resource runs). `None`, a resource that belongs
    /// to nobody, is nobody's but open mode's; the anonymous own nothing.
    pub async fn may_use_repositories(
        &self,
        principal: &Principal,
        scopes: Option<&[Scope]>,
    ) -> Result<bool, MetadataError> {
        if self.mode == Mode::Open {
            return Ok(true);
        }
        if *principal == Principal::Anonymous {
            return Ok(false);
        }
        let Some(scopes) = scopes else {
            return Ok(false);
        };
        for scope in scopes {
            let allowed = self.allowed(principal, &scope.kind, &scope.name).await?;
            if !scope.actions.iter().all(|a| permits(&allowed, a)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Who a request without any credential is, when such requests are let
    /// in at all (open mode); the AWS-shaped APIs ask before admitting an
    /// unsigned call.
    pub fn without_credentials(&self) -> Option<Principal> {
        (self.mode == Mode::Open).then_some(Principal::Anonymous)
    }

    /// The one check of what a request needs, before its handler runs.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
        need: &Need,
    ) -> Result<Granted, Denial> {
        let granted = |principal| Granted {
            principal,
            may_mount: false,
        };
        if self.mode == Mode::Open {
            // Everything is granted: skip building the scopes of the need.
            return Ok(Granted {
                principal: Principal::Anonymous,
                may_mount: true,
            });
        }
        match need {
            Need::BlobRead {
                repo,
                digest,
                download_token: Some(token),
            } if self
                .tokens
                .verify_download(token, repo.as_str(), &digest.to_string()) =>
            {
                Ok(granted(Principal::Anonymous))
            }
            Need::SignedIn => {
                let principal = self.authorize(headers, client, &[]).await?;
                // An anonymous token from /token is no identity either.
                if principal.subject().is_empty() {
                    return Err(Denial::Unauthorized {
                        error: None,
                        message: "authentication required".into(),
                    });
                }
                Ok(granted(principal))
            }
            Need::Mount { from, .. } => {
                let principal = self.authorize(headers, client, &need.scopes()).await?;
                // Mounting reads the source repository, so it needs pull there too.
                let source = [Scope::repository(from.as_str(), &[Action::Pull])];
                let may_mount = self.authorize(headers, client, &source).await.is_ok();
                Ok(Granted {
                    principal,
                    may_mount,
                })
            }
            Need::Unattainable => Err(Denial::Forbidden("no right grants this".into())),
            Need::Credential
            | Need::Catalog
            | Need::Repository(..)
            | Need::BlobRead { .. }
            | Need::Scopes(_) => Ok(granted(
                self.authorize(headers, client, &need.scopes()).await?,
            )),
        }
    }

    /// Checks that the request may do everything in `needs`; an empty `needs`
    /// only requires a valid credential.
    async fn authorize(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
        needs: &[Scope],
    ) -> Result<Principal, Denial> {
        if self.mode == Mode::Open {
            return Ok(Principal::Anonymous);
        }
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(token) = strip_scheme(authorization, "bearer") {
            let claims = self.tokens.verify(token).map_err(|e| {
                metrics().auth_failure("token");
                Denial::Unauthorized {
                    error: Some("invalid_token"),
                    message: e.to_string(),
                }
            })?;
            let covered = needs.iter().all(|need| {
                claims.access.iter().any(|a| {
                    a.kind == need.kind
                        && a.name == need.name
                        && need
                            .actions
                            .iter()
                            .all(|n| permits(&a.actions.iter().cloned().collect(), n))
                })
            });
            return if covered {
                Ok(Principal::User {
                    name: claims.registered.sub,
                    groups: Vec::new(),
                })
            } else {
                metrics().auth_failure("scope");
                Err(Denial::Unauthorized {
                    error: Some("insufficient_scope"),
                    message: "the token does not grant this".into(),
                })
            };
        }
        let (principal, signed_in) =
            match strip_scheme(authorization, "basic").and_then(decode_basic) {
                Some((user, password)) => match self.login.login(&user, &password, client).await {
                    Ok(a) => (a.principal, true),
                    Err(LoginError::Invalid) => {
                        self.audit.login_failed(&user, client, "basic").await;
                        return Err(Denial::Unauthorized {
                            error: None,
                            message: "invalid username or password".into(),
                        });
                    }
                    Err(LoginError::Throttled { retry_after }) => {
                        return Err(Denial::Throttled {
                            retry_after: retry_after.as_secs().max(1),
                        });
                    }
                    Err(LoginError::Store(e)) => return Err(e.into()),
                },
                None => (Principal::Anonymous, false),
            };
        if !signed_in && needs.is_empty() {
            return Err(Denial::Unauthorized {
                error: None,
                message: "authentication required".into(),
            });
        }
        let mut allowed = true;
        for need in needs {
            let may = self.allowed(&principal, &need.kind, &need.name).await?;
            allowed &= need.actions.iter().all(|a| permits(&may, a));
        }
        if !allowed && signed_in {
            metrics().auth_failure("forbidden");
        }
        match (allowed, signed_in) {
            (true, _) => Ok(principal),
            (false, true) => Err(Denial::Forbidden(format!(
                "{} may not do this",
                principal.subject()
            ))),
            (false, false) => Err(Denial::Unauthorized {
                error: None,
                message: "authentication required".into(),
            }),
        }
    }
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// `user:password` from an HTTP Basic credential.
pub fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let decoded = STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The `WWW-Authenticate` value for a Bearer challenge.
pub fn challenge(realm: &str, service: &str, needs: &[Scope], error: Option<&str>) -> String {
    let mut value = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
    if !needs.is_empty() {
        let scopes: Vec<String> = needs.iter().map(ToString::to_string).collect();
        value.push_str(&format!(",scope=\"{}\"", scopes.join(" ")));
    }
    if let Some(error) = error {
        value.push_str(&format!(",error=\"{error}\""));
    }
    value
}
