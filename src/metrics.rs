//! Process metrics in the Prometheus (OpenMetrics) text format, served at
//! `/metrics`. Counters are process-wide; what the database knows (blobs
//! stored) is read when scraped.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// `password`, `token`, `scope`, `forbidden`, `signature`...
    pub reason: &'static str,
}

/// A service of the task runner.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub cluster: String,
    pub service: String,
}

type Ratio = Gauge<f64, std::sync::atomic::AtomicU64>;

pub struct Metrics {
    registry: Registry,
    pub service_cpu: Family<ServiceLabels, Ratio>,
    pub service_memory: Family<ServiceLabels, Ratio>,
    /// The services whose utilization is exported now.
    services_exported: std::sync::Mutex<std::collections::HashSet<ServiceLabels>>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram>,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    pub upload_seconds: Histogram,
    pub auth_failures: Family<AuthLabels, Counter>,
    pub gc_runs: Counter,
    pub gc_blobs_removed: Counter,
    pub gc_bytes_reclaimed: Counter,
    pub lifecycle_expired: Counter,
    pub blobs_stored: Gauge,
    pub blob_bytes_stored: Gauge,
    pub corrupt_reads: Counter,
    pub hashed_reads: Counter,
    pub sendfile_reads: Counter,
    pub scrub_blobs: Counter,
    pub scrub_bytes: Counter,
    pub scrub_corrupt: Counter,
    pub scrub_unreadable: Counter,
    pub scrub_last_pass: Gauge,
    pub notifications_sent: Counter,
    pub notifications_failed: Counter,
    pub notifications_dropped: Counter,
    pub audit_dropped: Counter,
    pub audit_failed: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("wharf");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 4.0, 10))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request (until the response starts)",
            request_seconds.clone(),
        );
        let bytes_received = Counter::default();
        registry.register(
            "http_received_bytes",
            "Request body bytes received",
            bytes_received.clone(),
        );
        let bytes_sent = Counter::default();
        registry.register(
            "http_sent_bytes",
            "Response body bytes sent (declared lengths)",
            bytes_sent.clone(),
        );
        let upload_seconds = Histogram::new(exponential_buckets(0.01, 4.0, 10));
        registry.register(
            "blob_upload_duration_seconds",
            "Blob uploads from session start (or monolithic request) to verified blob",
            upload_seconds.clone(),
        );
        let auth_failures = Family::<AuthLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Refused credentials and denied requests by reason",
            auth_failures.clone(),
        );
        let gc_runs = Counter::default();
        registry.register("gc_runs", "Garbage collections completed", gc_runs.clone());
        let gc_blobs_removed = Counter::default();
        registry.register(
            "gc_blobs_removed",
            "Blobs removed by garbage collection",
            gc_blobs_removed.clone(),
        );
        let gc_bytes_reclaimed = Counter::default();
        registry.register(
            "gc_reclaimed_bytes",
            "Bytes reclaimed by garbage collection",
            gc_bytes_reclaimed.clone(),
        );
        let lifecycle_expired = Counter::default();
        registry.register(
            "lifecycle_expired_images",
            "Images expired by lifecycle policies",
            lifecycle_expired.clone(),
        );
        let blobs_stored = Gauge::default();
        registry.register("blobs_stored", "Blobs recorded", blobs_stored.clone());
        let blob_bytes_stored = Gauge::default();
        registry.register(
            "blob_stored_bytes",
            "Bytes of the blobs recorded (each counted once)",
            blob_bytes_stored.clone(),
        );
        let corrupt_reads = Counter::default();
        registry.register(
            "blob_corrupt_reads",
            "Full blob reads whose bytes did not match the digest",
            corrupt_reads.clone(),
        );
        let hashed_reads = Counter::default();
        registry.register(
            "blob_hashed_reads",
            "Full blob reads hashed as they were sent",
            hashed_reads.clone(),
        );
        let sendfile_reads = Counter::default();
        registry.register(
            "blob_sendfile_reads",
            "Blob reads sent from the file by the kernel (sendfile), unhashed",
            sendfile_reads.clone(),
        );
        let scrub_blobs = Counter::default();
        registry.register(
            "scrub_blobs",
            "Blobs the scrub hashed and found matching",
            scrub_blobs.clone(),
        );
        let scrub_bytes = Counter::default();
        registry.register(
            "scrub_read_bytes",
            "Bytes the scrub hashed",
            scrub_bytes.clone(),
        );
        let scrub_corrupt = Counter::default();
        registry.register(
            "scrub_corrupt_blobs",
            "Blobs the scrub found not matching their digest",
            scrub_corrupt.clone(),
        );
        let scrub_unreadable = Counter::default();
        registry.register(
            "scrub_unreadable_blobs",
            "Blobs the scrub could not read",
            scrub_unreadable.clone(),
        );
        let scrub_last_pass = Gauge::default();
        registry.register(
            "scrub_last_pass_completed_timestamp_seconds",
            "When the scrub last finished a pass over every blob (Unix seconds)",
            scrub_last_pass.clone(),
        );
        let notifications_sent = Counter::default();
        registry.register(
            "notifications_sent",
            "Webhook events delivered",
            notifications_sent.clone(),
        );
        let notifications_failed = Counter::default();
        registry.register(
            "notifications_failed",
            "Webhook events dropped after every delivery attempt failed",
            notifications_failed.clone(),
        );
        let notifications_dropped = Counter::default();
        registry.register(
            "notifications_dropped",
            "Webhook events dropped because an endpoint's queue was full",
            notifications_dropped.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_dropped",
            "Audit log entries dropped because the writer's queue was full",
            audit_dropped.clone(),
        );
        let audit_failed = Counter::default();
        registry.register(
            "audit_failed",
            "Audit log entries the database refused to record",
            audit_failed.clone(),
        );
        let service_cpu = Family::<ServiceLabels, Ratio>::default();
        registry.register(
            "service_cpu_utilization_percent",
            "A service's CPU use over what its running tasks reserve, last sample (ECS CPUUtilization)",
            service_cpu.clone(),
        );
        let service_memory = Family::<ServiceLabels, Ratio>::default();
        registry.register(
            "service_memory_utilization_percent",
            "A service's memory use over what its running tasks reserve, last sample (ECS MemoryUtilization)",
            service_memory.clone(),
        );
        Metrics {
            registry,
            service_cpu,
            service_memory,
            services_exported: Default::default(),
            corrupt_reads,
            hashed_reads,
            sendfile_reads,
            scrub_blobs,
            scrub_bytes,
            scrub_corrupt,
            scrub_unreadable,
            scrub_last_pass,
            notifications_sent,
            notifications_failed,
            notifications_dropped,
            audit_dropped,
            audit_failed,
            requests,
            request_seconds,
            bytes_received,
            bytes_sent,
            upload_seconds,
            auth_failures,
            gc_runs,
            gc_blobs_removed,
            gc_bytes_reclaimed,
            lifecycle_expired,
            blobs_stored,
            blob_bytes_stored,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A service's latest utilization sample (a figure without data is not exported).
    pub fn service_utilization(
        &self,
        cluster: &str,
        service: &str,
        cpu: Option<f64>,
        memory: Option<f64>,
    ) {
        let labels = ServiceLabels {
            cluster: cluster.to_string(),
            service: service.to_string(),
        };
        for (family, value) in [(&self.service_cpu, cpu), (&self.service_memory, memory)] {
            match value {
                Some(v) => {
                    family.get_or_create(&labels).set(v);
                }
                None => {
                    family.remove(&labels);
                }
            }
        }
        self.services_exported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(labels);
    }

    /// Stops exporting the utilization of services not in `services` (cluster, service).
    pub fn retain_services(&self, services: &[(String, String)]) {
        let mut exported = self
            .services_exported
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        exported.retain(|labels| {
            let keep = services
                .iter()
                .any(|(c, s)| *c == labels.cluster && *s == labels.service);
            if !keep {
                self.service_cpu.remove(labels);
                self.service_memory.remove(labels);
            }
            keep
        });
    }

    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&AuthLabels { reason })
            .inc();
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
