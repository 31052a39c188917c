//! Recording the audit log: who did what, when, to which repository.
//!
//! [`Audit::record`] fills in the time, bounds every field and never fails
//! the operation it records: a write that fails is logged (once, here) and
//! counted (`wharf_audit_failed`). In the server, entries go through a
//! bounded queue to one background writer ([`AuditWriter`]), so a push never
//! waits for an extra database write; when the queue is full an entry is
//! dropped and counted (`wharf_audit_dropped`) rather than slowing requests.
//! The CLI records directly ([`Audit::direct`]): it has no background loop
//! and its one change is worth the wait.
//!
//! Actors: a user's name, `token:NAME` for an access token, [`ANONYMOUS`],
//! [`SERVER`] for the server's own work (scheduled collections and
//! lifecycle runs), or `cli:USER` for a command on the host ([`cli_actor`]). Failed sign-ins are recorded at most once per client
//! address per minute ([`FailureGate`]), so a password-guessing flood cannot
//! write unbounded rows. May use `storage` and `metrics` only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::metrics;
use crate::storage::{AuditEntry, AuditStore};

/// The actor of a request without credentials.
pub const ANONYMOUS: &str = "anonymous";
/// The actor of the server's own work.
pub const SERVER: &str = "wharf";
/// Entries waiting for the writer before new ones are dropped.
pub const QUEUE: usize = 10_000;
/// The longest actor, action, repository or target kept.
const MAX_FIELD: usize = 256;
/// The longest detail kept.
const MAX_DETAIL: usize = 2048;

/// The actor for a principal's subject (`Principal::subject`, empty when
/// anonymous).
pub fn actor(subject: &str) -> &str {
    if subject.is_empty() {
        ANONYMOUS
    } else {
        subject
    }
}

/// The actor of a command run on the server's host (`wharf user`, `wharf
/// token`, `wharf gc`): `cli:` and the operating-system user when known.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    if user.is_empty() {
        "cli".into()
    } else {
        format!("cli:{user}")
    }
}

/// `text` cut to at most `max` bytes at a character boundary, NULs (which
/// PostgreSQL's text cannot hold: a failed login's user name may carry one)
/// replaced.
fn bounded(text: &str, max: usize) -> String {
    let mut text = text.replace('\0', "\u{FFFD}");
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

enum Sink {
    /// Recording is off (tests of other parts, tools that record nothing).
    Off,
    Queue(mpsc::Sender<AuditEntry>),
    Direct(Arc<dyn AuditStore>),
}

/// The recording handle; cheap to clone. The default records nothing.
#[derive(Clone)]
pub struct Audit {
    sink: Arc<Sink>,
    failures: Arc<FailureGate>,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            sink: Arc::new(Sink::Off),
            failures: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Audit")
    }
}

impl Audit {
    /// A handle whose entries a background [`AuditWriter`] writes; at most
    /// `capacity` wait.
    pub fn queued(store: Arc<dyn AuditStore>, capacity: usize) -> (Audit, AuditWriter) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let audit = Audit {
            sink: Arc::new(Sink::Queue(tx)),
            failures: Arc::default(),
        };
        (
            audit,
            AuditWriter {
                store,
                queue: rx,
                retention: None,
            },
        )
    }

    /// A handle that writes each entry before `record` returns.
    pub fn direct(store: Arc<dyn AuditStore>) -> Audit {
        Audit {
            sink: Arc::new(Sink::Direct(store)),
            failures: Arc::default(),
        }
    }

    /// Records that `actor` did `action` (dotted by area: `push`, `delete`,
    /// `login.failed`, `token.create`, `gc.run`…) to `target` in
    /// `repository` (either may be empty), with a short `detail`. Never
    /// fails; with a queue it never waits either.
    pub async fn record(
        &self,
        actor: &str,
        action: &str,
        repository: &str,
        target: &str,
        detail: &str,
    ) {
        let entry = entry(actor, action, repository, target, detail);
        match &*self.sink {
            Sink::Off => {}
            Sink::Queue(_) => self.enqueue(entry),
            Sink::Direct(store) => write(store.as_ref(), &entry).await,
        }
    }

    /// [`Audit::record`] for callers that cannot wait (the notifier): with a
    /// direct handle the write runs on a task of its own.
    pub fn record_now(
        &self,
        actor: &str,
        action: &str,
        repository: &str,
        target: &str,
        detail: &str,
    ) {
        let entry = entry(actor, action, repository, target, detail);
        match &*self.sink {
            Sink::Off => {}
            Sink::Queue(_) => self.enqueue(entry),
            Sink::Direct(store) => {
                let store = store.clone();
                tokio::spawn(async move { write(store.as_ref(), &entry).await });
            }
        }
    }

    fn enqueue(&self, entry: AuditEntry) {
        if let Sink::Queue(tx) = &*self.sink
            && tx.try_send(entry).is_err()
        {
            metrics().audit_dropped.inc();
        }
    }

    /// Records a failed sign-in from `client` as `login.failed`, unless one
    /// from that address was recorded within the last minute (those are
    /// counted and the count goes in the next entry's detail).
    pub async fn login_failed(&self, user: &str, client: IpAddr, via: &str) {
        let Some(suppressed) = self.failures.admit(client, Instant::now()) else {
            return;
        };
        let mut detail = format!("via={via} client={client}");
        if suppressed > 0 {
            detail.push_str(&format!(" (+{suppressed} not recorded)"));
        }
        self.record(user, "login.failed", "", "", &detail).await;
    }
}

fn entry(actor: &str, action: &str, repository: &str, target: &str, detail: &str) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms(),
        actor: bounded(self::actor(actor), MAX_FIELD),
        action: bounded(action, MAX_FIELD),
        repository: bounded(repository, MAX_FIELD),
        target: bounded(target, MAX_FIELD),
        detail: bounded(detail, MAX_DETAIL),
    }
}

async fn write(store: &dyn AuditStore, entry: &AuditEntry) {
    if let Err(e) = store.record_audit(entry).await {
        metrics().audit_failed.inc();
        tracing::warn!(error = %e, action = %entry.action, "audit log: entry not recorded");
    }
}

/// Bounds failed sign-in records: one per client address per [`WINDOW`];
/// at most [`MAX_ADDRESSES`] addresses are remembered, so a flood from many
/// addresses records at most that many rows a minute.
#[derive(Default)]
pub struct FailureGate {
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// How long one address's failures share one record.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once.
pub const MAX_ADDRESSES: usize = 4096;

impl FailureGate {
    /// `Some(n)` when a failure from `client` at `now` is to be recorded,
    /// `n` being the failures from it not recorded since the last record;
    /// `None` when it is not to be recorded.
    pub fn admit(&self, client: IpAddr, now: Instant) -> Option<u32> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((last, suppressed)) = seen.get_mut(&client) {
            if now.duration_since(*last) < WINDOW {
                *suppressed = suppressed.saturating_add(1);
                return None;
            }
            let n = *suppressed;
            *last = now;
            *suppressed = 0;
            return Some(n);
        }
        if seen.len() >= MAX_ADDRESSES {
            seen.retain(|_, (last, _)| now.duration_since(*last) < WINDOW);
            if seen.len() >= MAX_ADDRESSES {
                return None;
            }
        }
        seen.insert(client, (now, 0));
        Some(0)
    }
}

/// The background half of a queued [`Audit`]: writes entries as they come
/// and, with a retention, forgets older ones once an hour.
pub struct AuditWriter {
    store: Arc<dyn AuditStore>,
    queue: mpsc::Receiver<AuditEntry>,
    retention: Option<Duration>,
}

/// How often old entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl AuditWriter {
    /// Forgets entries older than `days` (0 keeps them all).
    pub fn with_retention_days(mut self, days: u64) -> Self {
        self.retention = (days > 0).then(|| Duration::from_secs(days * 86_400));
        self
    }

    /// Writes queued entries until `shutdown`, then those still queued;
    /// prunes at start and every hour.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                entry = self.queue.recv() => match entry {
                    Some(entry) => write(self.store.as_ref(), &entry).await,
                    None => return,
                },
                _ = prune.tick() => {
                    if let Some(retention) = self.retention {
                        prune_once(self.store.as_ref(), retention).await;
                    }
                }
            }
        }
        while let Ok(entry) = self.queue.try_recv() {
            write(self.store.as_ref(), &entry).await;
        }
    }
}

/// Forgets entries older than `retention`; logs what it did or why not.
pub async fn prune_once(store: &dyn AuditStore, retention: Duration) -> u64 {
    let before = now_ms().saturating_sub(retention.as_millis() as i64);
    match store.prune_audit(before).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(entries = n, "audit log pruned");
            }
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, "audit log: pruning failed");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_are_recorded_once_a_minute_per_address() {
        let gate = FailureGate::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(gate.admit(a, t0), Some(0));
        for s in 1..60 {
            assert_eq!(gate.admit(a, t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(gate.admit(b, t0), Some(0));
        assert_eq!(gate.admit(a, t0 + Duration::from_secs(60)), Some(59));
        assert_eq!(gate.admit(a, t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn a_flood_from_many_addresses_is_bounded() {
        let gate = FailureGate::default();
        let t0 = Instant::now();
        let admitted = (0..(MAX_ADDRESSES as u32 + 1000))
            .filter(|i| {
                let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                gate.admit(ip, t0).is_some()
            })
            .count();
        assert_eq!(admitted, MAX_ADDRESSES);
        // A minute later the old addresses are forgotten and room is made.
        let later = t0 + WINDOW;
        let ip = IpAddr::from(std::net::Ipv4Addr::new(192, 0, 2, 9));
        assert_eq!(gate.admit(ip, later), Some(0));
    }

    #[test]
    fn fields_are_bounded_and_anonymous_named() {
        let e = entry("", "push", &"r".repeat(300), "t", &"é".repeat(2000));
        assert_eq!(e.actor, ANONYMOUS);
        assert_eq!(e.repository.len(), MAX_FIELD);
        assert!(e.detail.len() <= MAX_DETAIL);
    }
}
