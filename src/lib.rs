//! Wharf: a private, OCI-compliant container registry.
//!
//! Layers, and who may call whom (dependencies point down only; checked by
//! `layers.py`, which reports no cycle):
//! - `server`, `main`: the composition root; builds the state and the router.
//! - `config`: the one typed configuration; reads the settings types the
//!   services own (`storage::s3::S3Config`, `auth::Rule`, `runner::Safety`…),
//!   and nothing imports it but the composition root.
//! - HTTP adapters, none importing another: `oci::api` (`/v2/`: one typed
//!   endpoint table, each endpoint declaring its `auth::Need`, checked once
//!   before the handler runs), `ecr` and `ecs` (AWS-shaped services over the
//!   `aws` protocol library, which imports neither; each an `Operation` enum
//!   parsed from `X-Amz-Target`, each operation declaring its
//!   `auth::EcrNeed` or `auth::EcsNeed`, checked once before the handler
//!   runs), `autoscaling` (service auto scaling's Application Auto Scaling
//!   API over `scaling`, authorized as ECS services are), `auth::api` (`/token`); `operations` (health, metrics,
//!   the request log) labels `/v2/` requests by `oci::api::Route`; `ui`
//!   (the web console at `/ui/`: server-rendered pages over `registry`,
//!   authorized by `auth` with the same grants as `/v2/`).
//! - `admin`: the `wharf user` / `wharf token` commands and the console's operator
//!   pages' changes, over `auth`, `storage` and `audit`.
//! - `auth`: who is asking and may they (`Auth::check` of a `Need`,
//!   `Auth::may_call` of an ECR action, `Auth::admits_ecs` of an ECS need);
//!   open mode and the anonymous rules are applied there.
//! - `registry`, `runner`, `scaling` (target tracking over the runner's
//!   services and their sampled utilization): domain services; no HTTP types.
//! - `storage`: blob content over `object_store` and metadata in SQL.
//! - Low layers used by all: `oci` (outside `api`: digests, names, manifests),
//!   `http` (request id, `InternalCause`, `Retry-After`, the query string,
//!   the peer address, the 503-vs-500 `Fault`), `glob`, `body`, `metrics`,
//!   `tls`, `connections`, `audit` (recording the audit log over `storage`), `sendfile` (zero-copy blob bodies on plain
//!   HTTP/1), `notifications`.

pub mod admin;
pub mod agent;
pub mod audit;
pub mod auth;
pub mod autoscaling;
pub mod aws;
pub mod balancer;
pub mod body;
pub mod config;
pub mod connections;
pub mod ecr;
pub mod ecs;
pub mod elb;
pub mod glob;
pub mod http;
pub mod metrics;
pub mod notifications;
pub mod oci;
pub mod operations;
pub mod registry;
pub mod runner;
pub mod scaling;
pub mod sendfile;
pub mod server;
pub mod storage;
pub mod tls;
pub mod ui;
