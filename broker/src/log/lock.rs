//! The lock of a partition's state and of each segment: a futex mutex that never yields
//! the CPU while it waits.
//!
//! `parking_lot`'s mutex spins with `sched_yield` before it parks. On a machine with more
//! runnable threads than cores (the 2-vCPU bench machine: broker workers, flusher and
//! clients) a yield hands the core to another thread for its whole time slice: `perf
//! trace` showed fetch reads and the flusher waiting 3–5 ms in `sched_yield` for a lock an
//! append held for well under that. `std`'s mutex spins briefly on the CPU, then sleeps in
//! the kernel until the holder wakes it. Poisoning is ignored, as `parking_lot` has none:
//! behaviour after a panic under the lock is what it was.

use std::sync::PoisonError;

pub(crate) use std::sync::MutexGuard;

/// A mutex with `parking_lot`'s `lock()` signature (no poisoning) on `std`'s futex lock.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Mutex<T> {
        Mutex(std::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Mutex;

    #[test]
    fn a_panic_under_the_lock_leaves_it_usable() {
        let lock = std::sync::Arc::new(Mutex::new(1));
        let held = lock.clone();
        let panicked = std::thread::spawn(move || {
            let _guard = held.lock();
            panic!("while holding the lock");
        })
        .join();
        assert!(panicked.is_err());
        *lock.lock() += 1;
        assert_eq!(*lock.lock(), 2);
    }
}
