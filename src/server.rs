//! Application state, the router, and the serve loop with graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, Request};
use axum::middleware::Next;
use axum::response::Response;
use object_store::local::LocalFileSystem;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::oci::api::{self, InternalCause, OciSettings};
use crate::registry::{Limits, Registry};
use crate::storage::{BlobStore, MetadataStore, SqliteMetadata, Staging};

/// Everything handlers share; cheap to clone. Handlers ask for the part they need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub registry: Registry,
    pub oci: OciSettings,
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
}

impl AppState {
    /// Opens storage and the database as configured.
    pub async fn open(config: &Config) -> Result<AppState, StartupError> {
        let blob_dir = config.blob_dir();
        for dir in [&config.data_dir, &blob_dir] {
            std::fs::create_dir_all(dir).map_err(|source| StartupError::Dir {
                path: dir.clone(),
                source,
            })?;
        }
        let store = LocalFileSystem::new_with_prefix(&blob_dir)?.with_automatic_cleanup(true);
        let meta: Arc<dyn MetadataStore> =
            Arc::new(SqliteMetadata::open(&config.database_path(), config.database.readers).await?);
        let limits = Limits {
            max_manifest_bytes: config.limits.max_manifest_bytes,
            manifest_cache_bytes: config.limits.manifest_cache_bytes,
        };
        Ok(AppState {
            registry: Registry::new(
                BlobStore::new(Arc::new(store)),
                Staging::new(blob_dir),
                meta,
                limits,
            ),
            oci: OciSettings {
                chunk_min_length: config.limits.chunk_min_length,
                max_page: config.limits.max_page,
            },
        })
    }
}

/// The whole HTTP application; tests drive it without a socket.
pub fn build_router(state: AppState) -> Router {
    api::router()
        .with_state(state)
        .layer(axum::middleware::from_fn(log_request))
}

/// One log line per request; a 500's cause (carried on the response) is logged here, once.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(%method, path, status, duration_ms, error = %cause, "request failed");
    } else {
        tracing::info!(%method, path, status, duration_ms, "request");
    }
    response
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, build_router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
