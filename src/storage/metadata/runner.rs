//! The task runner's half of the metadata store: clusters, task definitions,
//! tasks, services, container instances, and the images they pin. Records are opaque JSON documents
//! to the store; `version` makes every update a compare-and-swap, so the API
//! and the runner's loop never overwrite each other's changes.

use async_trait::async_trait;

use super::sql::{Scope, SqlMetadata};
use super::{MetadataError, Result, area_error};
use crate::oci::{Digest, RepoName};

/// A stored document and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub version: i64,
    pub doc: String,
}

/// A task definition revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDefinition {
    pub family: String,
    pub revision: i64,
    pub active: bool,
    pub doc: String,
}

/// What a task or service holds on to while it runs.
pub type Pins = Vec<(RepoName, Digest)>;

/// A task as the store indexes it.
#[derive(Debug, Clone)]
pub struct TaskRow<'a> {
    pub id: &'a str,
    pub cluster: &'a str,
    pub service: Option<&'a str>,
    pub client_token: Option<&'a str>,
    pub live: bool,
    /// When it stopped (Unix ms), for pruning.
    pub stopped_at_ms: Option<i64>,
    pub doc: &'a str,
    pub pins: &'a Pins,
}

/// Why a cluster could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum RunnerStoreError {
    /// Live tasks or active services still run in it.
    #[error("cluster {0} is in use")]
    ClusterInUse(String),
    #[error(transparent)]
    Store(#[from] MetadataError),
}

area_error!(RunnerStoreError);

#[async_trait]
pub trait RunnerStore: Send + Sync + 'static {
    /// A random id of this installation, created once; labels its containers.
    async fn runner_instance(&self) -> Result<String>;

    /// Creates a cluster (or finds it); its creation time (Unix ms).
    async fn create_cluster(&self, name: &str, now_ms: i64) -> Result<i64>;
    async fn clusters(&self) -> Result<Vec<(String, i64)>>;
    /// Deletes a cluster no live task or active service uses; false when there is none.
    async fn delete_cluster(&self, name: &str) -> Result<bool, RunnerStoreError>;

    /// Stores the next revision of `family`: `doc` is called with the new
    /// revision number and returns the document to store.
    async fn add_task_definition(
        &self,
        family: &str,
        doc: &(dyn Fn(i64) -> String + Send + Sync),
    ) -> Result<i64>;
    /// One revision, or the latest ACTIVE one.
    async fn task_definition(
        &self,
        family: &str,
        revision: Option<i64>,
    ) -> Result<Option<StoredDefinition>>;
    /// Every revision, by family then revision.
    async fn task_definitions(&self) -> Result<Vec<StoredDefinition>>;
    async fn replace_task_definition(&self, definition: &StoredDefinition) -> Result<()>;

    /// Stores new tasks (version 1) in one transaction.
    async fn insert_tasks(&self, tasks: &[TaskRow<'_>]) -> Result<()>;
    async fn task(&self, id: &str) -> Result<Option<Versioned>>;
    /// Tasks of a cluster (or all); only live ones when `live_only`.
    async fn tasks(&self, cluster: Option<&str>, live_only: bool) -> Result<Vec<Versioned>>;
    async fn tasks_by_client_token(&self, cluster: &str, token: &str) -> Result<Vec<Versioned>>;
    /// Replaces a task if its version is still `expected`; false when it changed meanwhile.
    async fn save_task(&self, row: &TaskRow<'_>, expected: i64) -> Result<bool>;
    /// Forgets tasks stopped before `before_ms`; their ids.
    async fn prune_tasks(&self, before_ms: i64) -> Result<Vec<String>>;

    /// Stores a new service; false when an active one of that name exists.
    async fn insert_service(
        &self,
        cluster: &str,
        name: &str,
        doc: &str,
        pins: &Pins,
    ) -> Result<bool>;
    async fn service(&self, cluster: &str, name: &str) -> Result<Option<Versioned>>;
    /// Services of a cluster (or all), inactive ones included.
    async fn services(&self, cluster: Option<&str>) -> Result<Vec<Versioned>>;
    async fn save_service(
        &self,
        cluster: &str,
        name: &str,
        expected: i64,
        doc: &str,
        active: bool,
        pins: &Pins,
    ) -> Result<bool>;

    /// Stores a new container instance (version 1); false when one with that
    /// id is already in the cluster (it is left as it is).
    async fn insert_instance(&self, cluster: &str, id: &str, doc: &str) -> Result<bool>;
    async fn instance(&self, cluster: &str, id: &str) -> Result<Option<Versioned>>;
    /// Container instances of a cluster (or all), by cluster then id.
    async fn instances(&self, cluster: Option<&str>) -> Result<Vec<Versioned>>;
    /// Replaces an instance if its version is still `expected` (the stored
    /// version becomes `expected + 1`); false when it changed meanwhile.
    async fn save_instance(
        &self,
        cluster: &str,
        id: &str,
        expected: i64,
        doc: &str,
    ) -> Result<bool>;
}

fn service_holder(cluster: &str, name: &str) -> String {
    format!("service:{cluster}/{name}")
}

async fn set_pins(tx: &mut sqlx::AnyConnection, holder: &str, pins: &Pins) -> Result<()> {
    sqlx::query("DELETE FROM image_pins WHERE holder = $1")
        .bind(holder)
        .execute(&mut *tx)
        .await?;
    for (repo, digest) in pins {
        sqlx::query(
            "INSERT INTO image_pins (holder, repository, digest) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(holder)
        .bind(repo.as_str())
        .bind(digest.to_string())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

fn versioned(rows: Vec<(i64, String)>) -> Vec<Versioned> {
    rows.into_iter()
        .map(|(version, doc)| Versioned { version, doc })
        .collect()
}

#[async_trait]
impl RunnerStore for SqlMetadata {
    async fn runner_instance(&self) -> Result<String> {
        let mut tx = self.write(Scope::Runner).await?;
        let existing: Option<(String,)> =
            sqlx::query_as("SELECT value FROM runner_settings WHERE key = 'instance'")
                .fetch_optional(&mut *tx)
                .await?;
        let id = match existing {
            Some((id,)) => id,
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                sqlx::query("INSERT INTO runner_settings (key, value) VALUES ('instance', $1)")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    async fn create_cluster(&self, name: &str, now_ms: i64) -> Result<i64> {
        let mut tx = self.write(Scope::Runner).await?;
        sqlx::query(
            "INSERT INTO clusters (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let (created,): (i64,) = sqlx::query_as("SELECT created_at FROM clusters WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn clusters(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT name, created_at FROM clusters ORDER BY name")
                .fetch_all(&self.readers)
                .await?,
        )
    }

    async fn delete_cluster(&self, name: &str) -> Result<bool, RunnerStoreError> {
        let mut tx = self.write(Scope::Runner).await?;
        let (busy,): (i64,) = sqlx::query_as(
            "SELECT CAST(EXISTS (SELECT 1 FROM tasks WHERE cluster = $1 AND live = 1)
                 OR EXISTS (SELECT 1 FROM services WHERE cluster = $1 AND active = 1) AS INTEGER)",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if busy != 0 {
            return Err(RunnerStoreError::ClusterInUse(name.to_string()));
        }
        // Its container instances go with it (the runner refuses first while
        // a remote one is registered).
        sqlx::query("DELETE FROM container_instances WHERE cluster = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM clusters WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn add_task_definition(
        &self,
        family: &str,
        doc: &(dyn Fn(i64) -> String + Send + Sync),
    ) -> Result<i64> {
        let mut tx = self.write(Scope::Runner).await?;
        let (revision,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(revision), 0) + 1 FROM task_definitions WHERE family = $1",
        )
        .bind(family)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO task_definitions (family, revision, active, doc) VALUES ($1, $2, 1, $3)",
        )
        .bind(family)
        .bind(revision)
        .bind(doc(revision))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(revision)
    }

    async fn task_definition(
        &self,
        family: &str,
        revision: Option<i64>,
    ) -> Result<Option<StoredDefinition>> {
        let row: Option<(i64, i64, String)> = match revision {
            Some(r) => {
                sqlx::query_as(
                    "SELECT revision, active, doc FROM task_definitions WHERE family = $1 AND revision = $2",
                )
                .bind(family)
                .bind(r)
                .fetch_optional(&self.readers)
                .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT revision, active, doc FROM task_definitions
                     WHERE family = $1 AND active = 1 ORDER BY revision DESC LIMIT 1",
                )
                .bind(family)
                .fetch_optional(&self.readers)
                .await?
            }
        };
        Ok(row.map(|(revision, active, doc)| StoredDefinition {
            family: family.to_string(),
            revision,
            active: active != 0,
            doc,
        }))
    }

    async fn task_definitions(&self) -> Result<Vec<StoredDefinition>> {
        let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
            "SELECT family, revision, active, doc FROM task_definitions ORDER BY family, revision",
        )
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(family, revision, active, doc)| StoredDefinition {
                family,
                revision,
                active: active != 0,
                doc,
            })
            .collect())
    }

    async fn replace_task_definition(&self, d: &StoredDefinition) -> Result<()> {
        let mut tx = self.write(Scope::Runner).await?;
        sqlx::query(
            "UPDATE task_definitions SET active = $1, doc = $2 WHERE family = $3 AND revision = $4",
        )
        .bind(i64::from(d.active))
        .bind(&d.doc)
        .bind(&d.family)
        .bind(d.revision)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_tasks(&self, tasks: &[TaskRow<'_>]) -> Result<()> {
        let mut tx = self.write(Scope::Runner).await?;
        for t in tasks {
            sqlx::query(
                "INSERT INTO tasks (id, cluster, service, client_token, live, stopped_at, version, doc)
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7)",
            )
            .bind(t.id)
            .bind(t.cluster)
            .bind(t.service)
            .bind(t.client_token)
            .bind(i64::from(t.live))
            .bind(t.stopped_at_ms)
            .bind(t.doc)
            .execute(&mut *tx)
            .await?;
            set_pins(&mut tx, t.id, t.pins).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn task(&self, id: &str) -> Result<Option<Versioned>> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT version, doc FROM tasks WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.readers)
                .await?;
        Ok(row.map(|(version, doc)| Versioned { version, doc }))
    }

    async fn tasks(&self, cluster: Option<&str>, live_only: bool) -> Result<Vec<Versioned>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT version, doc FROM tasks
             WHERE ($1 IS NULL OR cluster = $1) AND ($2 = 0 OR live = 1) ORDER BY id",
        )
        .bind(cluster)
        .bind(i64::from(live_only))
        .fetch_all(&self.readers)
        .await?;
        Ok(versioned(rows))
    }

    async fn tasks_by_client_token(&self, cluster: &str, token: &str) -> Result<Vec<Versioned>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT version, doc FROM tasks WHERE cluster = $1 AND client_token = $2 ORDER BY rowid",
        )
        .bind(cluster)
        .bind(token)
        .fetch_all(&self.readers)
        .await?;
        Ok(versioned(rows))
    }

    async fn save_task(&self, t: &TaskRow<'_>, expected: i64) -> Result<bool> {
        let mut tx = self.write(Scope::Runner).await?;
        let changed = sqlx::query(
            "UPDATE tasks SET live = $1, stopped_at = $2, doc = $3, version = version + 1
             WHERE id = $4 AND version = $5",
        )
        .bind(i64::from(t.live))
        .bind(t.stopped_at_ms)
        .bind(t.doc)
        .bind(t.id)
        .bind(expected)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        set_pins(&mut tx, t.id, t.pins).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn prune_tasks(&self, before_ms: i64) -> Result<Vec<String>> {
        let mut tx = self.write(Scope::Runner).await?;
        let ids: Vec<(String,)> =
            sqlx::query_as("DELETE FROM tasks WHERE live = 0 AND stopped_at < $1 RETURNING id")
                .bind(before_ms)
                .fetch_all(&mut *tx)
                .await?;
        for (id,) in &ids {
            sqlx::query("DELETE FROM image_pins WHERE holder = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    async fn insert_service(
        &self,
        cluster: &str,
        name: &str,
        doc: &str,
        pins: &Pins,
    ) -> Result<bool> {
        let mut tx = self.write(Scope::Runner).await?;
        let (active,): (i64,) = sqlx::query_as(
            "SELECT CAST(EXISTS (SELECT 1 FROM services WHERE cluster = $1 AND name = $2 AND active = 1) AS INTEGER)",
        )
        .bind(cluster)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if active != 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO services (cluster, name, active, version, doc) VALUES ($1, $2, 1, 1, $3)
             ON CONFLICT (cluster, name) DO UPDATE SET active = 1, version = version + 1, doc = excluded.doc",
        )
        .bind(cluster)
        .bind(name)
        .bind(doc)
        .execute(&mut *tx)
        .await?;
        set_pins(&mut tx, &service_holder(cluster, name), pins).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn service(&self, cluster: &str, name: &str) -> Result<Option<Versioned>> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT version, doc FROM services WHERE cluster = $1 AND name = $2")
                .bind(cluster)
                .bind(name)
                .fetch_optional(&self.readers)
                .await?;
        Ok(row.map(|(version, doc)| Versioned { version, doc }))
    }

    async fn services(&self, cluster: Option<&str>) -> Result<Vec<Versioned>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT version, doc FROM services WHERE ($1 IS NULL OR cluster = $1) ORDER BY cluster, name",
        )
        .bind(cluster)
        .fetch_all(&self.readers)
        .await?;
        Ok(versioned(rows))
    }

    async fn save_service(
        &self,
        cluster: &str,
        name: &str,
        expected: i64,
        doc: &str,
        active: bool,
        pins: &Pins,
    ) -> Result<bool> {
        let mut tx = self.write(Scope::Runner).await?;
        let changed = sqlx::query(
            "UPDATE services SET active = $1, doc = $2, version = version + 1
             WHERE cluster = $3 AND name = $4 AND version = $5",
        )
        .bind(i64::from(active))
        .bind(doc)
        .bind(cluster)
        .bind(name)
        .bind(expected)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        set_pins(&mut tx, &service_holder(cluster, name), pins).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_instance(&self, cluster: &str, id: &str, doc: &str) -> Result<bool> {
        let mut tx = self.write(Scope::Runner).await?;
        let inserted = sqlx::query(
            "INSERT INTO container_instances (cluster, id, version, doc) VALUES ($1, $2, 1, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(cluster)
        .bind(id)
        .bind(doc)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted > 0)
    }

    async fn instance(&self, cluster: &str, id: &str) -> Result<Option<Versioned>> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT version, doc FROM container_instances WHERE cluster = $1 AND id = $2",
        )
        .bind(cluster)
        .bind(id)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|(version, doc)| Versioned { version, doc }))
    }

    async fn instances(&self, cluster: Option<&str>) -> Result<Vec<Versioned>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT version, doc FROM container_instances
             WHERE ($1 IS NULL OR cluster = $1) ORDER BY cluster, id",
        )
        .bind(cluster)
        .fetch_all(&self.readers)
        .await?;
        Ok(versioned(rows))
    }

    async fn save_instance(
        &self,
        cluster: &str,
        id: &str,
        expected: i64,
        doc: &str,
    ) -> Result<bool> {
        let mut tx = self.write(Scope::Runner).await?;
        let changed = sqlx::query(
            "UPDATE container_instances SET doc = $1, version = version + 1
             WHERE cluster = $2 AND id = $3 AND version = $4",
        )
        .bind(doc)
        .bind(cluster)
        .bind(id)
        .bind(expected)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(changed > 0)
    }
}
