//! [`BrowseMetadata`] in SQL. Each page selects its rows by keyset over an
//! index (`tags_by_update`, the tags' primary key, `manifests_by_push`) in an
//! inner query limited to the page, and only then computes the per-row
//! columns (sizes, counts) for those rows; for repositories, which the
//! console authorizes row by row, those are a second query over the rows
//! shown only.

use async_trait::async_trait;

use super::{Dialect, SqlMetadata, digest, repo_name};
use crate::oci::{Digest, RepoName};
use crate::storage::metadata::browse::{
    BrowseMetadata, ImageSummary, Listing, MAX_RECLAIM_CHILDREN, MAX_RECLAIM_ROOTS, ManifestLinks,
    Order, Position, Reclaim, RepositoryKey, RepositorySummary,
};
use crate::storage::metadata::{ManifestRecord, Result};

/// A statement's arguments, numbered as they are added.
#[derive(Default)]
struct Args(Vec<Arg>);

enum Arg {
    Text(String),
    Int(i64),
}

impl Args {
    /// Adds a value; returns its placeholder.
    fn text(&mut self, value: &str) -> String {
        self.0.push(Arg::Text(value.to_string()));
        format!("${}", self.0.len())
    }

    fn int(&mut self, value: i64) -> String {
        self.0.push(Arg::Int(value));
        format!("${}", self.0.len())
    }

    fn bind<'q, O>(
        self,
        mut query: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>> {
        for arg in self.0 {
            query = match arg {
                Arg::Text(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
            };
        }
        query
    }
}

#[derive(sqlx::FromRow)]
struct RepositoryKeyRow {
    name: String,
    last_push: i64,
    logical_bytes: i64,
}

#[derive(sqlx::FromRow)]
struct ReclaimRow {
    bytes: i64,
    blobs: i64,
    children: i64,
}

#[derive(sqlx::FromRow)]
struct RepositoryRow {
    name: String,
    tags: i64,
    logical_bytes: i64,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    tag: Option<String>,
    at_ms: i64,
    digest: String,
    media_type: String,
    size: i64,
    artifact_type: Option<String>,
    annotations: Option<String>,
    pushed_at: i64,
    content_bytes: i64,
    children: i64,
    platforms: Option<String>,
}

impl SummaryRow {
    fn parse(self) -> Result<ImageSummary> {
        Ok(ImageSummary {
            tag: self.tag,
            at_ms: self.at_ms,
            manifest: ManifestRecord {
                digest: digest(&self.digest)?,
                media_type: self.media_type,
                size: self.size as u64,
                artifact_type: self.artifact_type,
                annotations: self.annotations,
                pushed_at_ms: self.pushed_at,
            },
            content_bytes: self.content_bytes.max(0) as u64,
            children: self.children.max(0) as u64,
            platforms: (self.platforms.unwrap_or_default().split(' '))
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

/// The per-row columns of a page of manifests `m`: the distinct blob bytes of
/// the manifest and of the manifests it lists, how many it lists and their
/// platforms (recorded at push).
const SUMMARY_COLUMNS: &str = "m.digest AS digest, m.media_type AS media_type, m.size AS size,
     m.artifact_type AS artifact_type, m.annotations AS annotations, m.pushed_at AS pushed_at,
     m.platforms AS platforms,
     (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM blobs b WHERE b.digest IN (
         SELECT mb.blob FROM manifest_blobs mb
          WHERE mb.repository = m.repository AND mb.manifest = m.digest
         UNION
         SELECT mb.blob FROM manifest_children c JOIN manifest_blobs mb
             ON mb.repository = c.repository AND mb.manifest = c.child
          WHERE c.repository = m.repository AND c.parent = m.digest)) AS content_bytes,
     (SELECT COUNT(*) FROM manifest_children c
       WHERE c.repository = m.repository AND c.parent = m.digest) AS children";

/// Whether manifest `m` is listed on its own rather than under its subject:
/// it is no referrer, or its subject is not in the repository (pushed
/// before it, or deleted), so it would otherwise be listed nowhere. The
/// subject is one probe of the manifests' primary key.
fn listed_on_its_own(m: &str) -> String {
    format!(
        "({m}.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests j
                                             WHERE j.repository = {m}.repository AND j.digest = {m}.subject))"
    )
}

impl SqlMetadata {
    /// `column` contains `needle`, ignoring case.
    fn contains(&self, column: &str, needle: &str, args: &mut Args) -> String {
        let p = args.text(&needle.to_lowercase());
        match self.dialect {
            Dialect::Sqlite => format!("instr(lower({column}), {p}) > 0"),
            Dialect::Postgres => format!("strpos(lower({column}), {p}) > 0"),
        }
    }
}

/// The keyset condition for rows after `after` in `order`.
fn after_condition(
    order: Order,
    after: Option<Position<'_>>,
    time: &str,
    name: &str,
    args: &mut Args,
) -> Option<String> {
    let after = after?;
    Some(match order {
        Order::Name => format!("{name} > {}", args.text(after.name)),
        Order::Newest | Order::Largest => {
            let t = args.int(after.time_ms);
            let n = args.text(after.name);
            format!("({time} < {t} OR ({time} = {t} AND {name} < {n}))")
        }
    })
}

fn order_by(order: Order, time: &str, name: &str) -> String {
    match order {
        Order::Name => name.to_string(),
        Order::Newest | Order::Largest => format!("{time} DESC, {name} DESC"),
    }
}

fn and_all(conditions: &[Option<String>]) -> String {
    conditions
        .iter()
        .flatten()
        .map(|c| format!(" AND {c}"))
        .collect()
}

#[async_trait]
impl BrowseMetadata for SqlMetadata {
    async fn browse_repositories(&self, page: Listing<'_>) -> Result<Vec<RepositoryKey>> {
        let mut args = Args::default();
        let sql = if page.order == Order::Largest {
            // One range scan of `repositories_by_size`, backwards.
            let filter = page.contains.map(|c| self.contains("r.name", c, &mut args));
            let after = after_condition(
                page.order,
                page.after,
                "r.logical_bytes",
                "r.name",
                &mut args,
            );
            let limit = args.int(i64::from(page.limit));
            format!(
                "SELECT r.name AS name, r.logical_bytes AS logical_bytes,
                        COALESCE((SELECT MAX(m.pushed_at) FROM manifests m
                                   WHERE m.repository = r.name), r.created_at) AS last_push
                 FROM (SELECT r.name AS name, r.logical_bytes AS logical_bytes, r.created_at AS created_at
                       FROM repositories r WHERE 1 = 1{conditions}
                       ORDER BY {order} LIMIT {limit}) r
                 ORDER BY {order}",
                conditions = and_all(&[filter, after]),
                order = order_by(page.order, "r.logical_bytes", "r.name"),
            )
        } else {
            let filter = page.contains.map(|c| self.contains("q.name", c, &mut args));
            let after = after_condition(page.order, page.after, "q.last_push", "q.name", &mut args);
            let limit = args.int(i64::from(page.limit));
            // Keys only: the last push of a repository is one probe of
            // `manifests_by_push`; counts wait for authorization.
            format!(
                "SELECT q.name AS name, q.last_push AS last_push, q.logical_bytes AS logical_bytes
                 FROM (SELECT r.name AS name, r.logical_bytes AS logical_bytes,
                              COALESCE((SELECT MAX(m.pushed_at) FROM manifests m
                                         WHERE m.repository = r.name), r.created_at) AS last_push
                       FROM repositories r) q
                 WHERE 1 = 1{conditions}
                 ORDER BY {order} LIMIT {limit}",
                conditions = and_all(&[filter, after]),
                order = order_by(page.order, "q.last_push", "q.name"),
            )
        };
        let rows: Vec<RepositoryKeyRow> = args
            .bind(sqlx::query_as(&sql))
            .fetch_all(&self.readers)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(RepositoryKey {
                    name: repo_name(&r.name)?,
                    last_push_ms: r.last_push,
                    logical_bytes: r.logical_bytes.max(0) as u64,
                })
            })
            .collect()
    }

    async fn repository_summaries(&self, keys: &[RepositoryKey]) -> Result<Vec<RepositorySummary>> {
        let mut args = Args::default();
        let names: Vec<String> = keys.iter().map(|k| args.text(k.name.as_str())).collect();
        let sql = format!(
            "SELECT r.name AS name,
                    (SELECT COUNT(*) FROM tags t WHERE t.repository = r.name) AS tags,
                    r.logical_bytes AS logical_bytes
             FROM repositories r WHERE r.name IN ({names})",
            names = names.join(", "),
        );
        let rows: Vec<RepositoryRow> = args
            .bind(sqlx::query_as(&sql))
            .fetch_all(&self.readers)
            .await?;
        let mut by_name: std::collections::HashMap<String, RepositoryRow> =
            rows.into_iter().map(|r| (r.name.clone(), r)).collect();
        Ok(keys
            .iter()
            .filter_map(|k| {
                let r = by_name.remove(k.name.as_str())?;
                Some(RepositorySummary {
                    name: k.name.clone(),
                    tags: r.tags.max(0) as u64,
                    last_push_ms: k.last_push_ms,
                    logical_bytes: r.logical_bytes.max(0) as u64,
                })
            })
            .collect())
    }

    async fn browse_tags(&self, repo: &RepoName, page: Listing<'_>) -> Result<Vec<ImageSummary>> {
        let mut args = Args::default();
        let r = args.text(repo.as_str());
        let filter = page.contains.map(|c| self.contains("t.name", c, &mut args));
        let after = after_condition(page.order, page.after, "t.updated_at", "t.name", &mut args);
        let limit = args.int(i64::from(page.limit));
        let sql = format!(
            "SELECT p.name AS tag, p.updated_at AS at_ms, {SUMMARY_COLUMNS}
             FROM (SELECT t.name AS name, t.manifest AS manifest, t.updated_at AS updated_at
                   FROM tags t JOIN manifests s ON s.repository = t.repository AND s.digest = t.manifest
                   WHERE t.repository = {r} AND {shown_here}{conditions}
                   ORDER BY {inner_order} LIMIT {limit}) p
             JOIN manifests m ON m.repository = {r} AND m.digest = p.manifest
             ORDER BY {outer_order}",
            conditions = and_all(&[filter, after]),
            shown_here = listed_on_its_own("s"),
            inner_order = order_by(page.order, "t.updated_at", "t.name"),
            outer_order = order_by(page.order, "p.updated_at", "p.name"),
        );
        let rows: Vec<SummaryRow> = args
            .bind(sqlx::query_as(&sql))
            .fetch_all(&self.readers)
            .await?;
        rows.into_iter().map(SummaryRow::parse).collect()
    }

    async fn browse_untagged(
        &self,
        repo: &RepoName,
        after: Option<Position<'_>>,
        limit: u32,
    ) -> Result<Vec<ImageSummary>> {
        let mut args = Args::default();
        let r = args.text(repo.as_str());
        let after = after_condition(Order::Newest, after, "u.pushed_at", "u.digest", &mut args);
        let limit = args.int(i64::from(limit));
        let sql = format!(
            "SELECT CAST(NULL AS TEXT) AS tag, p.pushed_at AS at_ms, {SUMMARY_COLUMNS}
             FROM (SELECT u.digest AS digest, u.pushed_at AS pushed_at FROM manifests u
                   WHERE u.repository = {r} AND {shown_here}
                     AND NOT EXISTS (SELECT 1 FROM tags t
                                      WHERE t.repository = u.repository AND t.manifest = u.digest)
                     AND NOT EXISTS (SELECT 1 FROM manifest_children c
                                      WHERE c.repository = u.repository AND c.child = u.digest){conditions}
                   ORDER BY u.pushed_at DESC, u.digest DESC LIMIT {limit}) p
             JOIN manifests m ON m.repository = {r} AND m.digest = p.digest
             ORDER BY p.pushed_at DESC, p.digest DESC",
            shown_here = listed_on_its_own("u"),
            conditions = and_all(&[after]),
        );
        let rows: Vec<SummaryRow> = args
            .bind(sqlx::query_as(&sql))
            .fetch_all(&self.readers)
            .await?;
        rows.into_iter().map(SummaryRow::parse).collect()
    }

    async fn manifest_links(&self, repo: &RepoName, of: &Digest) -> Result<ManifestLinks> {
        let (repo, of) = (repo.as_str(), of.to_string());
        let tags: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM tags WHERE repository = $1 AND manifest = $2 ORDER BY name",
        )
        .bind(repo)
        .bind(&of)
        .fetch_all(&self.readers)
        .await?;
        let parents: Vec<String> = sqlx::query_scalar(
            "SELECT parent FROM manifest_children WHERE repository = $1 AND child = $2 ORDER BY parent",
        )
        .bind(repo)
        .bind(&of)
        .fetch_all(&self.readers)
        .await?;
        let subject: Option<Option<String>> = sqlx::query_scalar(
            "SELECT subject FROM manifests WHERE repository = $1 AND digest = $2",
        )
        .bind(repo)
        .bind(&of)
        .fetch_optional(&self.readers)
        .await?;
        Ok(ManifestLinks {
            tags,
            parents: parents.iter().map(|p| digest(p)).collect::<Result<_>>()?,
            subject: subject.flatten().as_deref().map(digest).transpose()?,
        })
    }

    async fn reclaimable(
        &self,
        repo: &RepoName,
        digests: &[Digest],
        untag: Option<&str>,
        sweep_untagged: bool,
    ) -> Result<Reclaim> {
        if digests.is_empty() || (untag.is_some() && !sweep_untagged) {
            return Ok(Reclaim {
                complete: true,
                ..Reclaim::default()
            });
        }
        let examined = &digests[..digests.len().min(MAX_RECLAIM_ROOTS)];
        let mut args = Args::default();
        let r = args.text(repo.as_str());
        let list: Vec<String> = examined.iter().map(|d| args.text(&d.to_string())).collect();
        let list = list.join(", ");
        // Untagging frees something only when that tag is the manifest's
        // last and nothing else keeps it: GC's untagged sweep decides so.
        let kept_anyway = match untag {
            Some(tag) => format!(
                " AND m.subject IS NULL
                  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = m.repository
                                    AND t.manifest = m.digest AND t.name <> {tag})
                  AND NOT EXISTS (SELECT 1 FROM manifest_children c
                                   WHERE c.repository = m.repository AND c.child = m.digest)
                  AND NOT EXISTS (SELECT 1 FROM image_pins p
                                   WHERE p.repository = m.repository AND p.digest = m.digest)",
                tag = args.text(tag)
            ),
            None => String::new(),
        };
        let sweep = args.int(i64::from(sweep_untagged));
        // `doomed`: the roots and, when untagged manifests are swept, the
        // children only they list, untagged and unpinned (at most
        // MAX_RECLAIM_CHILDREN examined). A candidate blob
        // is reclaimable when no manifest outside `doomed`, in any
        // repository, uses it as a blob (found through
        // `repository_blobs_by_digest`, then each repository's
        // `manifest_blobs_by_blob`) or is it (`manifests_by_digest`).
        let sql = format!(
            "WITH root AS (
                 SELECT m.repository AS repository, m.digest AS digest FROM manifests m
                  WHERE m.repository = {r} AND m.digest IN ({list}){kept_anyway}),
             listed AS (
                 SELECT c.repository AS repository, c.child AS digest FROM manifest_children c
                  WHERE c.repository = {r} AND c.parent IN (SELECT digest FROM root)
                  ORDER BY c.child LIMIT {MAX_RECLAIM_CHILDREN}),
             doomed AS (
                 SELECT repository, digest FROM root
                 UNION
                 SELECT l.repository, l.digest FROM listed l
                  WHERE {sweep} = 1
                    AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = l.repository AND t.manifest = l.digest)
                    AND NOT EXISTS (SELECT 1 FROM manifest_children o
                                     WHERE o.repository = l.repository AND o.child = l.digest
                                       AND o.parent NOT IN (SELECT digest FROM root))
                    AND NOT EXISTS (SELECT 1 FROM image_pins p WHERE p.repository = l.repository AND p.digest = l.digest)),
             candidates AS (
                 SELECT digest FROM doomed
                 UNION
                 SELECT mb.blob FROM doomed d JOIN manifest_blobs mb
                     ON mb.repository = d.repository AND mb.manifest = d.digest)
             SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) AS bytes,
                    CAST(COUNT(b.digest) AS BIGINT) AS blobs,
                    CAST((SELECT COUNT(*) FROM manifest_children c
                           WHERE c.repository = {r} AND c.parent IN (SELECT digest FROM root)) AS BIGINT) AS children
             FROM candidates k JOIN blobs b ON b.digest = k.digest
             WHERE NOT EXISTS (
                     SELECT 1 FROM repository_blobs rb JOIN manifest_blobs mb
                         ON mb.repository = rb.repository AND mb.blob = rb.digest
                      WHERE rb.digest = b.digest
                        AND NOT EXISTS (SELECT 1 FROM doomed d
                                         WHERE d.repository = mb.repository AND d.digest = mb.manifest))
               AND NOT EXISTS (
                     SELECT 1 FROM manifests m WHERE m.digest = b.digest
                        AND NOT EXISTS (SELECT 1 FROM doomed d
                                         WHERE d.repository = m.repository AND d.digest = m.digest))"
        );
        let row: ReclaimRow = args
            .bind(sqlx::query_as(&sql))
            .fetch_one(&self.readers)
            .await?;
        Ok(Reclaim {
            bytes: row.bytes.max(0) as u64,
            blobs: row.blobs.max(0) as u64,
            complete: examined.len() == digests.len()
                && row.children <= i64::from(MAX_RECLAIM_CHILDREN),
        })
    }
}
