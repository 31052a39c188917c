//! The composition root: factories that open storage, the registry, auth and
//! the runner from the configuration; the application state and the background
//! work apart; the router; and the serve loop with graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use object_store::local::LocalFileSystem;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::audit::{Audit, AuditWriter};
use crate::auth::{
    self, Auth, Authenticator, KeyError, Mode, Policy, RepositoryPolicies, SecretsKey, SigningKey,
    TokenIssuer, generate_pem,
};
use crate::autoscaling::AutoScalingState;
use crate::aws;
use crate::balancer::{Balancer, BalancerSettings};
use crate::config::{Config, StorageBackend};
use crate::connections::{self, ConnectionLimits};
use crate::ecr::{EcrSettings, EcrState};
use crate::ecs;
use crate::elb;
use crate::http::TrustedProxies;
use crate::notifications::{Delivery, Notifier};
use crate::oci::api::{self, OciSettings};
use crate::operations;
use crate::registry::{GcSchedule, LifecycleSchedule, Limits, Registry, ScrubSchedule};
use crate::runner::engine::DockerEngine;
use crate::runner::images::RegistryHosts;
use crate::runner::usage::Sampler;
use crate::runner::{Runner, RunnerError, RunnerSettings};
use crate::scaling::{Scaler, Scaling, ScalingSettings};
use crate::storage::{BlobStore, Dialect, MetadataStore, SqlMetadata, Staging};

/// Everything handlers share, behind one `Arc`: axum clones the state for
/// every request, so a clone must not copy the settings' strings and lists.
/// Handlers ask for the part they need.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The parts of [`AppState`].
pub struct Shared {
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
    /// The load balancer, with the task runner (same store); else `None`.
    pub balancer: Option<Balancer>,
    /// Service auto scaling, over the runner (`None` without one).
    pub scaling: Option<Scaling>,
    /// What each connection and client may hold open.
    pub connections: ConnectionLimits,
    /// The console's task log streams open now (capped per process).
    pub log_tails: crate::ui::runner::LogTails,
    /// What the console's operator pages use beyond the registry and auth.
    pub operators: crate::ui::admin::Operators,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// `State<Part>` for each part of the application state.
macro_rules! state_parts {
    ($($field:ident: $part:ty),* $(,)?) => {
        $(impl FromRef<AppState> for $part {
            fn from_ref(state: &AppState) -> $part {
                state.$field.clone()
            }
        })*
    };
}

state_parts! {
    registry: Registry,
    oci: OciSettings,
    auth: Arc<Auth>,
    ecr: EcrSettings,
    aws: aws::AwsSettings,
    body: crate::body::BodyLimits,
    notifier: Notifier,
    runner: Option<Runner>,
    balancer: Option<Balancer>,
    scaling: Option<Scaling>,
    connections: ConnectionLimits,
    log_tails: crate::ui::runner::LogTails,
    operators: crate::ui::admin::Operators,
}

impl FromRef<AppState> for crate::ui::Console {
    fn from_ref(state: &AppState) -> crate::ui::Console {
        crate::ui::Console {
            registry: state.registry.clone(),
            auth: state.auth.clone(),
            notifier: state.notifier.clone(),
            runner: state.runner.clone(),
            log_tails: state.log_tails.clone(),
            operators: state.operators.clone(),
        }
    }
}

/// Work that runs beside the HTTP server until shutdown: webhook deliveries,
/// scheduled lifecycle and garbage collection, the task runner's loop. Built
/// once by [`AppState::open`] and consumed by [`run`], so nothing is shared
/// or taken twice.
#[must_use = "background work does nothing until `run` starts it"]
pub struct Background {
    lifecycle: Option<LifecycleSchedule>,
    deliveries: Vec<Delivery>,
    gc: Option<GcSchedule>,
    scrub: Option<ScrubSchedule>,
    runner: Option<Runner>,
    /// The load balancer's data plane and health checks.
    balancer: Option<(
        Balancer,
        crate::balancer::haproxy::DataPlaneSettings,
        Registry,
    )>,
    /// Service auto scaling: the sampler of tasks' use and the target tracking loop.
    scaling: Option<(Sampler, Scaler)>,
    /// The audit log's writer (and its pruning).
    audit: AuditWriter,
}

impl Background {
    fn new(
        config: &Config,
        registry: &Registry,
        notifier: &Notifier,
        deliveries: Vec<Delivery>,
        runner: Option<Runner>,
        scaling: Option<&Scaling>,
        (audit, audit_writer): (&Audit, AuditWriter),
    ) -> Background {
        let lifecycle = (config.ecr.lifecycle_interval_seconds > 0).then(|| {
            let interval = Duration::from_secs(config.ecr.lifecycle_interval_seconds);
            LifecycleSchedule::new(registry.clone(), interval)
                .with_notifier(notifier.clone())
                .with_audit(audit.clone())
        });
        let gc = (config.gc.interval_seconds > 0).then(|| {
            let interval = Duration::from_secs(config.gc.interval_seconds);
            GcSchedule::new(registry.clone(), config.gc.policy(), interval)
                .with_notifier(notifier.clone())
                .with_audit(audit.clone())
        });
        let scrub = registry.scrub_schedule(
            Duration::from_secs(config.storage.scrub_interval_seconds),
            config.storage.scrub_rate,
        );
        let balancer = runner
            .as_ref()
            .and_then(|r| r.balancer().cloned())
            .map(|b| {
                let settings = crate::balancer::haproxy::DataPlaneSettings {
                    program: config.balancer.haproxy.clone(),
                    dir: config.data_dir.join("balancer"),
                    address: config.balancer.address,
                    reserved_ports: reserved_ports(config),
                };
                (b, settings, registry.clone())
            });
        let scaling = scaling.map(|scaling| {
            let s = &config.scaling;
            let period = Duration::from_secs(s.period_seconds);
            let periods = s.scale_out_periods.max(s.scale_in_periods) + 1;
            let sampler = scaling.runner().sampler(
                Duration::from_secs(s.sample_seconds),
                period.saturating_mul(periods),
            );
            // ALBRequestCountPerTarget counts what this replica's listeners forwarded.
            let counts = runner
                .as_ref()
                .and_then(|r| r.balancer().cloned())
                .map(|b| Arc::new(b) as Arc<dyn crate::scaling::RequestCounts>);
            (sampler, scaling.scaler(counts))
        });
        Background {
            lifecycle,
            deliveries,
            gc,
            scrub,
            runner,
            balancer,
            scaling,
            audit: audit_writer,
        }
    }

    /// Starts every job on a task of its own; each ends once `stop` is cancelled.
    pub fn spawn(self, stop: &CancellationToken) -> JoinSet<()> {
        let mut jobs = JoinSet::new();
        jobs.spawn(self.audit.run(stop.clone()));
        if let Some(lifecycle) = self.lifecycle {
            jobs.spawn(lifecycle.run(stop.clone()));
        }
        for delivery in self.deliveries {
            jobs.spawn(delivery.run(stop.clone()));
        }
        if let Some(gc) = self.gc {
            jobs.spawn(gc.run(stop.clone()));
        }
        if let Some(scrub) = self.scrub {
            jobs.spawn(scrub.run(stop.clone()));
        }
        if let Some(runner) = self.runner {
            jobs.spawn(runner.run(stop.clone()));
        }
        if let Some((balancer, settings, registry)) = self.balancer {
            jobs.spawn(crate::balancer::haproxy::run(
                balancer.clone(),
                settings,
                stop.clone(),
            ));
            jobs.spawn(crate::balancer::health::run(
                balancer,
                registry,
                stop.clone(),
            ));
        }
        if let Some((sampler, scaler)) = self.scaling {
            jobs.spawn(sampler.run(stop.clone()));
            jobs.spawn(scaler.run(stop.clone()));
        }
        jobs
    }
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
    /// Opens storage, the database and every service as configured; the
    /// background work comes back apart, for [`run`] to start.
    pub async fn open(config: &Config) -> Result<(AppState, Background), StartupError> {
        let storage = open_storage(config).await?;
        let registry = registry_over(config, &storage);
        // Entries go through a queue to one writer, so requests never wait on it.
        let (audit, audit_writer) = Audit::queued(storage.database.clone(), crate::audit::QUEUE);
        let audit_writer = audit_writer.with_retention_days(config.audit.retention_days);
        let auth = Arc::new(open_auth(config, storage.database.clone(), audit.clone()).await?);
        let runner = match config.runner.enabled {
            true => Some(open_runner(config, &storage, &registry, &auth).await?),
            false => None,
        };
        let (notifier, deliveries) =
            Notifier::new(&config.notifications, config.listen.to_string());
        let notifier = notifier.with_audit(audit.clone());
        // The runner's: services register targets with the one the API changes.
        let balancer = runner.as_ref().and_then(|r| r.balancer().cloned());
        let scaling = runner.as_ref().map(|runner| {
            Scaling::new(
                storage.database.clone(),
                runner.clone(),
                ScalingSettings {
                    region: config.ecr.region.clone(),
                    account: config.ecr.registry_id.clone(),
                    period: Duration::from_secs(config.scaling.period_seconds),
                    scale_out_periods: config.scaling.scale_out_periods,
                    scale_in_periods: config.scaling.scale_in_periods,
                },
            )
        });
        let background = Background::new(
            config,
            &registry,
            &notifier,
            deliveries,
            runner.clone(),
            scaling.as_ref(),
            (&audit, audit_writer),
        );
        let operators = crate::ui::admin::Operators {
            gc: config.gc.policy(),
            credentials: storage.database.clone(),
            audit_log: storage.database.clone(),
            config_users: config
                .auth
                .users
                .iter()
                .map(|u| (u.name.clone(), u.groups.clone()))
                .collect(),
        };
        let state = AppState(Arc::new(Shared {
            operators,
            notifier,
            runner,
            balancer,
            scaling,
            registry,
            oci: OciSettings {
                chunk_min_length: config.limits.chunk_min_length,
                max_page: config.limits.max_page,
            },
            connections: config.connections.limits(&config.auth.trusted_proxies),
            auth,
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
            log_tails: Default::default(),
        }));
        Ok((state, background))
    }
}

/// Blob storage and the metadata database, opened; what every service sits on.
struct Storage {
    blobs: BlobStore,
    staging: Staging,
    database: Arc<SqlMetadata>,
}

/// Creates the data folders and opens blob storage and the metadata database.
async fn open_storage(config: &Config) -> Result<Storage, StartupError> {
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
                LocalFileSystem::new_with_prefix(config.blob_dir())?.with_automatic_cleanup(true),
            )),
            Staging::Local(config.blob_dir()),
        ),
        StorageBackend::S3 => {
            let blobs = crate::storage::s3::open(&config.storage.s3)?;
            (blobs.clone(), Staging::Remote(blobs))
        }
    };
    let database = Arc::new(SqlMetadata::open(&config.database()).await?);
    Ok(Storage {
        blobs,
        staging,
        database,
    })
}

/// The registry alone, over its storage: what the maintenance commands (`gc`,
/// `du`, `fsck`, `lifecycle`) need; no auth, no runner, no HTTP parts.
pub async fn open_registry(config: &Config) -> Result<Registry, StartupError> {
    Ok(registry_over(config, &open_storage(config).await?))
}

/// [`open_registry`] with an audit log written directly (no background
/// writer): for `wharf gc`, whose runs are recorded like the server's.
pub async fn open_registry_audited(config: &Config) -> Result<(Registry, Audit), StartupError> {
    let storage = open_storage(config).await?;
    let audit = Audit::direct(storage.database.clone());
    Ok((registry_over(config, &storage), audit))
}

/// The task runner alone, with the registry and auth it is built with, for
/// `wharf task logs`: no HTTP parts, no background work. Opened whatever
/// `runner.enabled` says, so the logs of tasks run earlier stay readable.
pub async fn open_task_runner(config: &Config) -> Result<Runner, StartupError> {
    let storage = open_storage(config).await?;
    let registry = registry_over(config, &storage);
    let auth = Arc::new(open_auth(config, storage.database.clone(), Audit::default()).await?);
    open_runner(config, &storage, &registry, &auth).await
}

/// The registry over opened storage, with the configured limits.
fn registry_over(config: &Config, storage: &Storage) -> Registry {
    let limits = Limits {
        max_manifest_bytes: config.limits.max_manifest_bytes,
        manifest_cache_bytes: config.limits.manifest_cache_bytes,
        create_on_push: config.ecr.create_on_push,
        verify_reads: config.storage.verify_reads,
        verified_for: Duration::from_secs(config.storage.scrub_interval_seconds),
        redirect: config.storage.redirect,
        quotas: config.limits.quotas.clone(),
        shared_metadata: storage.database.dialect() == Dialect::Postgres,
    };
    let meta: Arc<dyn MetadataStore> = storage.database.clone();
    Registry::new(storage.blobs.clone(), storage.staging.clone(), meta, limits)
}

/// Host ports no listener or task may take: the server's own and the
/// runner's reserved ones.
fn reserved_ports(config: &Config) -> Vec<u16> {
    let mut ports = config.runner.reserved_ports.clone();
    ports.push(config.listen.port());
    ports
}

/// Connects the Docker Engine and builds the runner; records this
/// installation's runner instance id on first use.
async fn open_runner(
    config: &Config,
    storage: &Storage,
    registry: &Registry,
    auth: &Arc<Auth>,
) -> Result<Runner, StartupError> {
    let engine = DockerEngine::connect(&config.runner.docker_host).map_err(RunnerError::from)?;
    let runner = Runner::new(
        storage.database.clone(),
        registry.clone(),
        auth.clone(),
        Arc::new(engine),
        RegistryHosts::new(&config.external_url, config.listen.port()),
        RunnerSettings {
            region: config.ecr.region.clone(),
            account: config.ecr.registry_id.clone(),
            poll_interval: Duration::from_millis(config.runner.poll_interval_ms.max(50)),
            retain_stopped: Duration::from_secs(config.runner.retain_stopped_seconds),
            safety: config.runner.safety(),
            max_desired_count: i64::from(config.runner.max_desired_count),
            embedded: crate::runner::EmbeddedSettings {
                disabled: !config.runner.embedded_instance,
                cpu: config.runner.cpu,
                memory_mib: config.runner.memory_mib,
                availability_zone: config.runner.availability_zone.clone(),
                reserved_ports: reserved_ports(config).into_iter().collect(),
            },
            agent_lost_timeout: Duration::from_secs(config.runner.agent_lost_seconds),
        },
    )
    .await?;
    if config.balancer.enabled {
        runner.attach_balancer(Balancer::new(
            storage.database.clone(),
            BalancerSettings {
                region: config.ecr.region.clone(),
                account: config.ecr.registry_id.clone(),
                reserved_ports: reserved_ports(config),
            },
        ));
    }
    Ok(runner)
}

/// Builds the auth service and decides whether requests must authenticate:
/// without any credential Wharf runs open, but only on a loopback address
/// unless the configuration says so explicitly.
async fn open_auth(
    config: &Config,
    credentials: Arc<SqlMetadata>,
    audit: Audit,
) -> Result<Auth, StartupError> {
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
        audit,
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
        .merge(aws::router::<
            _,
            EcrState,
            ecs::EcsState,
            AutoScalingState,
            elb::ElbState,
        >())
        .merge(ecs::router())
        .merge(operations::router())
        .merge(crate::ui::router(state.clone()))
        .with_state(state)
        .layer(axum::middleware::from_fn(operations::observe))
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
/// With a TLS configuration the listener's connections are TLS. The
/// background work runs beside the server and stops with it.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    background: Background,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let mut jobs = background.spawn(&stop);
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
