//! Checking credentials: users (from the configuration or `wharf user`) with
//! argon2 password hashes, access tokens (`wharf token`) whose secrets are
//! random and compared by hash in constant time, and ECR login passwords.
//! Attempts are throttled and password hashing is bounded ([`super::throttle`]).
//! Every derived credential (refresh tokens, ECR login passwords) is bound to
//! the user's credential generation, which password changes, removal and key
//! revocation replace.

use std::net::IpAddr;
use std::sync::Arc;
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
use super::secrets::SecretsKey;
use super::throttle::{HashGate, Refused, Throttle};
use super::token::{RefreshBinding, RefreshClaims, TokenIssuer};
use crate::storage::{AccessTokenRecord, CredentialStore, MetadataError};

/// Access token secrets start with this, so they are recognised as such.
const TOKEN_PREFIX: &str = "wharf_";
/// How long a verified password is remembered, so that HTTP Basic on every
/// request does not pay for argon2 every time.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

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
    /// Too many attempts now (from this address, or password checks in all):
    /// refused without checking; retry after the given time.
    #[error("too many login attempts; retry in {}s", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    #[error("credential store: {0}")]
    Store(#[from] MetadataError),
}

impl From<Refused> for LoginError {
    fn from(r: Refused) -> Self {
        LoginError::Throttled {
            retry_after: r.retry_after,
        }
    }
}

/// Which credential a login proved, and so what a refresh token issued
/// after it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user's password.
    Password { user: String },
    /// An ECR login password (GetAuthorizationToken): bound to the credential
    /// generation it was issued under, valid until `expires_at` (Unix seconds).
    LoginPassword {
        user: String,
        generation: String,
        expires_at: u64,
    },
    /// An access token, by id; `expires_at` in Unix seconds.
    AccessToken { id: String, expires_at: Option<u64> },
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    pub credential: Credential,
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

/// Checks credentials against the configuration and the credential store.
pub struct Authenticator {
    store: Arc<dyn CredentialStore>,
    config_users: Vec<ConfigUser>,
    throttle: Throttle,
    hashing: HashGate,
    /// Passwords verified lately: (user, password) hash -> the password hash
    /// they matched, so a changed password is never taken from here.
    verified: quick_cache::sync::Cache<[u8; 32], (String, Instant)>,
    /// Checked against when the user does not exist, so timing does not reveal names.
    dummy_hash: String,
    /// Verifies `docker login -u AWS` passwords (ECR's GetAuthorizationToken).
    tokens: TokenIssuer,
    /// Opens the stored secrets of access keys.
    secrets: SecretsKey,
}

impl Authenticator {
    /// `hash_slots`: password checks that may run at once (0: one per core).
    pub fn new(
        store: Arc<dyn CredentialStore>,
        config_users: Vec<ConfigUser>,
        tokens: TokenIssuer,
        secrets: SecretsKey,
        hash_slots: usize,
    ) -> Self {
        let mut random = [0u8; 16];
        rand::rng().fill_bytes(&mut random);
        let dummy_hash = hash_password(&hex::encode(random)).unwrap_or_default();
        Self {
            store,
            config_users,
            throttle: Throttle::default(),
            hashing: HashGate::new(hash_slots),
            verified: quick_cache::sync::Cache::new(10_000),
            dummy_hash,
            tokens,
            secrets,
        }
    }

    /// Whether any credential exists at all (decides whether Wharf may run open).
    pub async fn has_credentials(&self) -> Result<bool, MetadataError> {
        Ok(!self.config_users.is_empty()
            || !self.store.users().await?.is_empty()
            || !self.store.access_tokens().await?.is_empty())
    }

    /// The key access-key secrets are sealed with.
    pub fn secrets(&self) -> &SecretsKey {
        &self.secrets
    }

    /// The most password checks that ever ran at once in this process.
    pub fn hashing_peak(&self) -> usize {
        self.hashing.peak()
    }

    /// Checks a user name and password (or access token secret, or ECR login
    /// password) from `client`, throttled as [`super::throttle`] describes.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<Authenticated, LoginError> {
        let result = self.throttled_login(username, password, client).await;
        if let Err(LoginError::Throttled { .. }) = result {
            crate::metrics::metrics().auth_failure("throttled");
        }
        result
    }

    async fn throttled_login(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<Authenticated, LoginError> {
        let admission = self.throttle.admit(username, client)?;
        if !admission.delay.is_zero() {
            tokio::time::sleep(admission.delay).await;
        }
        match self.check(username, password).await? {
            Some(authenticated) => {
                self.throttle.succeeded(username, client);
                Ok(authenticated)
            }
            None => {
                self.throttle.failed(username, client);
                tracing::warn!(user = username, client = %client, "failed login");
                crate::metrics::metrics().auth_failure("password");
                Err(LoginError::Invalid)
            }
        }
    }

    async fn check(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Authenticated>, LoginError> {
        // No stored user name or token id holds a NUL (PostgreSQL's text
        // cannot), and asking that store for one is an error, not a miss.
        if username.contains('\0') {
            return Ok(None);
        }
        if username == "AWS" {
            return Ok(self.check_login_password(password).await?);
        }
        if let Some(rest) = password.strip_prefix(TOKEN_PREFIX) {
            let Some((id, _)) = rest.split_once('_').filter(|(id, _)| !id.contains('\0')) else {
                return Ok(None);
            };
            return Ok(self.token_principal(id, Some(password)).await?.map(
                |(principal, expires_at)| Authenticated {
                    principal,
                    credential: Credential::AccessToken {
                        id: id.to_string(),
                        expires_at,
                    },
                },
            ));
        }
        let authenticated = |groups| Authenticated {
            principal: Principal::User {
                name: username.to_string(),
                groups,
            },
            credential: Credential::Password {
                user: username.to_string(),
            },
        };
        let cache_key: [u8; 32] = Sha256::new()
            .chain_update(username)
            .chain_update([0])
            .chain_update(password)
            .finalize()
            .into();
        let user = self.user(username).await?;
        if let (Some((matched, at)), Some((hash, groups))) = (self.verified.get(&cache_key), &user)
            && at.elapsed() < VERIFIED_TTL
            && matched == *hash
        {
            return Ok(Some(authenticated(groups.clone())));
        }
        let Some((hash, groups)) = user else {
            let (password, dummy) = (password.to_string(), self.dummy_hash.clone());
            self.hashing
                .run(move || verify_password(&password, &dummy))
                .await?;
            return Ok(None);
        };
        let (candidate, stored) = (password.to_string(), hash.clone());
        if !self
            .hashing
            .run(move || verify_password(&candidate, &stored))
            .await?
        {
            return Ok(None);
        }
        self.verified.insert(cache_key, (hash, Instant::now()));
        Ok(Some(authenticated(groups)))
    }

    /// An ECR login password: signed by us, for a user who still exists, and
    /// issued under the user's current credential generation.
    async fn check_login_password(
        &self,
        password: &str,
    ) -> Result<Option<Authenticated>, MetadataError> {
        let Ok(claims) = self.tokens.verify_login_password(password) else {
            return Ok(None);
        };
        let name = claims.registered.sub;
        let Some((_, groups)) = self.user(&name).await? else {
            return Ok(None);
        };
        let generation = self.generation(&name).await?;
        if claims.binding.generation.as_deref() != Some(generation.as_str()) {
            return Ok(None);
        }
        Ok(Some(Authenticated {
            principal: Principal::User {
                name: name.clone(),
                groups,
            },
            credential: Credential::LoginPassword {
                user: name,
                generation,
                expires_at: claims.registered.exp,
            },
        }))
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

    /// The user's current credential generation. For a user of the
    /// configuration it also changes with the password hash there.
    pub async fn generation(&self, user: &str) -> Result<String, MetadataError> {
        let stored = self.store.credential_generation(user).await?;
        Ok(match self.config_users.iter().find(|u| u.name == user) {
            Some(u) => format!("{stored}/{}", &sha256_hex(&u.password_hash)[..16]),
            None => stored,
        })
    }

    /// The principal of a live access token and when it expires (Unix
    /// seconds); with `secret`, the secret must match.
    async fn token_principal(
        &self,
        id: &str,
        secret: Option<&str>,
    ) -> Result<Option<(Principal, Option<u64>)>, MetadataError> {
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
        let expires_at = record.expires_at_ms.map(|ms| (ms / 1000).max(0) as u64);
        Ok(Some((
            Principal::Token {
                name: record.name,
                scopes,
            },
            expires_at,
        )))
    }

    /// The secret of an access key and the user it belongs to (who must still exist).
    pub async fn access_key(&self, id: &str) -> Result<Option<(String, Principal)>, MetadataError> {
        let Some(key) = self.store.access_key(id).await? else {
            return Ok(None);
        };
        let Some((_, groups)) = self.user(&key.user).await? else {
            return Ok(None);
        };
        let secret = self
            .secrets
            .open(&key.id, &key.sealed_secret)
            .map_err(|e| MetadataError::Corrupt(format!("secret of access key {id}: {e}")))?;
        Ok(Some((
            secret,
            Principal::User {
                name: key.user,
                groups,
            },
        )))
    }

    /// Seals access-key secrets that older versions stored as is; returns how many.
    pub async fn seal_stored_secrets(&self) -> Result<usize, MetadataError> {
        let mut sealed = 0;
        for key in self.store.access_keys(None).await? {
            if SecretsKey::is_sealed(&key.sealed_secret) {
                continue;
            }
            let new = self
                .secrets
                .seal(&key.id, &key.sealed_secret)
                .map_err(|e| MetadataError::Corrupt(format!("access key {}: {e}", key.id)))?;
            if self
                .store
                .replace_access_key_secret(&key.id, &key.sealed_secret, &new)
                .await?
            {
                sealed += 1;
            }
        }
        Ok(sealed)
    }

    /// What a refresh token issued after `credential` is bound to, and the
    /// latest it may expire (Unix seconds): never after the credential itself.
    pub async fn refresh_binding(
        &self,
        credential: &Credential,
    ) -> Result<(RefreshBinding, Option<u64>), MetadataError> {
        Ok(match credential {
            Credential::Password { user } => (
                RefreshBinding {
                    token_id: None,
                    generation: Some(self.generation(user).await?),
                },
                None,
            ),
            Credential::LoginPassword {
                generation,
                expires_at,
                ..
            } => (
                RefreshBinding {
                    token_id: None,
                    generation: Some(generation.clone()),
                },
                Some(*expires_at),
            ),
            Credential::AccessToken { id, expires_at } => (
                RefreshBinding {
                    token_id: Some(id.clone()),
                    generation: None,
                },
                *expires_at,
            ),
        })
    }

    /// Who a refresh token stands for now: access tokens must not be revoked
    /// or expired; users must still exist with the credential generation the
    /// token was issued under (a new password, removal or a revoked key ends it).
    pub async fn refresh(&self, claims: &RefreshClaims) -> Result<Principal, LoginError> {
        if let Some(id) = &claims.binding.token_id {
            return self
                .token_principal(id, None)
                .await?
                .map(|(principal, _)| principal)
                .ok_or(LoginError::Invalid);
        }
        let name = &claims.registered.sub;
        let Some((_, groups)) = self.user(name).await? else {
            return Err(LoginError::Invalid);
        };
        let generation = self.generation(name).await?;
        if claims.binding.generation.as_deref() != Some(generation.as_str()) {
            return Err(LoginError::Invalid);
        }
        Ok(Principal::User {
            name: name.clone(),
            groups,
        })
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
}
