//! A task's start and stop jobs: one at a time per task (a slot released
//! however the job ends), and after a failure a wait that doubles to a minute.

use std::time::{Duration, Instant};

use super::engine::EngineError;
use super::model::TaskRecord;
use super::{Result, Runner, RunnerError};

/// Releases a task's job slot when the job ends, however it ends.
struct Busy {
    runner: Runner,
    id: String,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.runner
            .inner
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// A task whose job failed waits before the next attempt: 1 s, doubling up
/// to a minute, so an engine that is away is not asked in a tight loop.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The failed attempts in a row of a task's job, and when it may run again.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retry {
    failures: u32,
    not_before: Instant,
}

/// The wait after `failures` failed attempts in a row.
fn retry_delay(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

impl Runner {
    /// Forgets the waits of tasks that are no longer live (stopped, pruned).
    pub(super) fn forget_retries(&self, live: &[TaskRecord]) {
        let live: std::collections::HashSet<&str> = live.iter().map(|t| t.id.as_str()).collect();
        self.inner
            .retries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| live.contains(id.as_str()));
    }

    pub(super) fn is_busy(&self, id: &str) -> bool {
        self.inner
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// Starts `job` for task `id` unless one runs or the task waits after a failure.
    /// `local`: on the embedded engine (whose reachability the runner reports).
    pub(super) fn spawn_job<F, Fut>(&self, id: &str, local: bool, job: F)
    where
        F: FnOnce(Runner, String) -> Fut,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        let waiting = self
            .inner
            .retries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(|r| r.not_before > Instant::now());
        if waiting
            || !self
                .inner
                .busy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.to_string())
        {
            return;
        }
        let guard = Busy {
            runner: self.clone(),
            id: id.to_string(),
        };
        let work = job(self.clone(), id.to_string());
        let runner = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let outcome = work.await;
            // The wait is set before the slot is released, so no pass starts
            // the job again in between.
            let done = runner.job_done(&id, outcome, local);
            drop(guard);
            if done {
                runner.wake();
            }
        });
    }

    /// Records how a task's job ended: a success clears its wait (and the
    /// loop looks again at once), a failure makes it wait longer. True on success.
    fn job_done(&self, id: &str, outcome: Result<()>, local: bool) -> bool {
        let mut retries = self.inner.retries.lock().unwrap_or_else(|p| p.into_inner());
        let e = match outcome {
            Ok(()) => {
                retries.remove(id);
                return true;
            }
            Err(e) => e,
        };
        let retry = retries.entry(id.to_string()).or_insert(Retry {
            failures: 0,
            not_before: Instant::now(),
        });
        retry.failures = retry.failures.saturating_add(1);
        let delay = retry_delay(retry.failures);
        retry.not_before = Instant::now() + delay;
        let failures = retry.failures;
        drop(retries);
        let retry_in_ms = delay.as_millis() as u64;
        match &e {
            // Said once, when the engine goes away; not for every attempt.
            RunnerError::Engine(engine @ EngineError::Unavailable(_)) => {
                if local {
                    self.note_engine(Some(engine));
                }
                tracing::debug!(task = %id, error = %e, failures, retry_in_ms, "task job failed; retrying later");
            }
            _ => {
                tracing::warn!(task = %id, error = %e, failures, retry_in_ms, "task job failed; retrying later");
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }
}
