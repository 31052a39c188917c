//! One typed configuration, layered: built-in defaults < TOML file < `WHARF_*`
//! environment variables < command-line flags. Every key of the file can be set
//! from the environment: `[limits] max_manifest_bytes` is
//! `WHARF_LIMITS_MAX_MANIFEST_BYTES`, top-level `listen` is `WHARF_LISTEN`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::storage::Database;
pub use crate::storage::s3::S3Config;
pub use runner::{BalancerConfig, RunnerConfig, ScalingConfig};

#[path = "config/runner.rs"]
mod runner;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Root of all local state (blobs and the SQLite database by default).
    pub data_dir: PathBuf,
    /// `tracing` filter directives, e.g. "info" or "wharf=debug,info".
    pub log: String,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Public base URL clients use, e.g. `https://registry.example.com`; empty:
    /// taken from each request's `Host` (and `X-Forwarded-*` from trusted proxies).
    pub external_url: String,
    pub storage: StorageConfig,
    pub database: DatabaseConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub tls: TlsConfig,
    pub ecr: EcrConfig,
    pub gc: GcConfig,
    pub runner: RunnerConfig,
    pub balancer: BalancerConfig,
    pub scaling: ScalingConfig,
    pub connections: ConnectionsConfig,
    pub notifications: crate::notifications::NotificationsConfig,
    pub audit: AuditConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EcrConfig {
    /// The 12-digit "account id" in ARNs and `registryId`.
    pub registry_id: String,
    /// The region in ARNs, and the one region ECR and ECS clients must sign for.
    pub region: String,
    /// Whether a `/v2/` push creates its repository. `false` is ECR's rule:
    /// repositories must be created (CreateRepository) before pushing.
    pub create_on_push: bool,
    /// Seconds between scheduled runs of the lifecycle policies; 0 turns them off.
    pub lifecycle_interval_seconds: u64,
}

impl Default for EcrConfig {
    fn default() -> Self {
        Self {
            registry_id: "000000000000".into(),
            region: "us-east-1".into(),
            create_on_push: true,
            lifecycle_interval_seconds: 86_400,
        }
    }
}

/// What clients may hold open: one bad client cannot take the service down.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Open connections for the whole process; beyond it, new ones wait in
    /// the listen backlog until one closes.
    pub max: usize,
    /// Open connections from one client address (trusted proxies exempt);
    /// beyond it, new ones from that address are closed at once.
    pub max_per_client: usize,
    /// Seconds a client has to send a request's headers: from connecting, and
    /// (HTTP/1) from the end of the previous response on a kept-alive connection.
    pub header_read_timeout_seconds: u64,
    /// Seconds a connection may sit with no request in progress and no byte
    /// moving either way before it is closed (HTTP/1 and HTTP/2).
    pub idle_timeout_seconds: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        let limits = crate::connections::ConnectionLimits::default();
        Self {
            max: limits.max_connections,
            max_per_client: limits.max_per_client,
            header_read_timeout_seconds: limits.header_read_timeout.as_secs(),
            idle_timeout_seconds: limits.idle_timeout.as_secs(),
        }
    }
}

impl ConnectionsConfig {
    pub fn limits(&self, trusted_proxies: &[String]) -> crate::connections::ConnectionLimits {
        use std::time::Duration;
        crate::connections::ConnectionLimits {
            max_connections: self.max,
            max_per_client: self.max_per_client,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            // Checked by `validate`; an unreadable list exempts nobody.
            trusted_proxies: crate::http::TrustedProxies::parse(trusted_proxies)
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The audit log of pushes, deletes, policy changes, sign-ins, credentials
/// and maintenance runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Entries older than this many days are pruned (hourly); 0 keeps all.
    pub retention_days: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

/// Online garbage collection (`wharf gc` runs one now).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Seconds between scheduled collections; 0 turns the schedule off.
    pub interval_seconds: u64,
    /// Blobs uploaded or mounted within this many seconds are kept even when
    /// no manifest uses them yet (their manifest may still be coming).
    pub grace_seconds: u64,
    /// Untagged manifests (not listed by an index, without a subject) are
    /// deleted once this many seconds old; 0 keeps them.
    pub untagged_after_seconds: u64,
    /// Whether referrers whose subject manifest is gone are deleted.
    pub orphan_referrers: bool,
    /// Upload sessions idle this many seconds are abandoned.
    pub upload_idle_seconds: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            interval_seconds: 86_400,
            grace_seconds: 3_600,
            untagged_after_seconds: 0,
            orphan_referrers: true,
            upload_idle_seconds: 86_400,
        }
    }
}

impl GcConfig {
    pub fn policy(&self) -> crate::registry::GcPolicy {
        use std::time::Duration;
        crate::registry::GcPolicy {
            grace: Duration::from_secs(self.grace_seconds),
            untagged_after: (self.untagged_after_seconds > 0)
                .then(|| Duration::from_secs(self.untagged_after_seconds)),
            orphan_referrers: self.orphan_referrers,
            upload_idle: Duration::from_secs(self.upload_idle_seconds),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key`, Wharf serves HTTPS.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        !self.cert.as_os_str().is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `service` in challenges and the token audience.
    pub service: String,
    /// Token issuer (`iss`).
    pub issuer: String,
    pub token_ttl_seconds: u64,
    pub refresh_ttl_seconds: u64,
    /// PKCS#8 PEM P-256 key; empty: `<data_dir>/token-signing-key.pem`, generated on first start.
    pub signing_key: PathBuf,
    /// File with the key (base64 of 32 bytes) that seals access-key secrets in
    /// the database; empty: `<data_dir>/secrets-key`, generated on first start.
    pub secrets_key: PathBuf,
    /// Password checks (argon2, ~19 MiB each) that may run at once; 0: one per core.
    pub password_hash_concurrency: usize,
    /// Allow anyone to do anything, on any address. Without credentials and
    /// without this, Wharf runs open only on a loopback address.
    pub open: bool,
    /// Repository patterns anyone may pull.
    pub anonymous_pull: Vec<String>,
    /// Proxy addresses or CIDR networks whose `X-Forwarded-For/-Proto/-Host`
    /// headers are believed.
    pub trusted_proxies: Vec<String>,
    pub users: Vec<crate::auth::ConfigUser>,
    pub rules: Vec<crate::auth::Rule>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            service: "wharf".into(),
            issuer: "wharf".into(),
            token_ttl_seconds: 300,
            refresh_ttl_seconds: 30 * 24 * 3600,
            signing_key: PathBuf::new(),
            secrets_key: PathBuf::new(),
            password_hash_concurrency: 0,
            open: false,
            anonymous_pull: Vec::new(),
            trusted_proxies: Vec::new(),
            users: Vec::new(),
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Where blob content lives: `filesystem` (below `path`) or `s3`.
    pub backend: StorageBackend,
    /// Folder for blob content; empty means `<data_dir>/blobs`. With S3, upload
    /// sessions are still staged here.
    pub path: PathBuf,
    /// Hash every full blob read as it is sent; stored bytes that no longer
    /// match their digest then break the transfer instead of reaching the client.
    pub verify_reads: bool,
    /// With `verify_reads`, how long a blob file that matched its digest may
    /// be sent again without hashing (while the file is unchanged), and how
    /// often the scrub re-hashes every blob on the local disk. 0: hash every read.
    pub scrub_interval_seconds: u64,
    /// The most the scrub reads per second, in bytes (0: no scrub; matches
    /// then come only from uploads and reads, and expire after the interval).
    pub scrub_rate: u64,
    /// Blob GETs answer 307 to a presigned URL of the store (S3), which then
    /// serves the bytes itself (and `verify_reads` does not apply).
    pub redirect: bool,
    pub s3: S3Config,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Filesystem,
    S3,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database` to keep the metadata in
    /// PostgreSQL (required for several replicas); empty: SQLite at `path`.
    pub url: String,
    /// SQLite database file; empty means `<data_dir>/metadata.db`.
    pub path: PathBuf,
    /// Concurrent read connections (SQLite) or pooled connections (PostgreSQL).
    pub readers: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: usize,
    /// Memory for cached manifest bodies and tag resolutions, in bytes.
    pub manifest_cache_bytes: u64,
    /// Advertised minimum chunk size for chunked uploads (0: any size).
    pub chunk_min_length: u64,
    /// Largest page of a tag or catalog listing.
    pub max_page: u32,
    /// Storage limits by repository pattern; the first match applies.
    pub quotas: Vec<crate::registry::Quota>,
    // Request bodies read whole (the ECR/ECS API, the `/token` form): see crate::body.
    /// Seconds such a body may take to start arriving.
    pub request_body_timeout_seconds: u64,
    /// After that, the slowest average rate it may arrive at, in bytes per second.
    pub request_body_min_rate: u64,
    // End of request body limits.
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            data_dir: PathBuf::from("data"),
            log: "info".into(),
            log_format: LogFormat::Text,
            external_url: String::new(),
            storage: StorageConfig::default(),
            database: DatabaseConfig::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            ecr: EcrConfig::default(),
            gc: GcConfig::default(),
            runner: RunnerConfig::default(),
            balancer: BalancerConfig::default(),
            scaling: ScalingConfig::default(),
            connections: ConnectionsConfig::default(),
            notifications: Default::default(),
            audit: AuditConfig::default(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Filesystem,
            path: PathBuf::new(),
            verify_reads: true,
            scrub_interval_seconds: 24 * 60 * 60,
            scrub_rate: 64 * 1024 * 1024,
            redirect: false,
            s3: S3Config::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            url: String::new(),
            readers: 8,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_manifest_bytes: 4 * 1024 * 1024,
            manifest_cache_bytes: 8 * 1024 * 1024,
            chunk_min_length: 0,
            max_page: 10_000,
            quotas: Vec::new(),
            request_body_timeout_seconds: 20,
            request_body_min_rate: 32 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// Builds the configuration from every layer and validates it.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut value = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(format!("defaults do not serialize: {e}")))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let from_file: toml::Value =
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_path_buf(),
                    source,
                })?;
            merge(&mut value, from_file);
        }
        apply_env(&mut value, "WHARF", env)?;
        let mut config: Config = value.try_into().map_err(|source| ConfigError::Parse {
            path: file.unwrap_or(Path::new("")).into(),
            source,
        })?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(format) = overrides.log_format {
            config.log_format = format;
        }
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.limits.max_manifest_bytes == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_manifest_bytes must be positive".into(),
            ));
        }
        let c = &self.connections;
        if c.max == 0
            || c.max_per_client == 0
            || c.header_read_timeout_seconds == 0
            || c.idle_timeout_seconds == 0
        {
            return Err(ConfigError::Invalid(
                "connections: max, max_per_client and the timeouts must be positive".into(),
            ));
        }
        if self.limits.max_page == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_page must be positive".into(),
            ));
        }
        // [auth]
        crate::http::TrustedProxies::parse(&self.auth.trusted_proxies)
            .map_err(|e| ConfigError::Invalid(format!("auth.trusted_proxies: {e}")))?;
        if self.limits.request_body_timeout_seconds == 0 || self.limits.request_body_min_rate == 0 {
            return Err(ConfigError::Invalid(
                "limits.request_body_timeout_seconds and limits.request_body_min_rate must be positive"
                    .into(),
            ));
        }
        let sc = &self.scaling;
        if sc.period_seconds == 0
            || sc.scale_out_periods == 0
            || sc.scale_in_periods == 0
            || sc.sample_seconds == 0
        {
            return Err(ConfigError::Invalid(
                "scaling: period_seconds, scale_out_periods, scale_in_periods and sample_seconds must be positive".into(),
            ));
        }
        if let Some(unknown) = self
            .runner
            .allowed_capabilities
            .iter()
            .find(|c| !crate::runner::CAPABILITIES.contains(&c.as_str()))
        {
            return Err(ConfigError::Invalid(format!(
                "runner.allowed_capabilities: unknown capability {unknown:?} (ECS names such as \
                 CHOWN or NET_BIND_SERVICE, without CAP_)"
            )));
        }
        Ok(())
    }

    pub fn blob_dir(&self) -> PathBuf {
        if self.storage.path.as_os_str().is_empty() {
            self.data_dir.join("blobs")
        } else {
            self.storage.path.clone()
        }
    }

    pub fn signing_key_path(&self) -> PathBuf {
        if self.auth.signing_key.as_os_str().is_empty() {
            self.data_dir.join("token-signing-key.pem")
        } else {
            self.auth.signing_key.clone()
        }
    }

    pub fn secrets_key_path(&self) -> PathBuf {
        if self.auth.secrets_key.as_os_str().is_empty() {
            self.data_dir.join("secrets-key")
        } else {
            self.auth.secrets_key.clone()
        }
    }

    /// The metadata database as configured.
    pub fn database(&self) -> Database {
        if self.database.url.is_empty() {
            Database::Sqlite {
                path: self.database_path(),
                readers: self.database.readers,
            }
        } else {
            Database::Postgres {
                url: self.database.url.clone(),
                connections: self.database.readers,
            }
        }
    }

    pub fn database_path(&self) -> PathBuf {
        if self.database.path.as_os_str().is_empty() {
            self.data_dir.join("metadata.db")
        } else {
            self.database.path.clone()
        }
    }
}

/// Deep-merges `top` over `base`: tables merge key by key, other values replace.
fn merge(base: &mut toml::Value, top: toml::Value) {
    match (base, top) {
        (toml::Value::Table(base), toml::Value::Table(top)) => {
            for (k, v) in top {
                match base.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}

/// Overlays `PREFIX_KEY` variables on every leaf of `value`, typed like the leaf.
fn apply_env(
    value: &mut toml::Value,
    prefix: &str,
    env: &HashMap<String, String>,
) -> Result<(), ConfigError> {
    let toml::Value::Table(table) = value else {
        return Ok(());
    };
    for (key, leaf) in table.iter_mut() {
        let name = format!("{prefix}_{}", key.to_uppercase());
        if leaf.is_table() {
            apply_env(leaf, &name, env)?;
            continue;
        }
        let Some(raw) = env.get(&name) else { continue };
        let bad = |message: String| ConfigError::Env {
            name: name.clone(),
            message,
        };
        *leaf = match leaf {
            toml::Value::Integer(_) => toml::Value::Integer(
                raw.parse()
                    .map_err(|e| bad(format!("expected an integer: {e}")))?,
            ),
            toml::Value::Boolean(_) => toml::Value::Boolean(
                raw.parse()
                    .map_err(|e| bad(format!("expected true or false: {e}")))?,
            ),
            toml::Value::Float(_) => toml::Value::Float(
                raw.parse()
                    .map_err(|e| bad(format!("expected a number: {e}")))?,
            ),
            // Lists of strings: comma-separated.
            toml::Value::Array(_) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| toml::Value::String(v.into()))
                    .collect(),
            ),
            _ => toml::Value::String(raw.clone()),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wharf.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:6000\"\n[limits]\nmax_page = 50\nchunk_min_length = 7\n",
        )
        .unwrap();
        let env = HashMap::from([
            ("WHARF_LIMITS_MAX_PAGE".to_string(), "60".to_string()),
            ("WHARF_DATA_DIR".to_string(), "/from/env".to_string()),
        ]);
        let cli = Overrides {
            data_dir: Some("/from/cli".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&file), &env, &cli).unwrap();
        assert_eq!(c.listen.port(), 6000, "file over default");
        assert_eq!(c.limits.chunk_min_length, 7);
        assert_eq!(c.limits.max_page, 60, "env over file");
        assert_eq!(c.data_dir, PathBuf::from("/from/cli"), "CLI over env");
        assert_eq!(c.limits.max_manifest_bytes, 4 * 1024 * 1024, "default kept");
    }

    #[test]
    fn scaling_periods_must_be_positive() {
        let mut c = Config::default();
        c.validate().unwrap();
        c.scaling.scale_in_periods = 0;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.scaling.sample_seconds = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn example_file_matches_the_defaults() {
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/wharf.toml");
        let raw: toml::Value = toml::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
        let want = toml::Value::try_from(Config::default()).unwrap();
        assert_eq!(
            raw, want,
            "config/wharf.toml must list every key with its default"
        );
    }

    #[test]
    fn replica_example_shares_storage_and_database() {
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/replica.toml");
        let c = Config::load(Some(&example), &HashMap::new(), &Overrides::default()).unwrap();
        c.validate().unwrap();
        assert!(matches!(c.storage.backend, StorageBackend::S3));
        assert!(matches!(c.database(), Database::Postgres { .. }));
        assert!(
            c.auth.signing_key.as_os_str().is_empty(),
            "the key comes from the database"
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wharf.toml");
        std::fs::write(&file, "[limits]\nmax_pages = 5\n").unwrap();
        assert!(Config::load(Some(&file), &HashMap::new(), &Overrides::default()).is_err());
        let env = HashMap::from([("WHARF_LIMITS_MAX_PAGE".to_string(), "many".to_string())]);
        assert!(matches!(
            Config::load(None, &env, &Overrides::default()),
            Err(ConfigError::Env { .. })
        ));
    }
}
