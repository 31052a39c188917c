//! Operator commands behind `wharf user` and `wharf token` and the
//! console's operator pages: they work on the credential store directly, so
//! they run while the server runs too. Each change is recorded in the audit
//! log as its [`By`]'s, here, whoever calls.

use std::time::Duration;

use crate::audit::Audit;
use crate::auth::{Scope, SecretsKey, hash_password, new_access_token};
use crate::storage::{
    AccessKeyRecord, CredentialStore, CredentialStoreError, MetadataError, UserRecord, UserRemoval,
};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("no {0} named {1:?}")]
    NotFound(&'static str, String),
    #[error(transparent)]
    Store(#[from] MetadataError),
}

/// Who makes a change, and the audit log it is recorded in.
#[derive(Debug, Clone, Copy)]
pub struct By<'a> {
    pub audit: &'a Audit,
    /// The actor (see [`crate::audit`]).
    pub actor: &'a str,
}

impl By<'static> {
    /// A change recorded nowhere: for tests and tools without an audit log.
    pub fn unrecorded() -> By<'static> {
        static OFF: std::sync::OnceLock<Audit> = std::sync::OnceLock::new();
        By {
            audit: OFF.get_or_init(Audit::default),
            actor: "",
        }
    }
}

impl By<'_> {
    async fn record(&self, action: &str, target: &str, detail: &str) {
        self.audit
            .record(self.actor, action, "", target, detail)
            .await;
    }
}

fn valid_name(name: &str) -> Result<(), AdminError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "{name:?}: names are 1-64 of letters, digits and . _ - @"
        )))
    }
}

fn hashed(password: &str) -> Result<String, AdminError> {
    if password.len() < 8 {
        return Err(AdminError::Invalid(
            "passwords need at least 8 characters".into(),
        ));
    }
    hash_password(password).map_err(AdminError::Invalid)
}

/// Creates a user, or replaces the password and groups of an existing one.
pub async fn add_user(
    store: &dyn CredentialStore,
    name: &str,
    password: &str,
    groups: Vec<String>,
    by: By<'_>,
) -> Result<(), AdminError> {
    valid_name(name)?;
    let password_hash = hashed(password)?;
    let detail = format!("groups={}", groups.join(","));
    store
        .put_user(&UserRecord {
            name: name.into(),
            password_hash,
            groups,
        })
        .await?;
    by.record("user.add", name, &detail).await;
    Ok(())
}

pub async fn set_password(
    store: &dyn CredentialStore,
    name: &str,
    password: &str,
    by: By<'_>,
) -> Result<(), AdminError> {
    let mut user = store
        .user(name)
        .await?
        .ok_or_else(|| AdminError::NotFound("user", name.into()))?;
    user.password_hash = hashed(password)?;
    store.put_user(&user).await?;
    by.record("user.password", name, "").await;
    Ok(())
}

/// Removes a user with their access keys; everything issued to them (refresh
/// tokens, ECR login passwords) stops working, also if the name is added
/// again. For a user declared in the configuration this revokes what the
/// store holds for them (remove the declaration from the file as well).
pub async fn remove_user(
    store: &dyn CredentialStore,
    name: &str,
    by: By<'_>,
) -> Result<UserRemoval, AdminError> {
    let removed = store.delete_user(name).await?;
    if removed.user || removed.access_keys > 0 {
        let detail = format!("access_keys={}", removed.access_keys);
        by.record("user.remove", name, &detail).await;
        Ok(removed)
    } else {
        Err(AdminError::NotFound("user", name.into()))
    }
}

/// Parses `30d`, `12h`, `45m`, `90s`, or `never`.
pub fn parse_duration(text: &str) -> Result<Option<Duration>, AdminError> {
    if text == "never" {
        return Ok(None);
    }
    let bad = || {
        AdminError::Invalid(format!(
            "{text:?}: expected a number with d, h, m or s, or never"
        ))
    };
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "d" => n * 86_400,
        "h" => n * 3_600,
        "m" => n * 60,
        "s" => n,
        _ => return Err(bad()),
    };
    Ok(Some(Duration::from_secs(seconds)))
}

/// Creates an access token and returns its secret, shown once.
pub async fn create_token(
    store: &dyn CredentialStore,
    name: &str,
    scopes: &[String],
    expires: Option<Duration>,
    by: By<'_>,
) -> Result<String, AdminError> {
    valid_name(name)?;
    if scopes.is_empty() {
        return Err(AdminError::Invalid(
            "an access token needs at least one --scope".into(),
        ));
    }
    let scopes = scopes
        .iter()
        .map(|s| {
            s.parse::<Scope>()
                .map_err(|e| AdminError::Invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (secret, record) = new_access_token(name, &scopes, expires);
    store.put_access_token(&record).await.map_err(|e| match e {
        e @ CredentialStoreError::TokenNameTaken(_) => AdminError::Invalid(e.to_string()),
        CredentialStoreError::Store(e) => e.into(),
    })?;
    let expiry = expires.map_or("never".to_string(), |d| format!("{}s", d.as_secs()));
    let detail = format!("scopes={} expires={expiry}", record.scopes.join(" "));
    by.record("token.create", name, &detail).await;
    Ok(secret)
}

pub async fn revoke_token(
    store: &dyn CredentialStore,
    name: &str,
    by: By<'_>,
) -> Result<(), AdminError> {
    if store.delete_access_token(name).await? {
        by.record("token.revoke", name, "").await;
        Ok(())
    } else {
        Err(AdminError::NotFound("access token", name.into()))
    }
}

/// Creates an AWS-style access key pair for `user` (from the store, or one of
/// `config_users`), its secret stored sealed with `secrets`; returns (access
/// key id, secret access key), shown once.
pub async fn create_access_key(
    store: &dyn CredentialStore,
    secrets: &SecretsKey,
    user: &str,
    config_users: &[String],
    by: By<'_>,
) -> Result<(String, String), AdminError> {
    if store.user(user).await?.is_none() && !config_users.iter().any(|u| u == user) {
        return Err(AdminError::NotFound("user", user.into()));
    }
    let (id, secret) = crate::auth::new_access_key();
    let sealed_secret = secrets
        .seal(&id, &secret)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    let created_at_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    store
        .put_access_key(&AccessKeyRecord {
            id: id.clone(),
            user: user.into(),
            sealed_secret,
            created_at_ms,
        })
        .await?;
    by.record("access_key.create", &id, &format!("user={user}"))
        .await;
    Ok((id, secret))
}

pub async fn revoke_access_key(
    store: &dyn CredentialStore,
    id: &str,
    by: By<'_>,
) -> Result<(), AdminError> {
    if store.delete_access_key(id).await? {
        by.record("access_key.delete", id, "").await;
        Ok(())
    } else {
        Err(AdminError::NotFound("access key", id.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            parse_duration("12h").unwrap(),
            Some(Duration::from_secs(12 * 3_600))
        );
        assert_eq!(parse_duration("never").unwrap(), None);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5w").is_err());
    }
}
