//! [`ManifestMetadata`] in SQL: the `manifests`, `manifest_blobs`,
//! `manifest_children` and `tags` tables. A push checks and records its
//! references with one statement per list (in batches), not one per row.

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use sqlx::AnyConnection;

use super::{
    BATCH, Dialect, Scope, SqlMetadata, digest, ensure_blob, ensure_repository, now_ms,
    placeholders, repository_exists,
};
use crate::oci::{Digest, Reference, RepoName, Tag};
use crate::storage::metadata::{
    ImageRecord, ManifestMetadata, ManifestMetadataError, ManifestRecord, NewManifest, Page, Result,
};

/// A manifest as [`MANIFEST_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
struct ManifestRow {
    digest: String,
    media_type: String,
    size: i64,
    artifact_type: Option<String>,
    annotations: Option<String>,
    pushed_at: i64,
}

const MANIFEST_COLUMNS: &str = "m.digest AS digest, m.media_type AS media_type, m.size AS size, \
     m.artifact_type AS artifact_type, m.annotations AS annotations, m.pushed_at AS pushed_at";

impl ManifestRow {
    fn parse(self) -> Result<ManifestRecord> {
        Ok(ManifestRecord {
            digest: digest(&self.digest)?,
            media_type: self.media_type,
            size: self.size as u64,
            artifact_type: self.artifact_type,
            annotations: self.annotations,
            pushed_at_ms: self.pushed_at,
        })
    }
}

/// A manifest with what [`ManifestMetadata::images`] adds to it.
#[derive(sqlx::FromRow)]
struct ImageRow {
    #[sqlx(flatten)]
    manifest: ManifestRow,
    subject: Option<String>,
    /// Its tags, separated by spaces.
    tags: Option<String>,
    blob_bytes: i64,
    last_pulled_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ChildRow {
    parent: String,
    child: String,
}

/// Which of `wanted` the query `select` (given `$1` = `repo` and the
/// candidates as `$2…` in its `{}` list) finds; `wanted` in batches.
async fn present(
    tx: &mut AnyConnection,
    select: &str,
    repo: &str,
    wanted: &[String],
) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    for batch in wanted.chunks(BATCH) {
        let sql = select.replace("{}", &placeholders(2, batch.len(), |n| format!("${n}")));
        let mut query = sqlx::query_scalar::<_, String>(&sql)
            .persistent(false)
            .bind(repo);
        for value in batch {
            query = query.bind(value);
        }
        found.extend(query.fetch_all(&mut *tx).await?);
    }
    Ok(found)
}

/// Inserts `(repo, digest, value)` rows with `insert` (which ends in `VALUES`),
/// ignoring rows that exist; `values` in batches.
async fn insert_rows(
    tx: &mut AnyConnection,
    insert: &str,
    repo: &str,
    digest: &str,
    values: &[String],
) -> Result<()> {
    for batch in values.chunks(BATCH) {
        let rows = placeholders(3, batch.len(), |n| format!("($1, $2, ${n})"));
        let sql = format!("{insert} {rows} ON CONFLICT DO NOTHING");
        let mut query = sqlx::query(&sql).persistent(false).bind(repo).bind(digest);
        for value in batch {
            query = query.bind(value);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Distinct digests as text, in order.
fn distinct(digests: &[Digest]) -> Vec<String> {
    let set: BTreeSet<String> = digests.iter().map(Digest::to_string).collect();
    set.into_iter().collect()
}

#[async_trait]
impl ManifestMetadata for SqlMetadata {
    async fn put_manifest(&self, m: NewManifest<'_>) -> Result<(), ManifestMetadataError> {
        let now = now_ms();
        let repo = m.repo.as_str();
        let digest = m.record.digest.to_string();
        let blobs = distinct(m.blobs);
        let children = distinct(m.children);
        let mut tx = self.write(Scope::Repository(m.repo)).await?;

        // References are checked inside the transaction that records them, so a
        // concurrent blob or manifest delete cannot slip in between.
        let linked = present(
            &mut tx,
            "SELECT rb.digest FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
             WHERE rb.repository = $1 AND b.quarantined = 0 AND rb.digest IN ({})",
            repo,
            &blobs,
        )
        .await?;
        let stored = present(
            &mut tx,
            "SELECT digest FROM manifests WHERE repository = $1 AND digest IN ({})",
            repo,
            &children,
        )
        .await?;
        let missing_blobs: Vec<Digest> = (m.blobs.iter())
            .filter(|b| !linked.contains(&b.to_string()))
            .cloned()
            .collect();
        let missing_manifests: Vec<Digest> = (m.children.iter())
            .filter(|c| !stored.contains(&c.to_string()))
            .cloned()
            .collect();
        if !missing_blobs.is_empty() || !missing_manifests.is_empty() {
            return Err(ManifestMetadataError::MissingReferences {
                blobs: missing_blobs,
                manifests: missing_manifests,
            });
        }

        ensure_repository(&mut tx, m.repo, now).await?;
        ensure_blob(&mut tx, &m.record.digest, m.record.size, now).await?;
        m.place.await?;
        let inserted = sqlx::query(
            "INSERT INTO manifests (repository, digest, media_type, size, artifact_type, subject, annotations, pushed_at, platforms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(repo)
        .bind(&digest)
        .bind(&m.record.media_type)
        .bind(m.record.size as i64)
        .bind(&m.record.artifact_type)
        .bind(m.subject.map(|s| s.to_string()))
        .bind(&m.record.annotations)
        .bind(now)
        .bind((!m.platforms.is_empty()).then(|| m.platforms.join(" ")))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if inserted {
            insert_rows(
                &mut tx,
                "INSERT INTO manifest_blobs (repository, manifest, blob) VALUES",
                repo,
                &digest,
                &blobs,
            )
            .await?;
            insert_rows(
                &mut tx,
                "INSERT INTO manifest_children (repository, parent, child) VALUES",
                repo,
                &digest,
                &children,
            )
            .await?;
        }
        check_immutable(&mut tx, repo, &digest, m.immutable_tags).await?;
        // Distinct: PostgreSQL refuses an upsert that touches one row twice.
        let tags: BTreeSet<&str> = m.tags.iter().map(Tag::as_str).collect();
        let tags: Vec<&str> = tags.into_iter().collect();
        for batch in tags.chunks(BATCH) {
            let rows = placeholders(4, batch.len(), |n| format!("($1, ${n}, $2, $3)"));
            let sql = format!(
                "INSERT INTO tags (repository, name, manifest, updated_at) VALUES {rows}
                 ON CONFLICT (repository, name) DO UPDATE SET manifest = excluded.manifest, updated_at = excluded.updated_at"
            );
            let mut query = sqlx::query(&sql)
                .persistent(false)
                .bind(repo)
                .bind(&digest)
                .bind(now);
            for tag in batch {
                query = query.bind(*tag);
            }
            query.execute(&mut *tx).await?;
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
        row.map(ManifestRow::parse).transpose()
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
        let tags: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM tags WHERE repository = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(repo.as_str())
        .bind(page.last.unwrap_or(""))
        .bind(i64::from(page.limit))
        .fetch_all(&self.readers)
        .await?;
        Ok(Some(tags))
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
        rows.into_iter().map(ManifestRow::parse).collect()
    }

    async fn images(&self, repo: &RepoName) -> Result<Vec<ImageRecord>> {
        let concat = match self.dialect {
            Dialect::Sqlite => "group_concat",
            Dialect::Postgres => "string_agg",
        };
        let rows: Vec<ImageRow> = sqlx::query_as(&format!(
            "SELECT {MANIFEST_COLUMNS}, m.subject AS subject,
                    (SELECT {concat}(t.name, ' ') FROM tags t WHERE t.repository = m.repository AND t.manifest = m.digest) AS tags,
                    (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM manifest_blobs mb JOIN blobs b ON b.digest = mb.blob
                      WHERE mb.repository = m.repository AND mb.manifest = m.digest) AS blob_bytes,
                    m.last_pulled_at AS last_pulled_at
             FROM manifests m WHERE m.repository = $1 ORDER BY m.pushed_at, m.digest"
        ))
        .bind(repo.as_str())
        .fetch_all(&self.readers)
        .await?;
        let children: Vec<ChildRow> =
            sqlx::query_as("SELECT parent, child FROM manifest_children WHERE repository = $1")
                .bind(repo.as_str())
                .fetch_all(&self.readers)
                .await?;
        let mut kids: HashMap<&str, Vec<Digest>> = HashMap::new();
        for row in &children {
            kids.entry(&row.parent)
                .or_default()
                .push(digest(&row.child)?);
        }
        let mut images = Vec::with_capacity(rows.len());
        for row in rows {
            let mut tags: Vec<String> = (row.tags.unwrap_or_default().split(' '))
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            tags.sort();
            let children = kids
                .remove(row.manifest.digest.as_str())
                .unwrap_or_default();
            images.push(ImageRecord {
                tags,
                blob_bytes: row.blob_bytes as u64,
                children,
                subject: row.subject.as_deref().map(digest).transpose()?,
                last_pulled_at_ms: row.last_pulled_at,
                manifest: row.manifest.parse()?,
            });
        }
        Ok(images)
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
}

/// Fails when a tag of `immutable` names a manifest other than `digest` (the
/// first such tag, in the caller's order).
async fn check_immutable(
    tx: &mut AnyConnection,
    repo: &str,
    digest: &str,
    immutable: &[Tag],
) -> Result<(), ManifestMetadataError> {
    let names: Vec<String> = immutable.iter().map(Tag::to_string).collect();
    let mut current: HashMap<String, String> = HashMap::new();
    for batch in names.chunks(BATCH) {
        #[derive(sqlx::FromRow)]
        struct TagRow {
            name: String,
            manifest: String,
        }
        let sql = format!(
            "SELECT name, manifest FROM tags WHERE repository = $1 AND name IN ({})",
            placeholders(2, batch.len(), |n| format!("${n}"))
        );
        let mut query = sqlx::query_as::<_, TagRow>(&sql)
            .persistent(false)
            .bind(repo);
        for name in batch {
            query = query.bind(name);
        }
        for row in query.fetch_all(&mut *tx).await? {
            current.insert(row.name, row.manifest);
        }
    }
    match names
        .into_iter()
        .find(|t| current.get(t).is_some_and(|d| d != digest))
    {
        Some(tag) => Err(ManifestMetadataError::TagImmutable(tag)),
        None => Ok(()),
    }
}
