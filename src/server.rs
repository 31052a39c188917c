//! Application state, the router, and the serve loop with graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use object_store::local::LocalFileSystem;
use tokio::net::TcpListener;

use std::time::Duration;

use crate::auth::{
    self, Auth, Authenticator, KeyError, Mode, Policy, RepositoryPolicies, SecretsKey, SigningKey,
    TokenIssuer, generate_pem,
};
use crate::aws;
use crate::config::{Config, StorageBackend};
use crate::connections::{self, ConnectionLimits};
use crate::ecr::{EcrSettings, EcrState};
use crate::ecs;
use crate::http::TrustedProxies;
use crate::notifications::{Delivery, Notifier};
use crate::oci::api::{self, OciSettings};
use crate::operations;
use crate::registry::{GcSchedule, LifecycleSchedule, Limits, Registry};
use crate::runner::engine::DockerEngine;
use crate::runner::images::RegistryHosts;
use crate::runner::{Runner, RunnerError, RunnerSettings};
use crate::storage::{BlobStore, Dialect, MetadataStore, SqlMetadata, Staging};
use tokio_util::sync::CancellationToken;

/// Everything handlers share; cheap to clone. Handlers ask for the part they need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub registry: Registry,
    pub oci: OciSettings,
    pub auth: Arc<Auth>,
    pub ecr: EcrSettings,
    /// What the ECR and ECS front door (`POST /`) shares.
    pub aws: aws::AwsSettings,
    /// How slowly a request body read whole may arrive.
    pub body: crate::body::BodyLimits,
    pub notifier: Notifier,
    /// The task runner; `None` when `runner.enabled` is off.
    pub runner: Option<Runner>,
    /// Background jobs `run` starts beside the HTTP server.
    pub jobs: Jobs,
    /// What each connection and client may hold open.
    pub connections: ConnectionLimits,
}

/// Settings of the background jobs.
#[derive(Debug, Clone, Default)]
pub struct Jobs {
    /// Webhook deliveries, taken by the first `run`.
    pub deliveries: Arc<std::sync::Mutex<Vec<Delivery>>>,
    /// Scheduled lifecycle runs; `None`: off.
    pub lifecycle_interval: Option<Duration>,
    /// Garbage collection: its policy and interval.
    pub gc: Option<(crate::registry::GcPolicy, Duration)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("creating {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("blob storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("metadata database: {0}")]
    Metadata(#[from] crate::storage::MetadataError),
    #[error("token signing key: {0}")]
    Key(#[from] KeyError),
    #[error("access-key secrets key: {0}")]
    SecretsKey(KeyError),
    #[error(
        "the access-key secrets in the database are sealed with another secrets key (id \
         {recorded}) than {path} (id {found}): give every replica and the CLI the same \
         auth.secrets_key file"
    )]
    SecretsKeyMismatch {
        path: std::path::PathBuf,
        recorded: String,
        found: String,
    },
    #[error("auth.trusted_proxies: {0}")]
    TrustedProxies(String),
    #[error("task runner: {0}")]
    Runner(#[from] RunnerError),
    #[error(
        "no users or access tokens exist and {0} is not a loopback address: add a user \
         (wharf user add NAME), or set auth.open = true or auth.anonymous_pull explicitly"
    )]
    Unprotected(std::net::SocketAddr),
}

impl AppState {
    /// Opens storage and the database as configured.
    pub async fn open(config: &Config) -> Result<AppState, StartupError> {
        let mut dirs = vec![config.data_dir.clone()];
        if config.storage.backend == StorageBackend::Filesystem {
            dirs.push(config.blob_dir());
        }
        for dir in dirs {
            crate::storage::private::create_dir(&dir)
                .map_err(|source| StartupError::Dir { path: dir, source })?;
        }
        let (blobs, staging) = match config.storage.backend {
            StorageBackend::Filesystem => (
                BlobStore::new(Arc::new(
                    LocalFileSystem::new_with_prefix(config.blob_dir())?
                        .with_automatic_cleanup(true),
                )),
                Staging::Local(config.blob_dir()),
            ),
            StorageBackend::S3 => {
                let blobs = crate::storage::s3::open(&config.storage.s3)?;
                (blobs.clone(), Staging::Remote(blobs))
            }
        };
        let database = Arc::new(SqlMetadata::open(&config.database()).await?);
        let meta: Arc<dyn MetadataStore> = database.clone();
        let auth = Arc::new(open_auth(config, database.clone()).await?);
        let limits = Limits {
            max_manifest_bytes: config.limits.max_manifest_bytes,
            manifest_cache_bytes: config.limits.manifest_cache_bytes,
            create_on_push: config.ecr.create_on_push,
            verify_reads: config.storage.verify_reads,
            redirect: config.storage.redirect,
            quotas: config.limits.quotas.clone(),
            shared_metadata: database.dialect() == Dialect::Postgres,
        };
        let (notifier, deliveries) =
            Notifier::new(&config.notifications, config.listen.to_string());
        let registry = Registry::new(blobs, staging, meta, limits);
        let runner = if config.runner.enabled {
            let engine =
                DockerEngine::connect(&config.runner.docker_host).map_err(RunnerError::from)?;
            Some(
                Runner::new(
                    database.clone(),
                    registry.clone(),
                    auth.clone(),
                    Arc::new(engine),
                    RegistryHosts::new(&config.external_url, config.listen.port()),
                    RunnerSettings {
                        region: config.ecr.region.clone(),
                        account: config.ecr.registry_id.clone(),
                        poll_interval: Duration::from_millis(
                            config.runner.poll_interval_ms.max(50),
                        ),
                        retain_stopped: Duration::from_secs(config.runner.retain_stopped_seconds),
                        safety: config.runner.safety(),
                        max_desired_count: i64::from(config.runner.max_desired_count),
                    },
                )
                .await?,
            )
        } else {
            None
        };
        Ok(AppState {
            notifier,
            runner,
            registry,
            oci: OciSettings {
                chunk_min_length: config.limits.chunk_min_length,
                max_page: config.limits.max_page,
            },
            connections: config.connections.limits(&config.auth.trusted_proxies),
            auth,
            jobs: Jobs {
                deliveries: Arc::new(std::sync::Mutex::new(deliveries)),
                lifecycle_interval: (config.ecr.lifecycle_interval_seconds > 0)
                    .then(|| Duration::from_secs(config.ecr.lifecycle_interval_seconds)),
                gc: (config.gc.interval_seconds > 0).then(|| {
                    (
                        config.gc.policy(),
                        Duration::from_secs(config.gc.interval_seconds),
                    )
                }),
            },
            ecr: EcrSettings {
                registry_id: config.ecr.registry_id.clone(),
                region: config.ecr.region.clone(),
            },
            aws: aws::AwsSettings {
                region: config.ecr.region.clone(),
            },
            body: crate::body::BodyLimits {
                grace: Duration::from_secs(config.limits.request_body_timeout_seconds),
                min_rate: config.limits.request_body_min_rate,
            },
        })
    }
}

/// Builds the auth service and decides whether requests must authenticate:
/// without any credential Wharf runs open, but only on a loopback address
/// unless the configuration says so explicitly.
async fn open_auth(config: &Config, credentials: Arc<SqlMetadata>) -> Result<Auth, StartupError> {
    let a = &config.auth;
    let default_key = a.signing_key.as_os_str().is_empty();
    let key = if default_key && credentials.dialect() == Dialect::Postgres {
        // Replicas share the database, so they share the key it keeps: a
        // token one issues is accepted by all.
        let candidate = generate_pem().map_err(|message| KeyError::Format {
            path: "database".into(),
            message,
        })?;
        let pem = credentials
            .shared_value("token_signing_key", &candidate)
            .await?;
        SigningKey::from_pem(&pem).map_err(|message| KeyError::Format {
            path: "database".into(),
            message,
        })?
    } else {
        SigningKey::load(&config.signing_key_path(), default_key)?
    };
    let tokens = TokenIssuer::new(
        key,
        a.issuer.clone(),
        a.service.clone(),
        Duration::from_secs(a.token_ttl_seconds),
        Duration::from_secs(a.refresh_ttl_seconds),
    );
    let repository_policies =
        RepositoryPolicies::new(credentials.clone(), config.ecr.registry_id.clone());
    let secrets = open_secrets(config, &credentials).await?;
    let login = Authenticator::new(
        credentials,
        a.users.clone(),
        tokens.clone(),
        secrets,
        a.password_hash_concurrency,
    );
    let sealed = login.seal_stored_secrets().await?;
    if sealed > 0 {
        tracing::info!(
            access_keys = sealed,
            "sealed access-key secrets stored as is by an older version"
        );
    }
    let mode = if a.open {
        tracing::warn!("auth.open is set: anyone may push, pull and delete");
        Mode::Open
    } else if login.has_credentials().await? {
        Mode::Enforced
    } else if config.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.listen, "no users exist: anonymous full access, allowed because Wharf listens on loopback only");
        Mode::Open
    } else if !a.anonymous_pull.is_empty() {
        Mode::Enforced
    } else {
        return Err(StartupError::Unprotected(config.listen));
    };
    Ok(Auth {
        mode,
        policy: Policy {
            rules: a.rules.clone(),
            anonymous_pull: a.anonymous_pull.clone(),
        },
        repository_policies,
        tokens,
        login,
        external_url: (!config.external_url.is_empty()).then(|| config.external_url.clone()),
        trusted_proxies: TrustedProxies::parse(&a.trusted_proxies)
            .map_err(StartupError::TrustedProxies)?,
        tls: config.tls.enabled(),
    })
}

/// The key that seals access-key secrets: `auth.secrets_key`, or
/// `<data_dir>/secrets-key` (generated on first start). Its id is recorded in
/// the database, so a process with another key (a replica or the CLI given a
/// different file) refuses to start instead of failing on every signature.
pub async fn open_secrets(
    config: &Config,
    store: &SqlMetadata,
) -> Result<SecretsKey, StartupError> {
    let path = config.secrets_key_path();
    let key = SecretsKey::load(&path, config.auth.secrets_key.as_os_str().is_empty())
        .map_err(StartupError::SecretsKey)?;
    let recorded = store.shared_value("secrets_key_id", key.id()).await?;
    if recorded != key.id() {
        return Err(StartupError::SecretsKeyMismatch {
            path,
            recorded,
            found: key.id().to_string(),
        });
    }
    Ok(key)
}

/// The whole HTTP application; tests drive it without a socket.
pub fn build_router(state: AppState) -> Router {
    api::router()
        .merge(auth::api::router())
        .merge(aws::router::<_, EcrState, ecs::EcsState>())
        .merge(ecs::router())
        .merge(operations::router())
        .with_state(state)
        .layer(axum::middleware::from_fn(operations::observe))
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
/// With a TLS configuration the listener's connections are TLS. Background
/// jobs run beside the server and stop with it.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let mut jobs = tokio::task::JoinSet::new();
    if let Some(interval) = state.jobs.lifecycle_interval {
        jobs.spawn(
            LifecycleSchedule::new(state.registry.clone(), interval)
                .with_notifier(state.notifier.clone())
                .run(stop.clone()),
        );
    }
    let deliveries = std::mem::take(
        &mut *state
            .jobs
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    for delivery in deliveries {
        jobs.spawn(delivery.run(stop.clone()));
    }
    if let Some((policy, interval)) = state.jobs.gc.clone() {
        jobs.spawn(
            GcSchedule::new(state.registry.clone(), policy, interval)
                .with_notifier(state.notifier.clone())
                .run(stop.clone()),
        );
    }
    if let Some(runner) = state.runner.clone() {
        jobs.spawn(runner.run(stop.clone()));
    }
    let on_shutdown = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    };
    let limits = state.connections.clone();
    let served = connections::serve(listener, build_router(state), tls, limits, on_shutdown).await;
    stop.cancel();
    while jobs.join_next().await.is_some() {}
    served
}
