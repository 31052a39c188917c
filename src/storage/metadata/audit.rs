//! The audit log: one append-only row per thing done (a push, a delete, a
//! policy change, a sign-in, a credential made or revoked, a garbage
//! collection, a lifecycle run), newest first, paged by id.

use async_trait::async_trait;

use super::Result;
use super::sql::SqlMetadata;

/// Something done, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEntry {
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    /// Who: a user or token subject, `anonymous`, or `wharf` for the
    /// server's own work (scheduled collections and lifecycle runs).
    pub actor: String,
    /// What, dotted by area: `push`, `delete`, `login`, `login.failed`,
    /// `policy.lifecycle`, `token.create`, `gc.run`, `lifecycle.run`, ...
    pub action: String,
    /// The repository it concerns, or empty.
    pub repository: String,
    /// What it was done to (a tag, a digest, a token id), or empty.
    pub target: String,
    /// A short human-readable or JSON detail, or empty.
    pub detail: String,
}

/// A recorded entry with its position in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub entry: AuditEntry,
}

/// Which entries to read: newest first, before `before` (an id from the
/// previous page), optionally only actions starting with `action` (`gc.`
/// matches `gc.run` and `gc.dry_run`) and only one repository.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub before: Option<i64>,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<()>;
    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;
    /// Forgets entries older than `before_ms`; returns how many.
    async fn prune_audit(&self, before_ms: i64) -> Result<u64>;
}

type Row = (i64, i64, String, String, String, String, String);

#[async_trait]
impl AuditStore for SqlMetadata {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
        // One statement: no lock beyond the row (nothing else depends on it).
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, repository, target, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(entry.at_ms)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.repository)
        .bind(&entry.target)
        .bind(&entry.detail)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        // Only the filters in use, so each shape has an index to walk: by
        // action or repository (then id), or by id alone. A prefix is a
        // range, compared bytewise on both databases (SQLite's BINARY,
        // PostgreSQL's "C"), with no LIKE and its case rules.
        let mut sql = String::from(
            "SELECT id, at, actor, action, repository, target, detail FROM audit_log WHERE id < $1",
        );
        let mut n = 1;
        let prefix = query.action.as_deref().filter(|p| !p.is_empty());
        if prefix.is_some() {
            sql.push_str(&format!(
                " AND action >= ${} AND action < ${}",
                n + 1,
                n + 2
            ));
            n += 2;
        }
        if query.repository.is_some() {
            sql.push_str(&format!(" AND repository = ${}", n + 1));
            n += 1;
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
        let mut q = sqlx::query_as::<_, Row>(&sql).bind(query.before.unwrap_or(i64::MAX));
        if let Some(prefix) = prefix {
            q = q.bind(prefix).bind(format!("{prefix}{}", char::MAX));
        }
        if let Some(repository) = &query.repository {
            q = q.bind(repository);
        }
        let rows: Vec<Row> = q
            .bind(i64::from(query.limit.clamp(1, 1000)))
            .fetch_all(&self.readers)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, at_ms, actor, action, repository, target, detail)| AuditRecord {
                    id,
                    entry: AuditEntry {
                        at_ms,
                        actor,
                        action,
                        repository,
                        target,
                        detail,
                    },
                },
            )
            .collect())
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<u64> {
        let removed = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before_ms)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(removed)
    }
}
