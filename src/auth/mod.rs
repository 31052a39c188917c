//! Authentication and authorization (Docker registry token spec): who is
//! asking, and may they do what the request needs. The `/v2/` adapter calls
//! [`Auth::authorize`]; the token endpoint lives in [`api`].

pub mod api;
pub mod iam;
mod keys;
pub mod login;
pub mod policy;
mod repository_policies;
pub mod scope;
mod secrets;
pub mod throttle;
pub mod token;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::IpAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::metrics::metrics;
use crate::oci::RepoName;
use crate::storage::MetadataError;
use crate::tls::Peer;

pub use keys::{KeyError, SigningKey, generate_pem};
pub use login::{
    Authenticated, Authenticator, ConfigUser, Credential, LoginError, hash_password,
    new_access_key, new_access_token,
};
pub use policy::{Policy, Principal, Rule, permits};
pub use repository_policies::{PolicyStoreError, RepositoryPolicies};
pub use scope::{Access, Scope};
pub use secrets::{SealError, SecretsKey};
pub use token::TokenIssuer;

/// The TCP peer of a request (loopback when the server was not given connect info, as in tests).
pub struct PeerAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<Peer>>()
            .map(|c| c.0.0.ip().to_canonical());
        Ok(PeerAddr(peer.unwrap_or(IpAddr::from([127, 0, 0, 1]))))
    }
}

/// Reverse proxies whose `X-Forwarded-*` headers are believed: addresses, or
/// networks in CIDR notation (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let bad = || format!("{entry:?} is not an IP address or CIDR network");
                let (ip, bits) = match entry.split_once('/') {
                    Some((ip, bits)) => (ip, Some(bits.parse::<u8>().map_err(|_| bad())?)),
                    None => (entry.as_str(), None),
                };
                let ip: IpAddr = ip.trim().parse().map_err(|_| bad())?;
                let ip = ip.to_canonical();
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits = bits.unwrap_or(max);
                if bits > max {
                    return Err(bad());
                }
                Ok((ip, bits))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// The client's address: the peer, or behind trusted proxies the
    /// right-most `X-Forwarded-For` entry that is not a trusted proxy. Each
    /// proxy appends the address it was reached from, so everything left of
    /// that entry was written by the client and proves nothing.
    pub fn client(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.into_iter().rev() {
            // A hop we cannot read ends the chain: the last trusted address stands.
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip.to_canonical();
            if !self.contains(client) {
                break;
            }
        }
        client
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*net) & mask == u128::from(ip) & mask
            }
            _ => false,
        })
    }
}

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
    /// The credential store failed.
    Internal(String),
    /// The credential store does not answer now (503 with `Retry-After`).
    Unavailable(String),
    /// Too many login attempts now: 429 with `Retry-After` (seconds).
    Throttled { retry_after: u64 },
}

impl From<MetadataError> for Denial {
    fn from(e: MetadataError) -> Self {
        if e.is_unavailable() {
            Denial::Unavailable(e.to_string())
        } else {
            Denial::Internal(e.to_string())
        }
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
}

impl Auth {
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

    /// Whether `principal` may call the ECR operation on `repo`.
    pub async fn may_call(
        &self,
        principal: &Principal,
        repo: &RepoName,
        operation: &str,
    ) -> Result<bool, MetadataError> {
        if self.mode == Mode::Open {
            return Ok(true);
        }
        let document = self.repository_policies.get(repo).await?;
        Ok(self.judge_call(principal, repo, operation, document.as_deref()))
    }

    /// The same against a given repository policy (to check one before it is set).
    pub fn judge_call(
        &self,
        principal: &Principal,
        repo: &RepoName,
        operation: &str,
        document: Option<&iam::RepositoryPolicy>,
    ) -> bool {
        if self.mode == Mode::Open {
            return true;
        }
        let by_rules = permits(
            &self.policy.allowed(principal, "repository", repo.as_str()),
            iam::rule_action(operation),
        );
        match document {
            Some(document) => document.permits(principal, &iam::policy_action(operation), by_rules),
            None => by_rules,
        }
    }

    /// Checks that the request may do everything in `needs`; an empty `needs`
    /// (the `/v2/` base) only requires a valid identity.
    pub async fn authorize(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_client_is_the_right_most_hop_no_trusted_proxy_wrote() {
        let proxies =
            TrustedProxies::parse(&["127.0.0.1".into(), "10.0.0.0/8".into(), "fd00::/8".into()])
                .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxy = ip("127.0.0.1");
        let cases: &[(&[&str], IpAddr, &str)] = &[
            (&["203.0.113.9"], proxy, "203.0.113.9"),
            // The client wrote the first entry; nginx appended the real address.
            (&["198.51.100.7, 203.0.113.9"], proxy, "203.0.113.9"),
            // Two proxies: the inner one appended the outer one's address.
            (
                &["198.51.100.7, 203.0.113.9, 10.1.2.3"],
                proxy,
                "203.0.113.9",
            ),
            (&["198.51.100.7", "203.0.113.9"], proxy, "203.0.113.9"),
            (&["fd00::5, 2001:db8::1"], proxy, "2001:db8::1"),
            // Garbage appended after a real address: the proxy that forwarded it stands.
            (&["203.0.113.9, nonsense"], proxy, "127.0.0.1"),
            (&[], proxy, "127.0.0.1"),
            // Only proxies in the chain: the left-most one.
            (&["10.0.0.1, 10.0.0.2"], proxy, "10.0.0.1"),
            // An untrusted peer's header is ignored.
            (&["198.51.100.7"], ip("192.0.2.1"), "192.0.2.1"),
            // An IPv4 peer seen on an IPv6 socket is still that IPv4 address.
            (&["198.51.100.7"], ip("::ffff:127.0.0.1"), "198.51.100.7"),
        ];
        for (values, peer, want) in cases {
            assert_eq!(
                proxies.client(&forwarded(values), *peer),
                ip(want),
                "{values:?} from {peer}"
            );
        }
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
        assert!(
            TrustedProxies::parse(&["0.0.0.0/0".into()])
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
    }
}
