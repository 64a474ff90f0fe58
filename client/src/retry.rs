//! The time-bounded retry loop of the calls that retry retriable errors, as Java's clients
//! do until `default.api.timeout.ms`: the consumer's synchronous commits and committed-offset
//! fetches (and `poll`'s, within its own timeout), and the admin's group offset calls.

use std::time::Duration;

use crate::error::{Error, Result};

/// Kafka's `retry.backoff.ms` and `retry.backoff.max.ms` defaults: the pauses of calls that
/// have no config of their own (a coordinator lookup, an admin call).
pub(crate) const RETRY_BACKOFF_MS: u64 = 100;
pub(crate) const RETRY_BACKOFF_MAX_MS: u64 = 1_000;

/// The pause after `pause_ms` (0 before the first): doubled, within `[min_ms, max_ms]`.
pub(crate) fn next_backoff_ms(pause_ms: u64, min_ms: u64, max_ms: u64) -> u64 {
    pause_ms.saturating_mul(2).clamp(min_ms, max_ms.max(min_ms))
}

/// The time bound and backoff of one call's retries.
pub(crate) struct Retry {
    /// Attempts may use the time up to here (a coordinator lookup is bounded by it too).
    pub(crate) deadline: tokio::time::Instant,
    timeout_ms: u64,
    pause_ms: u64,
    backoff_ms: u64,
    backoff_max_ms: u64,
}

impl Retry {
    /// Bounded by `timeout_ms` from now; pauses `backoff_ms`, doubling up to
    /// `backoff_max_ms`.
    pub(crate) fn within(timeout_ms: u64, backoff_ms: u64, backoff_max_ms: u64) -> Retry {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
        Retry::bounded(deadline, timeout_ms, backoff_ms, backoff_max_ms)
    }

    /// Bounded by the caller's `deadline` (a poll's).
    pub(crate) fn until(
        deadline: tokio::time::Instant,
        backoff_ms: u64,
        backoff_max_ms: u64,
    ) -> Retry {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let timeout_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        Retry::bounded(deadline, timeout_ms, backoff_ms, backoff_max_ms)
    }

    fn bounded(
        deadline: tokio::time::Instant,
        timeout_ms: u64,
        backoff_ms: u64,
        backoff_max_ms: u64,
    ) -> Retry {
        Retry {
            deadline,
            timeout_ms,
            pause_ms: 0,
            // At least 1 ms: every pass that does not end the loop sleeps, so the
            // deadline bounds it.
            backoff_ms: backoff_ms.max(1),
            backoff_max_ms,
        }
    }

    /// After a failed attempt: `Err` when `error` is final, or (as [`Error::ApiTimeout`],
    /// `what` naming the call) when the time is up; otherwise sleeps the next backoff.
    pub(crate) async fn after(
        &mut self,
        error: Error,
        retriable: bool,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        if !retriable {
            return Err(error);
        }
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return Err(Error::ApiTimeout {
                what: what(),
                timeout_ms: self.timeout_ms,
                last_error: Box::new(error),
            });
        }
        tracing::debug!(%error, "retrying");
        self.pause_ms = next_backoff_ms(self.pause_ms, self.backoff_ms, self.backoff_max_ms);
        debug_assert!(self.pause_ms >= 1, "a pass that retries must sleep");
        let wake = (now + Duration::from_millis(self.pause_ms)).min(self.deadline);
        tokio::time::sleep_until(wake).await;
        Ok(())
    }
}
