//! [`RepositoryMetadata`] in SQL: the `repositories`, `repository_tags` and
//! `repository_policies` tables, and usage summed over the blob tables.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;

use super::{
    BATCH, Dialect, PolicyTable, Scope, SqlMetadata, placeholders, repo_name, repository_exists,
};
use crate::oci::{Digest, RepoName};
use crate::storage::metadata::{
    MetadataError, Page, RepositoryDeletion, RepositoryMetadata, RepositoryRecord, RepositoryUsage,
    Result,
};

/// A repository as [`REPOSITORY_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
struct RepositoryRow {
    name: String,
    created_at: i64,
    tag_mutability: String,
    /// A JSON array of tag patterns.
    mutability_filters: String,
}

const REPOSITORY_COLUMNS: &str = "name, created_at, tag_mutability, mutability_filters";

#[derive(sqlx::FromRow)]
struct ResourceTagRow {
    repository: String,
    key: String,
    value: String,
}

impl RepositoryRow {
    fn parse(self, tags: Vec<(String, String)>) -> Result<RepositoryRecord> {
        let filters = self.mutability_filters;
        Ok(RepositoryRecord {
            name: repo_name(&self.name)?,
            created_at_ms: self.created_at,
            tag_mutability: self.tag_mutability,
            mutability_filters: serde_json::from_str(&filters).map_err(|e| {
                MetadataError::Corrupt(format!("mutability filters {filters:?}: {e}"))
            })?,
            tags,
        })
    }
}

impl SqlMetadata {
    /// The records of `rows`, with their resource tags read in one statement per batch.
    async fn repository_records(&self, rows: Vec<RepositoryRow>) -> Result<Vec<RepositoryRecord>> {
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        let mut tags: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for batch in names.chunks(BATCH) {
            let sql = format!(
                "SELECT repository, key, value FROM repository_tags WHERE repository IN ({})
                 ORDER BY repository, key",
                placeholders(1, batch.len(), |n| format!("${n}"))
            );
            let mut query = sqlx::query_as::<_, ResourceTagRow>(&sql).persistent(false);
            for name in batch {
                query = query.bind(*name);
            }
            for row in query.fetch_all(&self.readers).await? {
                (tags.entry(row.repository).or_default()).push((row.key, row.value));
            }
        }
        rows.into_iter()
            .map(|row| {
                let tags = tags.remove(&row.name).unwrap_or_default();
                row.parse(tags)
            })
            .collect()
    }
}

#[async_trait]
impl RepositoryMetadata for SqlMetadata {
    async fn list_repositories(&self, page: Page<'_>) -> Result<Vec<String>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2",
        )
        .bind(page.last.unwrap_or(""))
        .bind(i64::from(page.limit))
        .fetch_all(&self.readers)
        .await?;
        Ok(names)
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
            // No ON CONFLICT: a key given twice fails the creation, as it always has.
            for batch in repo.tags.chunks(BATCH / 2) {
                let rows = placeholders(0, batch.len(), |i| {
                    format!("($1, ${}, ${})", 2 + 2 * i, 3 + 2 * i)
                });
                let sql =
                    format!("INSERT INTO repository_tags (repository, key, value) VALUES {rows}");
                let mut query = sqlx::query(&sql).persistent(false).bind(repo.name.as_str());
                for (key, value) in batch {
                    query = query.bind(key).bind(value);
                }
                query.execute(&mut *tx).await?;
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
            Some(row) => Ok(self.repository_records(vec![row]).await?.pop()),
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
        self.repository_records(rows).await
    }

    async fn delete_repository(&self, name: &RepoName, force: bool) -> Result<RepositoryDeletion> {
        let Some(record) = self.repository(name).await? else {
            return Ok(RepositoryDeletion::NotFound);
        };
        let mut tx = self.write(Scope::Repository(name)).await?;
        let images: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM manifests WHERE repository = $1")
                .bind(name.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if images > 0 && !force {
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
        // One row per key, the last value given winning (as upserting one
        // pair after another did): PostgreSQL refuses an upsert that touches
        // one row twice.
        let add: Vec<(&String, &String)> = (add.iter().map(|(k, v)| (k, v)))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        for batch in add.chunks(BATCH / 2) {
            let rows = placeholders(0, batch.len(), |i| {
                format!("($1, ${}, ${})", 2 + 2 * i, 3 + 2 * i)
            });
            let sql = format!(
                "INSERT INTO repository_tags (repository, key, value) VALUES {rows}
                 ON CONFLICT (repository, key) DO UPDATE SET value = excluded.value"
            );
            let mut query = sqlx::query(&sql).persistent(false).bind(name.as_str());
            for (key, value) in batch {
                query = query.bind(*key).bind(*value);
            }
            query.execute(&mut *tx).await?;
        }
        let remove: Vec<&String> = remove.iter().collect::<BTreeSet<_>>().into_iter().collect();
        for batch in remove.chunks(BATCH) {
            let sql = format!(
                "DELETE FROM repository_tags WHERE repository = $1 AND key IN ({})",
                placeholders(2, batch.len(), |n| format!("${n}"))
            );
            let mut query = sqlx::query(&sql).persistent(false).bind(name.as_str());
            for key in batch {
                query = query.bind(*key);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn repository_policy(&self, repo: &RepoName) -> Result<Option<String>> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT text FROM repository_policies WHERE repository = $1")
                .bind(repo.as_str())
                .fetch_optional(&self.readers)
                .await?;
        Ok(text)
    }

    async fn repository_policies(&self, repos: &[RepoName]) -> Result<Vec<(RepoName, String)>> {
        #[derive(sqlx::FromRow)]
        struct PolicyRow {
            repository: String,
            text: String,
        }
        let mut out = Vec::new();
        for batch in repos.chunks(BATCH) {
            let sql = format!(
                "SELECT repository, text FROM repository_policies WHERE repository IN ({})",
                placeholders(1, batch.len(), |n| format!("${n}"))
            );
            let mut query = sqlx::query_as::<_, PolicyRow>(&sql).persistent(false);
            for repo in batch {
                query = query.bind(repo.as_str());
            }
            for row in query.fetch_all(&self.readers).await? {
                out.push((repo_name(&row.repository)?, row.text));
            }
        }
        Ok(out)
    }

    async fn set_repository_policy(&self, repo: &RepoName, text: Option<&str>) -> Result<bool> {
        self.set_policy_text(PolicyTable::Repository, repo, text)
            .await
    }

    async fn usage(&self) -> Result<Vec<RepositoryUsage>> {
        #[derive(sqlx::FromRow)]
        struct UsageRow {
            name: String,
            logical: i64,
            unique_bytes: i64,
        }
        let rows: Vec<UsageRow> = sqlx::query_as(
            "WITH refs AS (
                 SELECT repository, digest FROM repository_blobs
                 UNION
                 SELECT repository, digest FROM manifests
             ),
             owners AS (SELECT digest, COUNT(*) AS n FROM refs GROUP BY digest)
             SELECT r.name AS name,
                    CAST(COALESCE(SUM(b.size), 0) AS BIGINT) AS logical,
                    CAST(COALESCE(SUM(CASE WHEN o.n = 1 THEN b.size ELSE 0 END), 0) AS BIGINT) AS unique_bytes
             FROM repositories r
             LEFT JOIN refs f ON f.repository = r.name
             LEFT JOIN blobs b ON b.digest = f.digest
             LEFT JOIN owners o ON o.digest = f.digest
             GROUP BY r.name ORDER BY r.name",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(RepositoryUsage {
                    repo: repo_name(&row.name)?,
                    logical_bytes: row.logical as u64,
                    unique_bytes: row.unique_bytes as u64,
                })
            })
            .collect()
    }

    async fn quota_usage(&self, pattern: &str, digest: &Digest) -> Result<(u64, bool)> {
        #[derive(sqlx::FromRow)]
        struct QuotaRow {
            used: i64,
            counted: i64,
        }
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
        let row: QuotaRow = sqlx::query_as(&format!(
            "WITH held AS (
                 SELECT digest FROM repository_blobs WHERE repository {matches}
                 UNION SELECT digest FROM manifests WHERE repository {matches}
             )
             SELECT CAST(COALESCE((SELECT SUM(b.size) FROM blobs b JOIN held h ON h.digest = b.digest), 0) AS BIGINT) AS used,
                    CAST(EXISTS (SELECT 1 FROM held WHERE digest = $2) AS INTEGER) AS counted"
        ))
        .bind(pattern)
        .bind(digest.to_string())
        .fetch_one(&self.readers)
        .await?;
        Ok((row.used as u64, row.counted != 0))
    }
}
