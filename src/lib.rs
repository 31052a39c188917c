//! Wharf: a private, OCI-compliant container registry.
//!
//! Layers, and who may call whom (dependencies point down only):
//! - `server`, `config`: process wiring; build the state and the router.
//! - `oci::api`: HTTP adapter for `/v2/`: parses routes, calls `registry`, maps
//!   errors to OCI error codes in one place.
//! - `registry`: domain services (uploads, blobs, manifests, tags, referrers);
//!   no HTTP types.
//! - `storage`: blob content over `object_store` and metadata in SQL.
//! - `oci` (outside `api`): pure data types (digests, names, manifests) used by all.
//! - `http`: what every HTTP adapter shares (request id, internal cause,
//!   `Retry-After`, the query string, the peer address, the 503-vs-500 split);
//!   a leaf that imports no service.

pub mod admin;
pub mod auth;
pub mod aws;
pub mod body;
pub mod config;
pub mod connections;
pub mod ecr;
pub mod ecs;
pub mod http;
pub mod metrics;
pub mod notifications;
pub mod oci;
pub mod operations;
pub mod registry;
pub mod runner;
pub mod server;
pub mod storage;
pub mod tls;
