//! Shared helpers: a real Wharf on a loopback port with its own data folder.
#![allow(dead_code, reason = "each test file uses a different subset")]
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers abort the test on failure"
)]

pub mod browser;

use std::net::SocketAddr;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wharf::config::{Config, Overrides};
use wharf::server::{self, AppState};
use wharf::storage::AuditStore as _;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A running server; stops when dropped or on [`TestServer::stop`].
pub struct TestServer {
    pub addr: SocketAddr,
    /// The server's registry service, for jobs tests run directly (garbage collection).
    pub registry: wharf::registry::Registry,
    pub http: reqwest::Client,
    /// The metadata database, for tests that add credentials directly.
    pub database: wharf::storage::Database,
    /// The server's auth service (its secrets key seals access keys tests create).
    pub auth: std::sync::Arc<wharf::auth::Auth>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

/// The PostgreSQL server and database name for a data folder, under `WHARF_TEST_POSTGRES`.
fn postgres_name(data_dir: &Path) -> Option<(String, String)> {
    let server = std::env::var("WHARF_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())?;
    let hash = Sha256::digest(data_dir.to_string_lossy().as_bytes());
    Some((server, format!("wharf_test_{}", hex::encode(&hash[..8]))))
}

/// The `wharf` binary: `WHARF_BIN` when set (as for the e2e scripts), else the
/// one cargo built for this test.
pub fn wharf_bin() -> std::path::PathBuf {
    std::env::var_os("WHARF_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_wharf").into())
}

/// The `wharf` binary, set up to use the same metadata database as a
/// [`TestServer`] over `data_dir` (pass `--data-dir` as usual).
pub fn wharf_cli(data_dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(wharf_bin());
    if let Some((server, name)) = postgres_name(data_dir) {
        command.env("WHARF_DATABASE_URL", format!("{server}/{name}"));
    }
    command
}

/// With `WHARF_TEST_POSTGRES` set to a PostgreSQL server URL (no database),
/// each data folder's metadata lives in a database of its own on that server
/// (the same one when a test restarts Wharf), so the suite runs on both stores.
async fn postgres_for(data_dir: &Path) -> Option<String> {
    use sqlx::Connection as _;
    let (server, name) = postgres_name(data_dir)?;
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("WHARF_TEST_POSTGRES server");
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await
        .expect("list databases");
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
    }
    Some(format!("{server}/{name}"))
}

/// The configuration of a test Wharf over `data_dir`: embedded defaults, its
/// metadata in PostgreSQL under `WHARF_TEST_POSTGRES`, then `tweak`.
pub async fn test_config(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> Config {
    let overrides = Overrides {
        data_dir: Some(data_dir.to_path_buf()),
        ..Default::default()
    };
    let mut config = Config::load(None, &Default::default(), &overrides).expect("config");
    if let Some(url) = postgres_for(data_dir).await {
        config.database.url = url;
    }
    tweak(&mut config);
    config
}

impl TestServer {
    /// Starts Wharf over `data_dir` on a free port.
    pub async fn start(data_dir: &Path) -> TestServer {
        Self::start_with(data_dir, |_| {}).await
    }

    pub async fn start_with(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> TestServer {
        // reqwest is built without a TLS provider of its own; plain HTTP still needs one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = test_config(data_dir, tweak).await;
        let (state, background) = AppState::open(&config).await.expect("state");
        let registry = state.registry.clone();
        let auth = state.auth.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        let tls = config
            .tls
            .enabled()
            .then(|| wharf::tls::server_config(&config.tls.cert, &config.tls.key).expect("tls"));
        let handle = tokio::spawn(server::run(listener, state, background, tls, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            registry,
            http: reqwest::Client::new(),
            database: config.database(),
            auth,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful stop; waits for the server task to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("join").expect("serve");
        }
    }

    /// Monolithic upload; returns the digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        self.push_blob_with(repo, data, None).await
    }

    /// Monolithic upload as `(user, password)`; returns the digest.
    pub async fn push_blob_as(&self, repo: &str, data: &[u8], user: (&str, &str)) -> String {
        self.push_blob_with(repo, data, Some(user)).await
    }

    async fn push_blob_with(&self, repo: &str, data: &[u8], user: Option<(&str, &str)>) -> String {
        let digest = sha256(data);
        let mut request = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .body(data.to_vec());
        if let Some((name, password)) = user {
            request = request.basic_auth(name, Some(password));
        }
        let r = request.send().await.expect("send");
        assert_eq!(r.status(), 201, "push_blob: {:?}", r.text().await);
        digest
    }

    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> reqwest::Response {
        self.http
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("Content-Type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("send")
    }

    /// Pushes a config and one layer, and a manifest naming them under `tag`;
    /// returns the manifest bytes.
    pub async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> Vec<u8> {
        let config =
            format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#).into_bytes();
        let layer = format!("layer for {seed}").into_bytes();
        self.push_blob(repo, &config).await;
        self.push_blob(repo, &layer).await;
        let manifest = image_manifest(&config, &[&layer]);
        let r = self.put_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(r.status(), 201, "push_image: {:?}", r.text().await);
        manifest
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Where the local blob store keeps a blob's bytes under a data folder.
pub fn blob_file(data_dir: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    data_dir
        .join("blobs/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
}

/// An access token with `scopes` and no expiry, made as the CLI makes one; its secret.
pub async fn create_token(
    store: &dyn wharf::storage::CredentialStore,
    name: &str,
    scopes: &[&str],
) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    wharf::admin::create_token(store, name, &scopes, None, wharf::admin::By::unrecorded())
        .await
        .expect("create token")
}

/// A loopback port free right now, for a server started as a separate process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub fn image_manifest(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha256(l), "size": l.len()
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
        "layers": layers,
    }))
    .expect("json")
}

/// The error code of an OCI error body.
pub async fn error_code(r: reqwest::Response) -> String {
    let body: serde_json::Value = r.json().await.expect("error body is JSON");
    body["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The static busybox the runner tests put in their images (Debian's busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

/// A Docker Engine to run containers on, or `None` (skip, saying why) outside
/// CI; under `CI=true` a missing engine or busybox is a failure.
pub async fn docker() -> Option<wharf::runner::engine::DockerEngine> {
    use wharf::runner::engine::{ContainerEngine as _, DockerEngine};
    let why = if !Path::new(BUSYBOX).exists() {
        format!("{BUSYBOX} is missing (Debian package busybox-static)")
    } else {
        match DockerEngine::connect("") {
            Ok(engine) => match engine.ping().await {
                Ok(()) => return Some(engine),
                Err(e) => format!("no Docker Engine answers: {e}"),
            },
            Err(e) => format!("no Docker Engine: {e}"),
        }
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {why}"
    );
    // Written past the test harness's capture, so the reason shows.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("SKIP: {why}\n").as_bytes());
    None
}

/// A layer holding the static busybox as `bin/busybox` with `bin/sh` linked to it.
pub fn busybox_layer() -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    // An explicit directory entry: the engine would create `bin` 0600, which
    // a container without capabilities (the runner's default) cannot search.
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o755);
    layer
        .append_data(&mut dir, "bin/", std::io::empty())
        .expect("tar");
    layer
        .append_path_with_name(BUSYBOX, "bin/busybox")
        .expect("tar");
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    layer
        .append_link(&mut link, "bin/sh", "busybox")
        .expect("tar");
    layer.into_inner().expect("tar")
}

/// Pushes a one-layer image of this machine's architecture, runnable by the
/// task runner, as `repo:1` to the server at `base` as `user`; its digest.
pub async fn push_runnable_image(
    http: &reqwest::Client,
    base: &str,
    (user, password): (&str, &str),
    repo: &str,
    layer: Vec<u8>,
) -> String {
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": { "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [sha256(&layer)] },
    }))
    .expect("json");
    for blob in [&layer, &config] {
        let r = http
            .post(format!(
                "{base}/v2/{repo}/blobs/uploads/?digest={}",
                sha256(blob)
            ))
            .basic_auth(user, Some(password))
            .body(blob.clone())
            .send()
            .await
            .expect("blob push");
        assert_eq!(r.status(), 201, "blob push");
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len() }],
    }))
    .expect("json");
    let r = http
        .put(format!("{base}/v2/{repo}/manifests/1"))
        .basic_auth(user, Some(password))
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .expect("manifest push");
    assert_eq!(r.status(), 201, "manifest push");
    sha256(&manifest)
}

/// Waits (the writer is a background task) until the log holds an entry
/// that `matches`; returns it.
pub async fn audited(
    store: &wharf::storage::SqlMetadata,
    what: &str,
    matches: impl Fn(&wharf::storage::AuditEntry) -> bool,
) -> wharf::storage::AuditEntry {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let entries = store
            .audit_entries(&wharf::storage::AuditQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("audit entries");
        if let Some(r) = entries.into_iter().find(|r| matches(&r.entry)) {
            return r.entry;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audit entry: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
