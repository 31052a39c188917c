//! Slowing down password guessing without handing strangers a way to slow
//! down anyone else, and bounding what argon2 may cost at once.
//!
//! - Failures are counted per client address, per (user name, address) and per
//!   user name. An attempt waits for the address's and the (user, address)
//!   penalty; the user name's own penalty applies only to an address that has
//!   failed for that name [`USER_STREAK`] times itself. So a stranger's
//!   failures never delay a correct login from another, clean address, while
//!   guesses spread over many addresses still slow down once each address
//!   keeps failing.
//! - An address serving a penalty, or with a streak of failures in the last
//!   15 minutes, has one attempt in progress at a time; more are refused at
//!   once (429 with `Retry-After`) instead of piling up.
//! - argon2 runs (about 19 MiB each) are bounded by a semaphore sized to the
//!   cores, with a short queue; beyond it, or after [`HASH_WAIT`] in it, an
//!   attempt is refused the same way.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

const BASE: Duration = Duration::from_millis(200);
const MAX: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(15 * 60);
const ENTRIES: usize = 10_000;
/// Failures for a user name from one address before the name's own penalty
/// (from every address's failures) applies to that address too.
pub const USER_STREAK: u32 = 3;
/// Longest wait for an argon2 slot.
pub const HASH_WAIT: Duration = Duration::from_secs(2);
/// Attempts that may wait for an argon2 slot, per slot.
const QUEUE_PER_SLOT: usize = 8;
/// What a refused attempt is told to wait when the hashing queue is full.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// An attempt refused now; the client may retry after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    UserAt(String, IpAddr),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Streak {
    failures: u32,
    last: Instant,
}

impl Streak {
    /// What is left of the penalty: 200 ms doubling per failure up to 5 s,
    /// counted from the last failure.
    fn remaining(&self, now: Instant) -> Duration {
        let since = now.saturating_duration_since(self.last);
        if since >= WINDOW {
            return Duration::ZERO;
        }
        BASE.saturating_mul(1 << self.failures.clamp(1, 8).saturating_sub(1))
            .min(MAX)
            .saturating_sub(since)
    }
}

/// Failure streaks, and the attempts in progress of addresses that have them.
#[derive(Default)]
pub struct Throttle {
    streaks: Mutex<HashMap<Key, Streak>>,
    busy_addresses: Mutex<HashSet<IpAddr>>,
}

/// Leave to attempt a login: wait `delay` first. Holding it keeps the
/// address's single slot when the address has recent failures.
pub struct Admission<'a> {
    pub delay: Duration,
    slot: Option<(&'a Throttle, IpAddr)>,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if let Some((throttle, client)) = self.slot.take() {
            lock(&throttle.busy_addresses).remove(&client);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Throttle {
    /// Admits an attempt for `user` from `client`, or refuses it because the
    /// address, having failed recently, has another attempt in progress.
    pub fn admit(&self, user: &str, client: IpAddr) -> Result<Admission<'_>, Refused> {
        let now = Instant::now();
        let (delay, dirty) = {
            let streaks = lock(&self.streaks);
            let get = |k: Key| streaks.get(&k).copied();
            let address = get(Key::Address(client));
            let user_at = get(Key::UserAt(user.to_string(), client));
            let user_wide = user_at
                .filter(|s| s.failures >= USER_STREAK)
                .and_then(|_| get(Key::User(user.to_string())));
            let delay = [address, user_at, user_wide]
                .into_iter()
                .flatten()
                .map(|s| s.remaining(now))
                .max()
                .unwrap_or_default();
            // A typo (behind a shared NAT, say) does not serialize an address
            // for long: only a running penalty or a streak does.
            let dirty = address.is_some_and(|s| {
                !s.remaining(now).is_zero()
                    || (s.failures >= USER_STREAK && now.saturating_duration_since(s.last) < WINDOW)
            });
            (delay, dirty)
        };
        if !dirty {
            return Ok(Admission { delay, slot: None });
        }
        let mut busy = lock(&self.busy_addresses);
        if busy.contains(&client) {
            return Err(Refused {
                retry_after: delay.max(Duration::from_secs(1)),
            });
        }
        busy.insert(client);
        Ok(Admission {
            delay,
            slot: Some((self, client)),
        })
    }

    pub fn failed(&self, user: &str, client: IpAddr) {
        let now = Instant::now();
        let mut streaks = lock(&self.streaks);
        if streaks.len() > ENTRIES {
            streaks.retain(|_, s| now.saturating_duration_since(s.last) < WINDOW);
        }
        for key in [
            Key::Address(client),
            Key::UserAt(user.to_string(), client),
            Key::User(user.to_string()),
        ] {
            let streak = streaks.entry(key).or_insert(Streak {
                failures: 0,
                last: now,
            });
            if now.saturating_duration_since(streak.last) >= WINDOW {
                streak.failures = 0;
            }
            streak.failures = streak.failures.saturating_add(1);
            streak.last = now;
        }
    }

    /// Ends the (user, address) streak. The address's own streak stays: one
    /// valid account must not reset the penalty for guessing at others.
    pub fn succeeded(&self, user: &str, client: IpAddr) {
        lock(&self.streaks).remove(&Key::UserAt(user.to_string(), client));
    }
}

#[derive(Default)]
struct Running {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// Bounds the argon2 runs in progress and the attempts waiting for one.
pub struct HashGate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    running: Arc<Running>,
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct RunningGuard(Arc<Running>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl HashGate {
    /// `slots` runs at once (0: one per core).
    pub fn new(slots: usize) -> Self {
        let slots = if slots == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            slots
        };
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            waiting: AtomicUsize::new(0),
            max_waiting: slots * QUEUE_PER_SLOT,
            running: Arc::default(),
        }
    }

    /// Runs `work` (a password check) on the blocking pool once a slot is
    /// free; refused when the queue is full or the wait exceeds [`HASH_WAIT`].
    /// The slot is held until `work` ends, even if the caller goes away.
    pub async fn run(&self, work: impl FnOnce() -> bool + Send + 'static) -> Result<bool, Refused> {
        let busy = Refused {
            retry_after: BUSY_RETRY,
        };
        let queued = Waiting(&self.waiting);
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            return Err(busy);
        }
        let slot = tokio::time::timeout(HASH_WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| busy)?
            .map_err(|_| busy)?;
        drop(queued);
        let running = self.running.clone();
        let now = running.now.fetch_add(1, Ordering::SeqCst) + 1;
        running.peak.fetch_max(now, Ordering::SeqCst);
        let guard = RunningGuard(running);
        let done = tokio::task::spawn_blocking(move || {
            let ok = work();
            drop(guard);
            drop(slot);
            ok
        })
        .await;
        Ok(done.unwrap_or(false))
    }

    /// The most password checks that ever ran at once (for tests and tuning).
    pub fn peak(&self) -> usize {
        self.running.peak.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn penalties_grow_per_address_and_never_reach_a_clean_address() {
        let t = Throttle::default();
        assert!(t.admit("alice", A).unwrap().delay.is_zero());
        for _ in 0..20 {
            t.failed("alice", A);
        }
        let a = t.admit("alice", A).unwrap();
        assert!(a.delay > MAX - Duration::from_millis(100), "{:?}", a.delay);
        assert!(
            t.admit("bob", A).is_err(),
            "one attempt at a time from a failing address"
        );
        drop(a);
        assert!(t.admit("bob", A).unwrap().delay > Duration::ZERO);
        let clean = t.admit("alice", B).unwrap();
        assert!(
            clean.delay.is_zero(),
            "another address is not slowed by A's failures"
        );
        drop(clean);
        // Once B itself keeps failing for alice, alice's name-wide penalty applies to B.
        t.failed("alice", B);
        t.failed("alice", B);
        let early = t.admit("alice", B).unwrap().delay;
        t.failed("alice", B);
        let late = t.admit("alice", B).unwrap().delay;
        assert!(early <= BASE * 2, "{early:?}");
        assert!(late > BASE * 8, "{late:?}");
        // A success ends B's streak for alice but not B's address penalty.
        t.succeeded("alice", B);
        let after = t.admit("alice", B).unwrap().delay;
        assert!(after <= BASE * 4, "{after:?}");
    }

    #[tokio::test]
    async fn the_gate_bounds_concurrent_runs_and_its_queue() {
        let gate = Arc::new(HashGate::new(2));
        let mut runs = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let gate = gate.clone();
            runs.spawn(async move {
                gate.run(|| {
                    std::thread::sleep(Duration::from_millis(20));
                    true
                })
                .await
            });
        }
        let results = runs.join_all().await;
        assert!(gate.peak() <= 2, "{}", gate.peak());
        assert!(results.iter().filter(|r| r.is_err()).count() >= 40 - 2 - 16);
        assert!(results.contains(&Ok(true)));
    }
}
