//! Users and access tokens: the credential half of the metadata store. Every
//! change that must end what a credential was used for (a new password, a
//! removed user, a revoked access key) replaces the user's credential
//! generation in the same transaction.

use async_trait::async_trait;

use super::sql::{SqlMetadata, now_ms};
use super::{MetadataError, Result, area_error};

/// A user managed with `wharf user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    pub groups: Vec<String>,
}

/// A machine credential managed with `wharf token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    /// The public part of the secret, used to find the record.
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the whole secret.
    pub secret_hash: String,
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// An AWS-style access key pair of a user, for SigV4-signed API requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub id: String,
    pub user: String,
    /// The secret as sealed by [`crate::auth::SecretsKey`] (rows written by
    /// older versions hold it as is until Wharf seals them at start).
    pub sealed_secret: String,
    pub created_at_ms: i64,
}

/// What removing a user removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRemoval {
    /// Whether a user record existed (users of the configuration have none).
    pub user: bool,
    /// Access keys of the user that were deleted with it.
    pub access_keys: u64,
}

/// Why an access token could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum CredentialStoreError {
    #[error("an access token named {0:?} exists")]
    TokenNameTaken(String),
    #[error(transparent)]
    Store(#[from] MetadataError),
}

area_error!(CredentialStoreError);

#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    async fn user(&self, name: &str) -> Result<Option<UserRecord>>;
    async fn users(&self) -> Result<Vec<UserRecord>>;
    /// Creates or replaces a user; starts a new credential generation.
    async fn put_user(&self, user: &UserRecord) -> Result<()>;
    /// Deletes a user with their access keys and starts a new credential
    /// generation, so nothing issued before works for a user re-added later.
    async fn delete_user(&self, name: &str) -> Result<UserRemoval>;
    /// The current credential generation of a user ("" before any change).
    async fn credential_generation(&self, user: &str) -> Result<String>;
    /// Stores a new token; its name must be new.
    async fn put_access_token(&self, token: &AccessTokenRecord)
    -> Result<(), CredentialStoreError>;
    async fn access_token(&self, id: &str) -> Result<Option<AccessTokenRecord>>;
    async fn access_tokens(&self) -> Result<Vec<AccessTokenRecord>>;
    async fn delete_access_token(&self, name: &str) -> Result<bool>;
    async fn put_access_key(&self, key: &AccessKeyRecord) -> Result<()>;
    async fn access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>>;
    /// Keys of one user, or of everyone.
    async fn access_keys(&self, user: Option<&str>) -> Result<Vec<AccessKeyRecord>>;
    /// Deletes a key and starts a new credential generation for its user.
    async fn delete_access_key(&self, id: &str) -> Result<bool>;
    /// Replaces a key's stored secret if it is still `old`; false otherwise.
    async fn replace_access_key_secret(&self, id: &str, old: &str, new: &str) -> Result<bool>;
}

/// Starts a new credential generation for `subject` (a random value: a user
/// removed and added again never gets an old generation back).
async fn bump_generation(tx: &mut sqlx::AnyConnection, subject: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO credential_generations (subject, generation) VALUES ($1, $2)
         ON CONFLICT (subject) DO UPDATE SET generation = excluded.generation",
    )
    .bind(subject)
    .bind(uuid::Uuid::new_v4().simple().to_string())
    .execute(tx)
    .await?;
    Ok(())
}

fn json_list(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| MetadataError::Corrupt(format!("list {text:?}: {e}")))
}

fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

type TokenRow = (String, String, String, String, i64, Option<i64>);

fn token_record(row: TokenRow) -> Result<AccessTokenRecord> {
    let (id, name, secret_hash, scopes, created_at_ms, expires_at_ms) = row;
    Ok(AccessTokenRecord {
        id,
        name,
        secret_hash,
        scopes: json_list(&scopes)?,
        created_at_ms,
        expires_at_ms,
    })
}

const TOKEN_COLUMNS: &str = "id, name, secret_hash, scopes, created_at, expires_at";

#[async_trait]
impl CredentialStore for SqlMetadata {
    async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT name, password_hash, groups FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.readers)
                .await?;
        row.map(|(name, password_hash, groups)| {
            Ok(UserRecord {
                name,
                password_hash,
                groups: json_list(&groups)?,
            })
        })
        .transpose()
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT name, password_hash, groups FROM users ORDER BY name")
                .fetch_all(&self.readers)
                .await?;
        rows.into_iter()
            .map(|(name, password_hash, groups)| {
                Ok(UserRecord {
                    name,
                    password_hash,
                    groups: json_list(&groups)?,
                })
            })
            .collect()
    }

    async fn put_user(&self, user: &UserRecord) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO users (name, password_hash, groups, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, groups = excluded.groups",
        )
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(to_json(&user.groups))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        bump_generation(&mut tx, &user.name).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_user(&self, name: &str) -> Result<UserRemoval> {
        let mut tx = self.writer.begin().await?;
        let user = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let access_keys = sqlx::query("DELETE FROM access_keys WHERE \"user\" = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        bump_generation(&mut tx, name).await?;
        tx.commit().await?;
        Ok(UserRemoval {
            user: user > 0,
            access_keys,
        })
    }

    async fn credential_generation(&self, user: &str) -> Result<String> {
        // Through the writer: a change must be seen by the very next request.
        let row: Option<(String,)> =
            sqlx::query_as("SELECT generation FROM credential_generations WHERE subject = $1")
                .bind(user)
                .fetch_optional(&self.writer)
                .await?;
        Ok(row.map(|(g,)| g).unwrap_or_default())
    }

    async fn put_access_token(
        &self,
        token: &AccessTokenRecord,
    ) -> Result<(), CredentialStoreError> {
        let inserted = sqlx::query(&format!(
            "INSERT INTO access_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
        ))
        .bind(&token.id)
        .bind(&token.name)
        .bind(&token.secret_hash)
        .bind(to_json(&token.scopes))
        .bind(token.created_at_ms)
        .bind(token.expires_at_ms)
        .execute(&self.writer)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(CredentialStoreError::TokenNameTaken(token.name.clone()));
        }
        Ok(())
    }

    async fn access_token(&self, id: &str) -> Result<Option<AccessTokenRecord>> {
        // Through the writer: a revocation must be seen by the very next request.
        let row: Option<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        row.map(token_record).transpose()
    }

    async fn access_tokens(&self) -> Result<Vec<AccessTokenRecord>> {
        let rows: Vec<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens ORDER BY name"
        ))
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter().map(token_record).collect()
    }

    async fn delete_access_token(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM access_tokens WHERE name = $1")
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_access_key(&self, key: &AccessKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_keys (id, \"user\", secret, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&key.id)
        .bind(&key.user)
        .bind(&key.sealed_secret)
        .bind(key.created_at_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>> {
        // Through the writer: a revoked key must fail on the very next request.
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT id, \"user\", secret, created_at FROM access_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(key_record))
    }

    async fn access_keys(&self, user: Option<&str>) -> Result<Vec<AccessKeyRecord>> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT id, \"user\", secret, created_at FROM access_keys WHERE $1 IS NULL OR \"user\" = $2 ORDER BY \"user\", id",
        )
        .bind(user)
        .bind(user)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(key_record).collect())
    }

    async fn delete_access_key(&self, id: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let deleted: Option<(String,)> =
            sqlx::query_as("DELETE FROM access_keys WHERE id = $1 RETURNING \"user\"")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((user,)) = deleted else {
            return Ok(false);
        };
        bump_generation(&mut tx, &user).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn replace_access_key_secret(&self, id: &str, old: &str, new: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE access_keys SET secret = $1 WHERE id = $2 AND secret = $3")
            .bind(new)
            .bind(id)
            .bind(old)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

type KeyRow = (String, String, String, i64);

fn key_record((id, user, sealed_secret, created_at_ms): KeyRow) -> AccessKeyRecord {
    AccessKeyRecord {
        id,
        user,
        sealed_secret,
        created_at_ms,
    }
}
