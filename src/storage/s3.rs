//! The S3 backend of the blob store: any S3-compatible server through
//! `object_store`'s `AmazonS3`, tuned to fail fast (a few quick retries, short
//! connect timeout) so an unreachable store turns into 503s rather than
//! requests that hang.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

use super::BlobStore;

/// An S3-compatible object store (AWS, MinIO, SeaweedFS, Ceph...).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket ("" for none).
    pub prefix: String,
    pub region: String,
    /// Endpoint URL for S3-compatible servers; empty: AWS.
    pub endpoint: String,
    /// `http://endpoint/bucket/key` instead of `http://bucket.endpoint/key`.
    pub path_style: bool,
    /// Credentials; empty: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and the
    /// rest of the usual AWS environment, instance credentials included).
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Seconds a request to the store may take, a whole blob read included,
    /// before it fails (then 503). Unreachable stores fail within seconds
    /// regardless (3 s connect timeout, two quick retries).
    pub timeout_seconds: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            prefix: String::new(),
            region: "us-east-1".into(),
            endpoint: String::new(),
            path_style: false,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            timeout_seconds: 300,
        }
    }
}

/// The blob store in the bucket described by `c` (keys below `c.prefix`),
/// able to presign direct reads.
pub fn open(c: &S3Config) -> Result<BlobStore, object_store::Error> {
    let client = ClientOptions::new()
        .with_allow_http(c.endpoint.starts_with("http://"))
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(c.timeout_seconds.max(1)));
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(5),
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&c.bucket)
        .with_region(&c.region)
        .with_virtual_hosted_style_request(!c.path_style)
        .with_client_options(client)
        .with_retry(retry);
    if !c.endpoint.is_empty() {
        builder = builder.with_endpoint(&c.endpoint);
    }
    if !c.access_key_id.is_empty() {
        builder = builder
            .with_access_key_id(&c.access_key_id)
            .with_secret_access_key(&c.secret_access_key);
    }
    let s3 = Arc::new(builder.build()?);
    let prefix = c.prefix.trim_matches('/');
    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        s3.clone()
    } else {
        let inner: Arc<dyn ObjectStore> = s3.clone();
        Arc::new(PrefixStore::new(inner, prefix))
    };
    Ok(BlobStore::new(store).with_signer(s3, prefix))
}
