//! The OCI data model (digests, names, manifests) and, under `api`, the HTTP
//! adapter for `/v2/`. The data model is pure and may be used by every layer.

pub mod api;
pub mod digest;
pub mod manifest;
pub mod name;

pub use digest::{Algorithm, Digest, Hasher};
pub use name::{Reference, RepoName, Tag};
