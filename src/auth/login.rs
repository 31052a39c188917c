//! Checking credentials: users (from the configuration or `wharf user`) with
//! argon2 password hashes, and access tokens (`wharf token`) whose secrets are
//! random and compared by hash in constant time. Failed attempts slow down
//! further attempts for the same user and the same client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::policy::Principal;
use super::scope::Scope;
use super::token::{RefreshClaims, TokenIssuer};
use crate::storage::{AccessTokenRecord, CredentialStore, MetadataError};

/// Access token secrets start with this, so they are recognised as such.
const TOKEN_PREFIX: &str = "wharf_";
/// How long a verified password is remembered, so that HTTP Basic on every
/// request does not pay for argon2 every time.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
const THROTTLE_BASE: Duration = Duration::from_millis(200);
const THROTTLE_MAX: Duration = Duration::from_secs(5);
const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
const THROTTLE_ENTRIES: usize = 10_000;

/// A user declared in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigUser {
    pub name: String,
    /// argon2 PHC string, as `wharf user hash` prints it.
    pub password_hash: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid credentials")]
    Invalid,
    #[error("credential store: {0}")]
    Store(#[from] MetadataError),
}

/// Hashes a password for storage (argon2id, a random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn sha256_hex(data: &str) -> String {
    hex::encode(Sha256::digest(data.as_bytes()))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Makes a new access token: the secret to show once, and the record to store.
pub fn new_access_token(
    name: &str,
    scopes: &[Scope],
    expires_in: Option<Duration>,
) -> (String, AccessTokenRecord) {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let id = hex::encode(id);
    let full = format!("{TOKEN_PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret));
    let created = now_ms();
    let record = AccessTokenRecord {
        id,
        name: name.to_string(),
        secret_hash: sha256_hex(&full),
        scopes: scopes.iter().map(ToString::to_string).collect(),
        created_at_ms: created,
        expires_at_ms: expires_in.map(|d| created + d.as_millis() as i64),
    };
    (full, record)
}

/// A new AWS-style key pair: `AKIA` and 16 base32 characters, and a
/// 40-character secret.
pub fn new_access_key() -> (String, String) {
    const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut id_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut id_bytes);
    let id: String = id_bytes
        .iter()
        .map(|b| BASE32[(*b as usize) % 32] as char)
        .collect();
    let mut secret = [0u8; 30];
    rand::rng().fill_bytes(&mut secret);
    (
        format!("AKIA{id}"),
        base64::engine::general_purpose::STANDARD.encode(secret),
    )
}

/// Slows down repeated failures per key (user name, client address).
#[derive(Default)]
struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    fn delay(&self, keys: &[String]) -> Duration {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| failures.get(k))
            .filter(|(_, last)| last.elapsed() < THROTTLE_WINDOW)
            .map(|(n, _)| {
                THROTTLE_BASE
                    .saturating_mul(1 << (*n).min(8).saturating_sub(1))
                    .min(THROTTLE_MAX)
            })
            .max()
            .unwrap_or_default()
    }

    fn failed(&self, keys: &[String]) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > THROTTLE_ENTRIES {
            failures.retain(|_, (_, last)| last.elapsed() < THROTTLE_WINDOW);
        }
        for k in keys {
            let entry = failures.entry(k.clone()).or_insert((0, Instant::now()));
            entry.0 = entry.0.saturating_add(1);
            entry.1 = Instant::now();
        }
    }

    fn succeeded(&self, user_key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user_key);
    }
}

/// Checks credentials against the configuration and the credential store.
pub struct Authenticator {
    store: Arc<dyn CredentialStore>,
    config_users: Vec<ConfigUser>,
    throttle: Throttle,
    verified: quick_cache::sync::Cache<[u8; 32], (Principal, Instant)>,
    /// Checked against when the user does not exist, so timing does not reveal names.
    dummy_hash: String,
    /// Verifies `docker login -u AWS` passwords (ECR's GetAuthorizationToken).
    tokens: TokenIssuer,
}

impl Authenticator {
    pub fn new(
        store: Arc<dyn CredentialStore>,
        config_users: Vec<ConfigUser>,
        tokens: TokenIssuer,
    ) -> Self {
        let mut random = [0u8; 16];
        rand::rng().fill_bytes(&mut random);
        let dummy_hash = hash_password(&hex::encode(random)).unwrap_or_default();
        Self {
            store,
            config_users,
            throttle: Throttle::default(),
            verified: quick_cache::sync::Cache::new(10_000),
            dummy_hash,
            tokens,
        }
    }

    /// Whether any credential exists at all (decides whether Wharf may run open).
    pub async fn has_credentials(&self) -> Result<bool, MetadataError> {
        Ok(!self.config_users.is_empty()
            || !self.store.users().await?.is_empty()
            || !self.store.access_tokens().await?.is_empty())
    }

    /// Checks a user name and password (or access token secret).
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<Principal, LoginError> {
        let user_key = format!("user:{username}");
        let keys = [user_key.clone(), format!("ip:{client}")];
        let delay = self.throttle.delay(&keys);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match self.check(username, password).await? {
            Some(principal) => {
                self.throttle.succeeded(&user_key);
                Ok(principal)
            }
            None => {
                self.throttle.failed(&keys);
                tracing::warn!(user = username, client = %client, "failed login");
                crate::metrics::metrics().auth_failure("password");
                Err(LoginError::Invalid)
            }
        }
    }

    async fn check(&self, username: &str, password: &str) -> Result<Option<Principal>, LoginError> {
        if username == "AWS" {
            let Ok(claims) = self.tokens.verify_login_password(password) else {
                return Ok(None);
            };
            let user = self.user(&claims.registered.sub).await?;
            return Ok(user.map(|(_, groups)| Principal::User {
                name: claims.registered.sub,
                groups,
            }));
        }
        if let Some(rest) = password.strip_prefix(TOKEN_PREFIX) {
            let Some((id, _)) = rest.split_once('_') else {
                return Ok(None);
            };
            return Ok(self.token_principal(id, Some(password)).await?);
        }
        let cache_key: [u8; 32] = Sha256::new()
            .chain_update(username)
            .chain_update([0])
            .chain_update(password)
            .finalize()
            .into();
        if let Some((principal, at)) = self.verified.get(&cache_key)
            && at.elapsed() < VERIFIED_TTL
        {
            return Ok(Some(principal));
        }
        let Some((hash, groups)) = self.user(username).await? else {
            let (password, dummy) = (password.to_string(), self.dummy_hash.clone());
            let _ = tokio::task::spawn_blocking(move || verify_password(&password, &dummy)).await;
            return Ok(None);
        };
        let candidate = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&candidate, &hash))
            .await
            .unwrap_or(false);
        if !ok {
            return Ok(None);
        }
        let principal = Principal::User {
            name: username.to_string(),
            groups,
        };
        self.verified
            .insert(cache_key, (principal.clone(), Instant::now()));
        Ok(Some(principal))
    }

    async fn user(&self, name: &str) -> Result<Option<(String, Vec<String>)>, MetadataError> {
        if let Some(u) = self.config_users.iter().find(|u| u.name == name) {
            return Ok(Some((u.password_hash.clone(), u.groups.clone())));
        }
        Ok(self
            .store
            .user(name)
            .await?
            .map(|u| (u.password_hash, u.groups)))
    }

    /// The principal of a live access token; with `secret`, the secret must match.
    async fn token_principal(
        &self,
        id: &str,
        secret: Option<&str>,
    ) -> Result<Option<Principal>, MetadataError> {
        let Some(record) = self.store.access_token(id).await? else {
            return Ok(None);
        };
        if let Some(secret) = secret {
            let matches: bool = sha256_hex(secret)
                .as_bytes()
                .ct_eq(record.secret_hash.as_bytes())
                .into();
            if !matches {
                return Ok(None);
            }
        }
        if record.expires_at_ms.is_some_and(|at| at <= now_ms()) {
            return Ok(None);
        }
        let scopes = record
            .scopes
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        Ok(Some(Principal::Token {
            name: record.name,
            scopes,
        }))
    }

    /// The secret of an access key and the user it belongs to (who must still exist).
    pub async fn access_key(&self, id: &str) -> Result<Option<(String, Principal)>, MetadataError> {
        let Some(key) = self.store.access_key(id).await? else {
            return Ok(None);
        };
        Ok(self.user(&key.user).await?.map(|(_, groups)| {
            (
                key.secret,
                Principal::User {
                    name: key.user,
                    groups,
                },
            )
        }))
    }

    /// Who a refresh token stands for now: users must still exist, access
    /// tokens must not be revoked or expired.
    pub async fn refresh(&self, claims: &RefreshClaims) -> Result<Principal, LoginError> {
        if let Some(id) = &claims.token_id {
            return self
                .token_principal(id, None)
                .await?
                .ok_or(LoginError::Invalid);
        }
        match self.user(&claims.registered.sub).await? {
            Some((_, groups)) => Ok(Principal::User {
                name: claims.registered.sub.clone(),
                groups,
            }),
            None => Err(LoginError::Invalid),
        }
    }

    /// The access token id behind a principal, for its refresh token.
    pub async fn token_id(&self, principal: &Principal) -> Result<Option<String>, MetadataError> {
        let Principal::Token { name, .. } = principal else {
            return Ok(None);
        };
        Ok(self
            .store
            .access_tokens()
            .await?
            .into_iter()
            .find(|t| &t.name == name)
            .map(|t| t.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("wrong", &h));
    }

    #[test]
    fn throttle_grows_and_resets() {
        let t = Throttle::default();
        let keys = ["user:a".to_string(), "ip:1.2.3.4".to_string()];
        assert!(t.delay(&keys).is_zero());
        t.failed(&keys);
        t.failed(&keys);
        assert_eq!(t.delay(&keys), THROTTLE_BASE * 2);
        for _ in 0..20 {
            t.failed(&keys);
        }
        assert_eq!(t.delay(&keys), THROTTLE_MAX);
        t.succeeded("user:a");
        assert_eq!(t.delay(&keys[..1]), Duration::ZERO);
        assert_eq!(
            t.delay(&keys[1..]),
            THROTTLE_MAX,
            "the address stays slowed down"
        );
    }
}
