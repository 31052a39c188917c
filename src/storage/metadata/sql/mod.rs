//! The SQL implementation of the metadata areas, for SQLite (one process, the
//! default) and PostgreSQL (shared by replicas). Both run the same statements
//! through sqlx's `Any` driver; the few places where the dialects differ ask
//! [`Dialect`]. Each database has its own migrations.
//!
//! This file holds the connection, the dialect and the write transaction;
//! one file per area implements that area's trait, sharing the helpers here.
//!
//! Writes follow SQLite's model on both: SQLite has one writer connection
//! (it serializes writers anyway; one connection avoids lock upgrades failing
//! with SQLITE_BUSY) and a pool of readers. On PostgreSQL every write
//! transaction takes advisory locks instead (see [`Scope`]): writes to one
//! repository are serialized across all replicas, garbage collection excludes
//! every other writer, and reads never wait.
//!
//! Statements are written with `$n` placeholders, which both databases accept
//! (sqlx's `QueryBuilder` would write `?` for `Any`, which PostgreSQL refuses);
//! lists of values go through [`placeholders`], in statements that are not
//! kept prepared (each list length is another statement, which would crowd
//! the fixed ones out of a connection's statement cache). Integers are read as `i64`,
//! which sqlx decodes from any integer width, and flags are 0/1 integers.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, Executor};
use sqlx::{AnyConnection, AnyPool};

mod blobs;
mod browse;
mod gc;
mod lifecycle;
mod maintenance;
mod manifests;
mod repositories;
#[cfg(test)]
mod tests;
mod uploads;

use super::{MetadataError, Result};
use crate::oci::{Digest, RepoName};

/// Which SQL database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Where the metadata lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file, with this many reader connections.
    Sqlite {
        path: std::path::PathBuf,
        readers: u32,
    },
    /// A PostgreSQL URL (`postgres://user:password@host/db`), with a pool of this size.
    Postgres { url: String, connections: u32 },
}

/// What a write transaction may touch, which decides its locks on PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope<'a> {
    /// One repository's manifests, tags and blob links (and shared blob records).
    Repository(&'a RepoName),
    /// The task runner's records (and the image pins they hold).
    Runner,
    /// Anything at all: garbage collection and quarantine, which must see no
    /// write in progress anywhere.
    Everything,
}

/// Advisory lock keys; repository and runner locks are taken under a shared
/// hold of `EVERYTHING`, which [`Scope::Everything`] holds exclusively.
const LOCK_EVERYTHING: i64 = 0x5748_4152_4600_0001;
const LOCK_RUNNER: i64 = 0x5748_4152_4600_0002;

/// A stable lock key for a name, the same in every replica.
fn lock_key(name: &str) -> i64 {
    let hash = Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash[..8]);
    i64::from_be_bytes(bytes)
}

pub struct SqlMetadata {
    pub(super) writer: AnyPool,
    pub(super) readers: AnyPool,
    pub(super) dialect: Dialect,
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn digest(s: &str) -> Result<Digest> {
    Digest::from_str(s).map_err(|e| MetadataError::Corrupt(format!("digest {s:?}: {e}")))
}

fn repo_name(s: &str) -> Result<RepoName> {
    s.parse()
        .map_err(|e| MetadataError::Corrupt(format!("{e}")))
}

/// Values are bound this many at a time, well below both databases' limits
/// on parameters per statement (SQLite 32766, PostgreSQL 65535).
const BATCH: usize = 500;

/// `count` comma-separated placeholders numbered from `$first`, each given
/// to `shape` (e.g. `|n| format!("($1, ${n})")` for rows sharing `$1`).
fn placeholders(first: usize, count: usize, shape: impl Fn(usize) -> String) -> String {
    (first..first + count)
        .map(shape)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A repository name and a digest, as rows that name a manifest or a link.
#[derive(sqlx::FromRow)]
struct RepoDigestRow {
    repository: String,
    digest: String,
}

impl RepoDigestRow {
    fn parse(self) -> Result<(RepoName, Digest)> {
        Ok((repo_name(&self.repository)?, digest(&self.digest)?))
    }
}

/// A blob digest and its size.
#[derive(sqlx::FromRow)]
struct BlobRow {
    digest: String,
    size: i64,
}

impl BlobRow {
    fn parse(self) -> Result<(Digest, u64)> {
        Ok((digest(&self.digest)?, self.size as u64))
    }
}

/// A `sqlite://` URL for a file path (sqlx's `Any` driver connects by URL).
fn sqlite_url(path: &Path, mode: &str) -> String {
    let path = path.to_string_lossy();
    let mut escaped = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' | '?' | '#' => escaped.push_str(&format!("%{:02X}", c as u32)),
            c => escaped.push(c),
        }
    }
    format!("sqlite://{escaped}?mode={mode}")
}

impl SqlMetadata {
    /// Connects (creating a SQLite file if needed) and applies migrations.
    pub async fn open(database: &Database) -> Result<Self> {
        sqlx::any::install_default_drivers();
        match database {
            Database::Sqlite { path, readers } => Self::open_sqlite(path, *readers).await,
            Database::Postgres { url, connections } => Self::open_postgres(url, *connections).await,
        }
    }

    async fn open_sqlite(path: &Path, readers: u32) -> Result<Self> {
        // FULL: an acknowledged push survives a crash or power loss. A page
        // cache of 1 MiB per connection (SQLite's default is 2 MiB) bounds
        // the nine connections' share of resident memory; the OS caches the
        // file as well.
        const PRAGMAS: &str = "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; \
                               PRAGMA busy_timeout = 10000; PRAGMA cache_size = -1024;";
        // Private from the start: SQLite gives the -wal and -shm files the
        // database file's mode.
        crate::storage::private::create_file(path).map_err(sqlx::Error::Io)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            crate::storage::private::tighten(Path::new(&side), 0o600).map_err(sqlx::Error::Io)?;
        }
        let writer = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // The busy timeout first: another process (a CLI command
                    // beside the server) may hold the lock the mode needs.
                    conn.execute(PRAGMAS).await?;
                    conn.execute("PRAGMA journal_mode = WAL;").await?;
                    Ok(())
                })
            })
            .connect(&sqlite_url(path, "rwc"))
            .await?;
        sqlx::migrate!("./src/storage/metadata/migrations/sqlite")
            .run(&writer)
            .await?;
        let readers = AnyPoolOptions::new()
            .max_connections(readers.max(1))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(PRAGMAS).await?;
                    Ok(())
                })
            })
            .connect(&sqlite_url(path, "ro"))
            .await?;
        Ok(Self {
            writer,
            readers,
            dialect: Dialect::Sqlite,
        })
    }

    async fn open_postgres(url: &str, connections: u32) -> Result<Self> {
        let pool = AnyPoolOptions::new()
            .max_connections(connections.max(2))
            // Fail fast when the database is away: requests answer 503, not hang.
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        // Replicas starting together: the migrator locks the database itself.
        sqlx::migrate!("./src/storage/metadata/migrations/postgres")
            .run(&pool)
            .await?;
        Ok(Self {
            writer: pool.clone(),
            readers: pool,
            dialect: Dialect::Postgres,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A value every replica shares (e.g. the token signing key): the one
    /// stored under `key`, or `candidate`, stored now, when there is none.
    pub async fn shared_value(&self, key: &str, candidate: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO shared_values (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(key)
        .bind(candidate)
        .execute(&self.writer)
        .await?;
        let value: String = sqlx::query_scalar("SELECT value FROM shared_values WHERE key = $1")
            .bind(key)
            .fetch_one(&self.writer)
            .await?;
        Ok(value)
    }
}

async fn ensure_repository(tx: &mut AnyConnection, repo: &RepoName, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(repo.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn repository_exists(
    conn: impl sqlx::Executor<'_, Database = Any>,
    repo: &RepoName,
) -> Result<bool> {
    let row: Option<i64> = sqlx::query_scalar("SELECT 1 FROM repositories WHERE name = $1")
        .bind(repo.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// Which per-repository policy document a write is about; the table names are ours, never input.
#[derive(Clone, Copy)]
enum PolicyTable {
    Lifecycle,
    Repository,
}

impl PolicyTable {
    fn name(self) -> &'static str {
        match self {
            PolicyTable::Lifecycle => "lifecycle_policies",
            PolicyTable::Repository => "repository_policies",
        }
    }
}

impl SqlMetadata {
    /// A write transaction. On SQLite it takes the write lock at once, so it
    /// never fails half-way on a lock upgrade when another process (`wharf gc`)
    /// writes; on PostgreSQL it takes the advisory locks of `scope`, held until
    /// it ends, which gives the same guarantees between replicas.
    pub(super) async fn write(&self, scope: Scope<'_>) -> Result<sqlx::Transaction<'static, Any>> {
        if self.dialect == Dialect::Sqlite {
            return Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?);
        }
        let mut tx = self.writer.begin().await?;
        let exclusive = match scope {
            Scope::Everything => None,
            Scope::Runner => Some(LOCK_RUNNER),
            Scope::Repository(repo) => Some(lock_key(repo.as_str())),
        };
        match exclusive {
            None => {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(LOCK_EVERYTHING)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(key) => {
                sqlx::query("SELECT pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock($2)")
                    .bind(LOCK_EVERYTHING)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok(tx)
    }

    /// Stores or deletes a repository's policy text; false when the repository does not exist.
    async fn set_policy_text(
        &self,
        table: PolicyTable,
        repo: &RepoName,
        text: Option<&str>,
    ) -> Result<bool> {
        let mut tx = self.write(Scope::Repository(repo)).await?;
        if !repository_exists(&mut *tx, repo).await? {
            return Ok(false);
        }
        let table = table.name();
        match text {
            Some(text) => {
                sqlx::query(&format!(
                    "INSERT INTO {table} (repository, text) VALUES ($1, $2)
                     ON CONFLICT (repository) DO UPDATE SET text = excluded.text"
                ))
                .bind(repo.as_str())
                .bind(text)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(&format!("DELETE FROM {table} WHERE repository = $1"))
                    .bind(repo.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Links a blob to a repository; linking again restarts the link's grace period.
async fn link(tx: &mut AnyConnection, repo: &RepoName, digest: &Digest, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO repository_blobs (repository, digest, linked_at) VALUES ($1, $2, $3)
         ON CONFLICT (repository, digest) DO UPDATE SET linked_at = excluded.linked_at",
    )
    .bind(repo.as_str())
    .bind(digest.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn ensure_blob(tx: &mut AnyConnection, digest: &Digest, size: u64, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(digest.to_string())
    .bind(size as i64)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
