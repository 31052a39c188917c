//! [`MaintenanceMetadata`] in SQL: leases (PostgreSQL advisory locks; SQLite
//! has one process), garbage collection's transactions (the statements are in
//! `gc`) and the database's self-checks.

use async_trait::async_trait;

use super::{Dialect, Scope, SqlMetadata, gc, lock_key};
use crate::oci::Digest;
use crate::storage::metadata::{Lease, MaintenanceMetadata, Placement, Result, SweepPolicy, Swept};

#[async_trait]
impl MaintenanceMetadata for SqlMetadata {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    async fn try_lease(&self, job: &str) -> Result<Option<Lease>> {
        if self.dialect == Dialect::Sqlite {
            return Ok(Some(Lease { connection: None }));
        }
        // A session lock on a connection of its own, outside the pool: it
        // lasts as long as that session, and dies with it.
        let mut connection = self.writer.acquire().await?.detach();
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lock_key(&format!("job:{job}")))
            .fetch_one(&mut connection)
            .await?;
        Ok(held.then_some(Lease {
            connection: Some(connection),
        }))
    }

    async fn claim_run(&self, job: &str, every_ms: i64, now_ms: i64) -> Result<Option<Lease>> {
        let Some(lease) = self.try_lease(job).await? else {
            return Ok(None);
        };
        let key = format!("last_run:{job}");
        let last: Option<String> =
            sqlx::query_scalar("SELECT value FROM shared_values WHERE key = $1")
                .bind(&key)
                .fetch_optional(&self.writer)
                .await?;
        // A tenth of slack: replicas' timers drift against each other.
        let last = last.and_then(|v| v.parse::<i64>().ok());
        if last.is_some_and(|last| now_ms - last < every_ms - every_ms / 10) {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO shared_values (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(&key)
        .bind(now_ms.to_string())
        .execute(&self.writer)
        .await?;
        Ok(Some(lease))
    }

    async fn sweep(&self, policy: &SweepPolicy, dry_run: bool) -> Result<Swept> {
        let mut tx = self.write(Scope::Everything).await?;
        let swept = gc::sweep(&mut tx, policy).await?;
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(swept)
    }

    async fn remove_blob(&self, digest: &Digest, remove: Placement<'_>) -> Result<bool> {
        let mut tx = self.write(Scope::Everything).await?;
        if !gc::forget_blob(&mut tx, digest).await? {
            return Ok(false);
        }
        remove.await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn check_integrity(&self) -> Result<Vec<String>> {
        if self.dialect == Dialect::Postgres {
            // PostgreSQL enforces its constraints on every write and checksums its pages itself.
            return Ok(Vec::new());
        }
        #[derive(sqlx::FromRow)]
        struct ForeignKeyProblem {
            table: String,
            rowid: i64,
            parent: String,
        }
        let mut problems: Vec<String> = sqlx::query_scalar::<_, String>("PRAGMA quick_check")
            .fetch_all(&self.readers)
            .await?
            .into_iter()
            .filter(|line| line != "ok")
            .collect();
        let broken: Vec<ForeignKeyProblem> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&self.readers)
            .await?;
        problems.extend(broken.into_iter().map(|p| {
            format!(
                "{} row {} points at a missing {} row",
                p.table, p.rowid, p.parent
            )
        }));
        Ok(problems)
    }
}
