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

/// `LIKE` pattern for a prefix: its own wildcards are escaped.
fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

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
        // Unused filters compare with themselves, so one statement (and one
        // cached plan) serves every combination.
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at, actor, action, repository, target, detail FROM audit_log
             WHERE id < $1
               AND ($2 = '' OR action LIKE $3 ESCAPE '\\')
               AND ($4 = 0 OR repository = $5)
             ORDER BY id DESC LIMIT $6",
        )
        .bind(query.before.unwrap_or(i64::MAX))
        .bind(query.action.as_deref().unwrap_or(""))
        .bind(prefix_pattern(query.action.as_deref().unwrap_or("")))
        .bind(i64::from(query.repository.is_some()))
        .bind(query.repository.as_deref().unwrap_or(""))
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

#[cfg(test)]
mod tests {
    use super::prefix_pattern;

    #[test]
    fn prefixes_match_only_themselves() {
        assert_eq!(prefix_pattern("gc."), "gc.%");
        assert_eq!(prefix_pattern("a_b%"), "a\\_b\\%%");
    }
}
