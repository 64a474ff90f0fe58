//! runnel patch: a per-thread bound on the memory a decode may spend on collections.
//!
//! A decoded array costs `size_of::<T>()` bytes per element in memory but can take as little
//! as one or two bytes per element on the wire, and an unknown tagged field costs a map entry
//! for two bytes: a 100 MiB frame of empty elements would decode to several GiB. The caller
//! sets a budget around a decode ([`with_limit`]); every array and tagged field charges its
//! elements ([`charge`]) before they are allocated, and the decode fails once the budget is
//! spent. Without a budget (the default) nothing is charged.

use std::cell::Cell;

use anyhow::{bail, Result};

thread_local! {
    static LEFT_BYTES: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Runs `decode` with at most `limit_bytes` for its collections, restoring the previous
/// budget afterwards (also when `decode` panics).
pub fn with_limit<R>(limit_bytes: usize, decode: impl FnOnce() -> R) -> R {
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            LEFT_BYTES.with(|left| left.set(self.0));
        }
    }
    let _restore = Restore(LEFT_BYTES.with(|left| left.replace(Some(limit_bytes))));
    decode()
}

/// Takes room for `count` values of `T` from the budget, failing when it has too little.
pub fn charge<T>(count: usize) -> Result<()> {
    LEFT_BYTES.with(|left| {
        let Some(left_bytes) = left.get() else {
            return Ok(());
        };
        let bytes = count.saturating_mul(std::mem::size_of::<T>().max(1));
        if bytes > left_bytes {
            bail!("decoding {count} elements needs {bytes} bytes; {left_bytes} left of the decode budget");
        }
        left.set(Some(left_bytes - bytes));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_limit_and_the_previous_budget_comes_back() {
        assert!(charge::<u64>(usize::MAX).is_ok(), "no budget: nothing charged");
        with_limit(100, || {
            assert!(charge::<u64>(10).is_ok());
            assert!(charge::<u64>(3).is_err(), "24 bytes, 20 left");
            assert!(charge::<u32>(5).is_ok());
            with_limit(8, || assert!(charge::<u64>(2).is_err()));
            assert!(charge::<u8>(1).is_err(), "the outer budget is spent");
        });
        assert!(charge::<u64>(usize::MAX).is_ok());
    }
}
