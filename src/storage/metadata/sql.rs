//! The SQL implementation of [`MetadataStore`], for SQLite (one process, the
//! default) and PostgreSQL (shared by replicas). Both run the same statements
//! through sqlx's `Any` driver; the few places where the dialects differ ask
//! [`Dialect`]. Each database has its own migrations.
//!
//! Writes follow SQLite's model on both: SQLite has one writer connection
//! (it serializes writers anyway; one connection avoids lock upgrades failing
//! with SQLITE_BUSY) and a pool of readers. On PostgreSQL every write
//! transaction takes advisory locks instead (see [`Scope`]): writes to one
//! repository are serialized across all replicas, garbage collection excludes
//! every other writer, and reads never wait.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, Executor};
use sqlx::{AnyConnection, AnyPool};
use uuid::Uuid;

mod gc;

use super::{
    ImageRecord, Lease, LifecycleRecord, ManifestRecord, MetadataError, MetadataStore, NewManifest,
    Page, Placement, PreviewRecord, RepositoryDeletion, RepositoryRecord, RepositoryUsage, Result,
    SweepPolicy, Swept, UploadProgress, UploadRecord,
};
use crate::oci::{Digest, Reference, RepoName, Tag};

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

type ManifestRow = (String, String, i64, Option<String>, Option<String>, i64);

const MANIFEST_COLUMNS: &str =
    "m.digest, m.media_type, m.size, m.artifact_type, m.annotations, m.pushed_at";

fn manifest_record(row: ManifestRow) -> Result<ManifestRecord> {
    let (d, media_type, size, artifact_type, annotations, pushed_at_ms) = row;
    Ok(ManifestRecord {
        digest: digest(&d)?,
        media_type,
        size: size as u64,
        artifact_type,
        annotations,
        pushed_at_ms,
    })
}

type RepositoryRow = (String, i64, String, String);

const REPOSITORY_COLUMNS: &str = "name, created_at, tag_mutability, mutability_filters";

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
    async fn repository_record(
        &self,
        (name, created_at_ms, tag_mutability, filters): RepositoryRow,
    ) -> Result<RepositoryRecord> {
        let tags: Vec<(String, String)> = sqlx::query_as(
            "SELECT key, value FROM repository_tags WHERE repository = $1 ORDER BY key",
        )
        .bind(&name)
        .fetch_all(&self.readers)
        .await?;
        Ok(RepositoryRecord {
            name: name
                .parse()
                .map_err(|e| MetadataError::Corrupt(format!("{e}")))?,
            created_at_ms,
            tag_mutability,
            mutability_filters: serde_json::from_str(&filters).map_err(|e| {
                MetadataError::Corrupt(format!("mutability filters {filters:?}: {e}"))
            })?,
            tags,
        })
    }

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
                    conn.execute("PRAGMA journal_mode = WAL;").await?;
                    conn.execute(PRAGMAS).await?;
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
        let (value,): (String,) = sqlx::query_as("SELECT value FROM shared_values WHERE key = $1")
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
    let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM repositories WHERE name = $1")
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

#[async_trait]
impl MetadataStore for SqlMetadata {
    async fn repo_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let size: Option<(i64,)> = sqlx::query_as(
            "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
             WHERE rb.repository = $1 AND rb.digest = $2 AND b.quarantined = 0",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.readers)
        .await?;
        Ok(size.map(|(s,)| s as u64))
    }

    async fn link_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        place: Placement<'_>,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write(Scope::Repository(repo)).await?;
        ensure_repository(&mut tx, repo, now).await?;
        ensure_blob(&mut tx, digest, size, now).await?;
        link(&mut tx, repo, digest, now).await?;
        // The write lock is held: garbage collection cannot remove these bytes now.
        place.await?;
        // Content pushed again heals a quarantined blob.
        sqlx::query("UPDATE blobs SET quarantined = 0 WHERE digest = $1 AND quarantined = 1")
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn usage(&self) -> Result<Vec<RepositoryUsage>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "WITH refs AS (
                 SELECT repository, digest FROM repository_blobs
                 UNION
                 SELECT repository, digest FROM manifests
             ),
             owners AS (SELECT digest, COUNT(*) AS n FROM refs GROUP BY digest)
             SELECT r.name,
                    CAST(COALESCE(SUM(b.size), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN o.n = 1 THEN b.size ELSE 0 END), 0) AS BIGINT)
             FROM repositories r
             LEFT JOIN refs f ON f.repository = r.name
             LEFT JOIN blobs b ON b.digest = f.digest
             LEFT JOIN owners o ON o.digest = f.digest
             GROUP BY r.name ORDER BY r.name",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter()
            .map(|(name, logical, unique)| {
                Ok(RepositoryUsage {
                    repo: name
                        .parse()
                        .map_err(|e| MetadataError::Corrupt(format!("{e}")))?,
                    logical_bytes: logical as u64,
                    unique_bytes: unique as u64,
                })
            })
            .collect()
    }

    async fn all_blobs(&self) -> Result<Vec<(Digest, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT digest, size FROM blobs WHERE quarantined = 0 ORDER BY digest")
                .fetch_all(&self.readers)
                .await?;
        rows.into_iter()
            .map(|(d, size)| Ok((digest(&d)?, size as u64)))
            .collect()
    }

    async fn quarantine_blob(&self, digest: &Digest, move_aside: Placement<'_>) -> Result<()> {
        let mut tx = self.write(Scope::Everything).await?;
        sqlx::query("UPDATE blobs SET quarantined = 1 WHERE digest = $1")
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        move_aside.await?;
        tx.commit().await?;
        Ok(())
    }

    async fn users_of(&self, blob: &Digest) -> Result<Vec<(RepoName, Digest)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT repository, manifest FROM manifest_blobs WHERE blob = $1
             UNION SELECT repository, digest FROM manifests WHERE digest = $1
             ORDER BY 1, 2",
        )
        .bind(blob.to_string())
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter()
            .map(|(repo, m)| {
                Ok((
                    repo.parse()
                        .map_err(|e| MetadataError::Corrupt(format!("{e}")))?,
                    digest(&m)?,
                ))
            })
            .collect()
    }

    async fn check_integrity(&self) -> Result<Vec<String>> {
        if self.dialect == Dialect::Postgres {
            // PostgreSQL enforces its constraints on every write and checksums its pages itself.
            return Ok(Vec::new());
        }
        let mut problems: Vec<String> = sqlx::query_as::<_, (String,)>("PRAGMA quick_check")
            .fetch_all(&self.readers)
            .await?
            .into_iter()
            .map(|(line,)| line)
            .filter(|line| line != "ok")
            .collect();
        let broken: Vec<(String, i64, String, i64)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&self.readers)
            .await?;
        problems.extend(broken.into_iter().map(|(table, row, parent, _)| {
            format!("{table} row {row} points at a missing {parent} row")
        }));
        Ok(problems)
    }

    async fn quota_usage(&self, pattern: &str, digest: &Digest) -> Result<(u64, bool)> {
        // Repository names cannot contain GLOB's other specials (`?`, `[`), nor
        // LIKE's (`%`, `_` is escaped).
        let (matches, pattern) = match self.dialect {
            Dialect::Sqlite => ("GLOB $1", pattern.to_string()),
            Dialect::Postgres => (
                "LIKE $1 ESCAPE '\\'",
                pattern
                    .replace('\\', "\\\\")
                    .replace('_', "\\_")
                    .replace('*', "%"),
            ),
        };
        let (used, counted): (i64, i64) = sqlx::query_as(&format!(
            "WITH held AS (
                 SELECT digest FROM repository_blobs WHERE repository {matches}
                 UNION SELECT digest FROM manifests WHERE repository {matches}
             )
             SELECT CAST(COALESCE((SELECT SUM(b.size) FROM blobs b JOIN held h ON h.digest = b.digest), 0) AS BIGINT),
                    CAST(EXISTS (SELECT 1 FROM held WHERE digest = $2) AS INTEGER)"
        ))
        .bind(pattern)
        .bind(digest.to_string())
        .fetch_one(&self.readers)
        .await?;
        Ok((used as u64, counted != 0))
    }

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
        let (held,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
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
        let last: Option<(String,)> =
            sqlx::query_as("SELECT value FROM shared_values WHERE key = $1")
                .bind(&key)
                .fetch_optional(&self.writer)
                .await?;
        // A tenth of slack: replicas' timers drift against each other.
        let last = last.and_then(|(v,)| v.parse::<i64>().ok());
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

    async fn blob_totals(&self) -> Result<(u64, u64)> {
        let (count, bytes): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs")
                .fetch_one(&self.readers)
                .await?;
        Ok((count as u64, bytes as u64))
    }

    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(|(size,)| size as u64))
    }

    async fn link_existing_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.write(Scope::Repository(repo)).await?;
        let stored: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if stored.is_none() {
            return Ok(false);
        }
        ensure_repository(&mut tx, repo, now).await?;
        link(&mut tx, repo, digest, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let mut tx = self.write(Scope::Repository(repo)).await?;
        let used: Option<(String,)> = sqlx::query_as(
            "SELECT manifest FROM manifest_blobs WHERE repository = $1 AND blob = $2 LIMIT 1",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if used.is_some() {
            return Err(MetadataError::BlobInUse(digest.clone()));
        }
        let done =
            sqlx::query("DELETE FROM repository_blobs WHERE repository = $1 AND digest = $2")
                .bind(repo.as_str())
                .bind(digest.to_string())
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_manifest(&self, m: NewManifest<'_>) -> Result<()> {
        let now = now_ms();
        let repo = m.repo.as_str();
        let digest = m.record.digest.to_string();
        let mut tx = self.write(Scope::Repository(m.repo)).await?;

        // References are checked inside the transaction that records them, so a
        // concurrent blob or manifest delete cannot slip in between.
        let mut missing_blobs = Vec::new();
        for blob in m.blobs {
            let linked: Option<(i64,)> = sqlx::query_as(
                "SELECT 1 FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
                 WHERE rb.repository = $1 AND rb.digest = $2 AND b.quarantined = 0",
            )
            .bind(repo)
            .bind(blob.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            if linked.is_none() {
                missing_blobs.push(blob.clone());
            }
        }
        let mut missing_manifests = Vec::new();
        for child in m.children {
            let present: Option<(i64,)> =
                sqlx::query_as("SELECT 1 FROM manifests WHERE repository = $1 AND digest = $2")
                    .bind(repo)
                    .bind(child.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
            if present.is_none() {
                missing_manifests.push(child.clone());
            }
        }
        if !missing_blobs.is_empty() || !missing_manifests.is_empty() {
            return Err(MetadataError::MissingReferences {
                blobs: missing_blobs,
                manifests: missing_manifests,
            });
        }

        ensure_repository(&mut tx, m.repo, now).await?;
        ensure_blob(&mut tx, &m.record.digest, m.record.size, now).await?;
        m.place.await?;
        let inserted = sqlx::query(
            "INSERT INTO manifests (repository, digest, media_type, size, artifact_type, subject, annotations, pushed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(repo)
        .bind(&digest)
        .bind(&m.record.media_type)
        .bind(m.record.size as i64)
        .bind(&m.record.artifact_type)
        .bind(m.subject.map(|s| s.to_string()))
        .bind(&m.record.annotations)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if inserted {
            for blob in m.blobs {
                sqlx::query(
                    "INSERT INTO manifest_blobs (repository, manifest, blob) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(repo)
                .bind(&digest)
                .bind(blob.to_string())
                .execute(&mut *tx)
                .await?;
            }
            for child in m.children {
                sqlx::query(
                    "INSERT INTO manifest_children (repository, parent, child) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(repo)
                .bind(&digest)
                .bind(child.to_string())
                .execute(&mut *tx)
                .await?;
            }
        }
        for tag in m.immutable_tags {
            let current: Option<(String,)> =
                sqlx::query_as("SELECT manifest FROM tags WHERE repository = $1 AND name = $2")
                    .bind(repo)
                    .bind(tag.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if current.is_some_and(|(d,)| d != digest) {
                return Err(MetadataError::TagImmutable(tag.to_string()));
            }
        }
        for tag in m.tags {
            sqlx::query(
                "INSERT INTO tags (repository, name, manifest, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (repository, name) DO UPDATE SET manifest = excluded.manifest, updated_at = excluded.updated_at",
            )
            .bind(repo)
            .bind(tag.as_str())
            .bind(&digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn resolve(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<ManifestRecord>> {
        let row: Option<ManifestRow> = match reference {
            Reference::Tag(tag) => {
                sqlx::query_as(&format!(
                    "SELECT {MANIFEST_COLUMNS} FROM tags t JOIN manifests m
                     ON m.repository = t.repository AND m.digest = t.manifest
                     WHERE t.repository = $1 AND t.name = $2"
                ))
                .bind(repo.as_str())
                .bind(tag.as_str())
                .fetch_optional(&self.readers)
                .await?
            }
            Reference::Digest(d) => sqlx::query_as(&format!(
                "SELECT {MANIFEST_COLUMNS} FROM manifests m WHERE m.repository = $1 AND m.digest = $2"
            ))
            .bind(repo.as_str())
            .bind(d.to_string())
            .fetch_optional(&self.readers)
            .await?,
        };
        row.map(manifest_record).transpose()
    }

    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        // In the repository's scope: an index being pushed checks its children exist.
        let mut tx = self.write(Scope::Repository(repo)).await?;
        // Tags, blob references and child links go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM manifests WHERE repository = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tags WHERE repository = $1 AND name = $2")
            .bind(repo.as_str())
            .bind(tag.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_tags(&self, repo: &RepoName, page: Page<'_>) -> Result<Option<Vec<String>>> {
        if !repository_exists(&self.readers, repo).await? {
            return Ok(None);
        }
        let tags: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM tags WHERE repository = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(repo.as_str())
        .bind(page.last.unwrap_or(""))
        .bind(i64::from(page.limit))
        .fetch_all(&self.readers)
        .await?;
        Ok(Some(tags.into_iter().map(|(t,)| t).collect()))
    }

    async fn list_repositories(&self, page: Page<'_>) -> Result<Vec<String>> {
        let names: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                .bind(page.last.unwrap_or(""))
                .bind(i64::from(page.limit))
                .fetch_all(&self.readers)
                .await?;
        Ok(names.into_iter().map(|(n,)| n).collect())
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ManifestRecord>> {
        let rows: Vec<ManifestRow> = sqlx::query_as(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM manifests m
             WHERE m.repository = $1 AND m.subject = $2 AND ($3 IS NULL OR m.artifact_type = $4)
             ORDER BY m.pushed_at, m.digest"
        ))
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .bind(artifact_type)
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter().map(manifest_record).collect()
    }

    async fn create_repository(&self, repo: &RepositoryRecord) -> Result<bool> {
        let mut tx = self.write(Scope::Repository(&repo.name)).await?;
        let created = sqlx::query(
            "INSERT INTO repositories (name, created_at, tag_mutability, mutability_filters) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(repo.name.as_str())
        .bind(repo.created_at_ms)
        .bind(&repo.tag_mutability)
        .bind(serde_json::Value::from(repo.mutability_filters.clone()).to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if created {
            for (key, value) in &repo.tags {
                sqlx::query(
                    "INSERT INTO repository_tags (repository, key, value) VALUES ($1, $2, $3)",
                )
                .bind(repo.name.as_str())
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn repository(&self, name: &RepoName) -> Result<Option<RepositoryRecord>> {
        let row: Option<RepositoryRow> = sqlx::query_as(&format!(
            "SELECT {REPOSITORY_COLUMNS} FROM repositories WHERE name = $1"
        ))
        .bind(name.as_str())
        .fetch_optional(&self.readers)
        .await?;
        match row {
            Some(row) => Ok(Some(self.repository_record(row).await?)),
            None => Ok(None),
        }
    }

    async fn repositories(&self, page: Page<'_>) -> Result<Vec<RepositoryRecord>> {
        let rows: Vec<RepositoryRow> = sqlx::query_as(&format!(
            "SELECT {REPOSITORY_COLUMNS} FROM repositories WHERE name > $1 ORDER BY name LIMIT $2"
        ))
        .bind(page.last.unwrap_or(""))
        .bind(i64::from(page.limit))
        .fetch_all(&self.readers)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.repository_record(row).await?);
        }
        Ok(out)
    }

    async fn delete_repository(&self, name: &RepoName, force: bool) -> Result<RepositoryDeletion> {
        let Some(record) = self.repository(name).await? else {
            return Ok(RepositoryDeletion::NotFound);
        };
        let mut tx = self.write(Scope::Repository(name)).await?;
        let images: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM manifests WHERE repository = $1")
            .bind(name.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if images.0 > 0 && !force {
            return Ok(RepositoryDeletion::NotEmpty);
        }
        // Manifests first, so their references go before the blob links they point at.
        sqlx::query("DELETE FROM manifests WHERE repository = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM repositories WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if deleted.rows_affected() > 0 {
            RepositoryDeletion::Deleted(record)
        } else {
            RepositoryDeletion::NotFound
        })
    }

    async fn set_tag_mutability(
        &self,
        name: &RepoName,
        mutability: &str,
        filters: &[String],
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE repositories SET tag_mutability = $1, mutability_filters = $2 WHERE name = $3",
        )
        .bind(mutability)
        .bind(serde_json::Value::from(filters.to_vec()).to_string())
        .bind(name.as_str())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn update_repository_tags(
        &self,
        name: &RepoName,
        add: &[(String, String)],
        remove: &[String],
    ) -> Result<bool> {
        let mut tx = self.write(Scope::Repository(name)).await?;
        if !repository_exists(&mut *tx, name).await? {
            return Ok(false);
        }
        for (key, value) in add {
            sqlx::query(
                "INSERT INTO repository_tags (repository, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (repository, key) DO UPDATE SET value = excluded.value",
            )
            .bind(name.as_str())
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        for key in remove {
            sqlx::query("DELETE FROM repository_tags WHERE repository = $1 AND key = $2")
                .bind(name.as_str())
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn lifecycle_policy(&self, repo: &RepoName) -> Result<Option<LifecycleRecord>> {
        let row: Option<(String, Option<i64>)> = sqlx::query_as(
            "SELECT text, last_evaluated_at FROM lifecycle_policies WHERE repository = $1",
        )
        .bind(repo.as_str())
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|(text, last_evaluated_at_ms)| LifecycleRecord {
            text,
            last_evaluated_at_ms,
        }))
    }

    async fn set_lifecycle_policy(&self, repo: &RepoName, text: Option<&str>) -> Result<bool> {
        self.set_policy_text(PolicyTable::Lifecycle, repo, text)
            .await
    }

    async fn pinned_images(&self, repo: &RepoName) -> Result<Vec<Digest>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT digest FROM image_pins WHERE repository = $1")
                .bind(repo.as_str())
                .fetch_all(&self.readers)
                .await?;
        rows.into_iter()
            .map(|(d,)| {
                d.parse()
                    .map_err(|e| MetadataError::Corrupt(format!("pinned digest {d}: {e}")))
            })
            .collect()
    }

    async fn repository_policy(&self, repo: &RepoName) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT text FROM repository_policies WHERE repository = $1")
                .bind(repo.as_str())
                .fetch_optional(&self.readers)
                .await?;
        Ok(row.map(|(text,)| text))
    }

    async fn set_repository_policy(&self, repo: &RepoName, text: Option<&str>) -> Result<bool> {
        self.set_policy_text(PolicyTable::Repository, repo, text)
            .await
    }

    async fn mark_lifecycle_evaluated(&self, repo: &RepoName, at_ms: i64) -> Result<()> {
        sqlx::query("UPDATE lifecycle_policies SET last_evaluated_at = $1 WHERE repository = $2")
            .bind(at_ms)
            .bind(repo.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn repositories_with_lifecycle(&self) -> Result<Vec<RepoName>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT repository FROM lifecycle_policies ORDER BY repository")
                .fetch_all(&self.readers)
                .await?;
        rows.into_iter()
            .map(|(n,)| {
                n.parse()
                    .map_err(|e| MetadataError::Corrupt(format!("{e}")))
            })
            .collect()
    }

    async fn lifecycle_preview(&self, repo: &RepoName) -> Result<Option<PreviewRecord>> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT text, status, results FROM lifecycle_previews WHERE repository = $1",
        )
        .bind(repo.as_str())
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|(text, status, results)| PreviewRecord {
            text,
            status,
            results,
        }))
    }

    async fn set_lifecycle_preview(&self, repo: &RepoName, preview: &PreviewRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO lifecycle_previews (repository, text, status, results, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (repository) DO UPDATE SET text = excluded.text, status = excluded.status,
             results = excluded.results, created_at = excluded.created_at",
        )
        .bind(repo.as_str())
        .bind(&preview.text)
        .bind(&preview.status)
        .bind(&preview.results)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn record_pull(&self, repo: &RepoName, digest: &Digest, at_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE manifests SET last_pulled_at = $1 WHERE repository = $2 AND digest = $3",
        )
        .bind(at_ms)
        .bind(repo.as_str())
        .bind(digest.to_string())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn images(&self, repo: &RepoName) -> Result<Vec<ImageRecord>> {
        type Row = (
            String,
            String,
            i64,
            Option<String>,
            Option<String>,
            i64,
            Option<String>,
            Option<String>,
            i64,
            Option<i64>,
        );
        let concat = match self.dialect {
            Dialect::Sqlite => "group_concat",
            Dialect::Postgres => "string_agg",
        };
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations, m.pushed_at, m.subject,
                    (SELECT {concat}(t.name, ' ') FROM tags t WHERE t.repository = m.repository AND t.manifest = m.digest),
                    (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM manifest_blobs mb JOIN blobs b ON b.digest = mb.blob
                      WHERE mb.repository = m.repository AND mb.manifest = m.digest),
                    m.last_pulled_at
             FROM manifests m WHERE m.repository = $1 ORDER BY m.pushed_at, m.digest"
        ))
        .bind(repo.as_str())
        .fetch_all(&self.readers)
        .await?;
        let children: Vec<(String, String)> =
            sqlx::query_as("SELECT parent, child FROM manifest_children WHERE repository = $1")
                .bind(repo.as_str())
                .fetch_all(&self.readers)
                .await?;
        let mut images = Vec::with_capacity(rows.len());
        for (
            d,
            media_type,
            size,
            artifact_type,
            annotations,
            pushed_at_ms,
            subject,
            tags,
            blob_bytes,
            last_pulled_at_ms,
        ) in rows
        {
            let manifest = ManifestRecord {
                digest: digest(&d)?,
                media_type,
                size: size as u64,
                artifact_type,
                annotations,
                pushed_at_ms,
            };
            let mut tags: Vec<String> = tags
                .unwrap_or_default()
                .split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            tags.sort();
            let kids = children
                .iter()
                .filter(|(p, _)| *p == d)
                .map(|(_, c)| digest(c))
                .collect::<Result<Vec<_>>>()?;
            images.push(ImageRecord {
                manifest,
                tags,
                blob_bytes: blob_bytes as u64,
                children: kids,
                subject: subject.as_deref().map(digest).transpose()?,
                last_pulled_at_ms,
            });
        }
        Ok(images)
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

    async fn idle_uploads(&self, before_ms: i64) -> Result<Vec<Uuid>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM uploads WHERE updated_at < $1")
            .bind(before_ms)
            .fetch_all(&self.readers)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id,)| id.parse().ok())
            .collect())
    }

    async fn create_upload(&self, id: Uuid, repo: &RepoName) -> Result<()> {
        let now = now_ms();
        sqlx::query("INSERT INTO uploads (id, repository, size, started_at, updated_at) VALUES ($1, $2, 0, $3, $4)")
            .bind(id.to_string())
            .bind(repo.as_str())
            .bind(now)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn upload(&self, id: Uuid) -> Result<Option<UploadRecord>> {
        // Read through the writer so a session's own previous request is always seen.
        let row: Option<(String, i64, i64, i64, Option<String>, String)> = sqlx::query_as(
            "SELECT repository, size, last_append, started_at, hash_state, chunks
             FROM uploads WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.writer)
        .await?;
        let Some((repo, size, last_append, started_at_ms, hash_state, chunks)) = row else {
            return Ok(None);
        };
        let corrupt = |what: &str| MetadataError::Corrupt(format!("upload {id}: {what}"));
        Ok(Some(UploadRecord {
            id,
            repo: repo.parse().map_err(|e| corrupt(&format!("{e}")))?,
            size: size as u64,
            last_append: last_append as u64,
            started_at_ms,
            hash_state: hash_state
                .map(|h| hex::decode(h).map_err(|_| corrupt("hash state")))
                .transpose()?,
            chunks: chunks
                .split_whitespace()
                .map(|c| c.parse().map_err(|()| corrupt(&format!("chunk {c:?}"))))
                .collect::<Result<_>>()?,
        }))
    }

    async fn advance_upload(
        &self,
        id: Uuid,
        from: u64,
        to: u64,
        progress: UploadProgress<'_>,
    ) -> Result<bool> {
        let chunk = progress.chunk.map(|c| format!(" {c}")).unwrap_or_default();
        let done = sqlx::query(
            "UPDATE uploads SET size = $1, last_append = $2, updated_at = $3, hash_state = $4,
                chunks = chunks || $5
             WHERE id = $6 AND size = $7",
        )
        .bind(to as i64)
        .bind(to.saturating_sub(from) as i64)
        .bind(now_ms())
        .bind(progress.hash_state.map(hex::encode))
        .bind(chunk)
        .bind(id.to_string())
        .bind(from as i64)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_upload(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
