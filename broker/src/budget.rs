//! A broker-wide budget of bytes that request handlers may decompress at the same time.
//!
//! Produce decompresses batches bound for compacted topics to check that every record has a
//! key, each into a buffer of up to a per-batch bound (64 MiB). One such buffer is harmless;
//! one per connection is not. Handlers therefore take a [`BudgetPermit`] for the bound
//! before decompressing and drop it after; when the budget is spent they wait a short,
//! bounded time and then give up (the caller answers a retriable error), so a connection
//! is never blocked for long and the broker's decompression memory stays below
//! `capacity_bytes` however many clients send at once.
//!
//! Thread-safe: shared as part of the `BrokerContext`; waiting blocks the calling thread
//! (the produce handler's apply step is synchronous), at most the `wait` it is given.

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Bytes of decompression output that may be held at once, across all connections.
#[derive(Debug)]
pub struct DecompressionBudget {
    capacity_bytes: u64,
    available_bytes: Mutex<u64>,
    freed: Condvar,
}

/// A share of the budget; given back when dropped.
#[derive(Debug)]
#[must_use = "the budget is given back as soon as the permit is dropped"]
pub struct BudgetPermit<'a> {
    budget: &'a DecompressionBudget,
    bytes: u64,
}

impl DecompressionBudget {
    pub fn new(capacity_bytes: u64) -> DecompressionBudget {
        DecompressionBudget {
            capacity_bytes,
            available_bytes: Mutex::new(capacity_bytes),
            freed: Condvar::new(),
        }
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Bytes not held by any permit right now.
    pub fn available_bytes(&self) -> u64 {
        *self.available_bytes.lock()
    }

    /// Takes `bytes` (which must not exceed the capacity), waiting at most `wait` for other
    /// permits to be dropped; `None` when the bytes did not become free in time.
    pub fn acquire(&self, bytes: u64, wait: Duration) -> Option<BudgetPermit<'_>> {
        assert!(
            bytes <= self.capacity_bytes,
            "a permit of {bytes} bytes can never be granted (capacity {})",
            self.capacity_bytes
        );
        let deadline = Instant::now() + wait;
        let mut available = self.available_bytes.lock();
        // Each wake-up either grants, or waits again until the fixed deadline: bounded.
        while *available < bytes {
            if self.freed.wait_until(&mut available, deadline).timed_out() && *available < bytes {
                return None;
            }
        }
        *available -= bytes;
        debug_assert!(*available <= self.capacity_bytes);
        Some(BudgetPermit {
            budget: self,
            bytes,
        })
    }
}

impl BudgetPermit<'_> {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Gives back all but `bytes` of this permit at once (a decompression that needed less
    /// than its bound); a permit already that small is left as it is.
    pub fn shrink_to(&mut self, bytes: u64) {
        let Some(freed_bytes) = self.bytes.checked_sub(bytes).filter(|&b| b > 0) else {
            return;
        };
        self.bytes = bytes;
        let mut available = self.budget.available_bytes.lock();
        *available += freed_bytes;
        assert!(
            *available <= self.budget.capacity_bytes,
            "budget over-returned"
        );
        drop(available);
        self.budget.freed.notify_all();
    }
}

impl Drop for BudgetPermit<'_> {
    fn drop(&mut self) {
        let mut available = self.budget.available_bytes.lock();
        *available += self.bytes;
        assert!(
            *available <= self.budget.capacity_bytes,
            "budget over-returned"
        );
        drop(available);
        self.budget.freed.notify_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const SHORT: Duration = Duration::from_millis(20);

    #[test]
    fn permits_take_and_give_back_bytes() {
        let budget = DecompressionBudget::new(100);
        let a = budget.acquire(60, SHORT).unwrap();
        let b = budget.acquire(40, SHORT).unwrap();
        assert_eq!((a.bytes(), b.bytes()), (60, 40));
        assert_eq!(budget.available_bytes(), 0);
        drop(a);
        assert_eq!(budget.available_bytes(), 60);
        drop(b);
        assert_eq!(budget.available_bytes(), 100);
    }

    #[test]
    fn a_spent_budget_times_out_within_the_wait() {
        let budget = DecompressionBudget::new(100);
        let _held = budget.acquire(80, SHORT).unwrap();
        let started = Instant::now();
        assert!(budget.acquire(30, SHORT).is_none());
        let waited = started.elapsed();
        assert!(waited >= SHORT, "gave up early: {waited:?}");
        assert!(
            waited < Duration::from_secs(2),
            "waited too long: {waited:?}"
        );
        // What is free is still granted at once.
        assert!(budget.acquire(20, Duration::ZERO).is_some());
    }

    #[test]
    fn a_waiter_is_granted_when_a_permit_is_dropped() {
        let budget = Arc::new(DecompressionBudget::new(100));
        let held = budget.acquire(100, SHORT).unwrap();
        let waiter = {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || budget.acquire(50, Duration::from_secs(10)).is_some())
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        assert!(waiter.join().unwrap());
        assert_eq!(budget.available_bytes(), 100);
    }

    #[test]
    fn a_shrunk_permit_gives_back_the_rest_at_once() {
        let budget = DecompressionBudget::new(100);
        let mut permit = budget.acquire(80, SHORT).unwrap();
        permit.shrink_to(30);
        assert_eq!((permit.bytes(), budget.available_bytes()), (30, 70));
        permit.shrink_to(50);
        assert_eq!(permit.bytes(), 30, "never grows");
        drop(permit);
        assert_eq!(budget.available_bytes(), 100);
    }

    #[test]
    #[should_panic(expected = "can never be granted")]
    fn a_permit_larger_than_the_capacity_is_a_bug() {
        let _ = DecompressionBudget::new(10).acquire(11, SHORT);
    }
}
