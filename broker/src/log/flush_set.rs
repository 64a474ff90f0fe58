//! [`FlushSet`]: the partitions the flusher's tick visits, so an idle broker does not walk
//! every partition it has 20 times a second (11 000 idle partitions cost 1.6 % of a core).
//!
//! A partition joins on append ([`PartitionLog::join_flush_set`]) and stays *active* while it
//! has work: appends not yet fsynced (`dirty`: `flush.ms` is checked every tick; unless it is
//! "never"), pages not yet handed to writeback, or more cached bytes than the page-cache tail
//! (pages to drop).
//! Without work it settles: it leaves, and if it still holds cached bytes it *rests* with that
//! figure. The figure cannot change while it rests (only appends raise it, which rejoin, and
//! only the flusher's drops lower it), so the page-cache share is worked out from the active
//! partitions' figures and the resting ones' exactly as from every partition's, and only on
//! ticks where one of them may have changed. A resting partition comes back when the tail
//! shrinks below its figure less a page: that is the tick on which a walk over every
//! partition would have dropped its pages.
//!
//! Joining races settling without a lock on the append path: the appender sets `dirty` then
//! swaps `in_flush_set` to true; the flusher clears `in_flush_set` then reads `dirty` (all
//! sequentially consistent). Either the flusher sees the append's flags and keeps the
//! partition, or the appender sees the cleared flag and joins again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::page_cache::{holds_page_beyond, PageCacheBudget};
use super::partition::PartitionLog;

/// `flush.ms`'s "never" (Kafka's `Long.MAX_VALUE`).
const FLUSH_MS_NEVER: i64 = i64::MAX;

/// A partition's identity in the set: its address (the set's `Weak` keeps the allocation,
/// so the address is not reused while it is in the set).
fn key(partition: &Arc<PartitionLog>) -> usize {
    Arc::as_ptr(partition) as usize
}

/// The partition behind `weak`, unless it is gone or its topic was deleted.
fn live(weak: &Weak<PartitionLog>) -> Option<Arc<PartitionLog>> {
    weak.upgrade().filter(|p| !p.is_deleted())
}

/// Weak references: the partitions hold the context that holds the set, and a strong
/// reference back would keep a dropped manager's files open.
#[derive(Default)]
struct Inner {
    /// Visited every tick.
    active: HashMap<usize, Weak<PartitionLog>>,
    /// Settled, still holding cached bytes: their figure as they settled.
    resting: HashMap<usize, (u64, Weak<PartitionLog>)>,
    /// `resting` changed since the tail was last worked out.
    resting_changed: bool,
    /// Test seam: partition visits handed to ticks so far.
    #[cfg(test)]
    visits: u64,
}

/// The partitions the flusher visits (see the module doc).
#[derive(Default)]
pub(crate) struct FlushSet {
    inner: Mutex<Inner>,
}

impl FlushSet {
    /// Makes `partition` active (from a resting one, or new).
    pub(crate) fn join(&self, partition: Arc<PartitionLog>) {
        let mut inner = self.inner.lock();
        let key = key(&partition);
        if inner.resting.remove(&key).is_some() {
            inner.resting_changed = true;
        }
        inner.active.insert(key, Arc::downgrade(&partition));
    }

    /// A topic was deleted: its resting partitions leave at the next tick (their cached
    /// bytes no longer count).
    pub(crate) fn topic_deleted(&self) {
        self.inner.lock().resting_changed = true;
    }

    /// Starts a tick: forgets deleted partitions, sets the page-cache tail from the cached
    /// bytes of the active and resting partitions (when one may have changed) and returns the
    /// partitions to visit (resting ones now holding a page beyond the tail included) with
    /// the tail.
    pub(crate) fn begin_tick(&self, budget: &PageCacheBudget) -> (Vec<Arc<PartitionLog>>, u64) {
        let mut inner = self.inner.lock();
        let mut partitions: Vec<Arc<PartitionLog>> = Vec::with_capacity(inner.active.len());
        inner.active.retain(|_, weak| match live(weak) {
            Some(partition) => {
                partitions.push(partition);
                true
            }
            None => false,
        });
        let mut tail_bytes = budget.tail_bytes();
        if !partitions.is_empty() || inner.resting_changed {
            inner.resting_changed = false;
            inner.resting.retain(|_, (_, weak)| live(weak).is_some());
            let mut cached_bytes: Vec<u64> = partitions
                .iter()
                .map(|p| p.cached_bytes.load(Ordering::Relaxed))
                .chain(inner.resting.values().map(|(cached, _)| *cached))
                .collect();
            let before_bytes = tail_bytes;
            tail_bytes = budget.share_among(&mut cached_bytes);
            if tail_bytes > 0 && tail_bytes < before_bytes {
                partitions.extend(inner.wake_resting_beyond(tail_bytes));
            }
        }
        #[cfg(test)]
        {
            inner.visits += partitions.len() as u64;
        }
        (partitions, tail_bytes)
    }

    /// Ends a tick: each visited partition without work left settles (see the module doc).
    pub(crate) fn end_tick(&self, visited: &[Arc<PartitionLog>], tail_bytes: u64) {
        let mut inner = self.inner.lock();
        for partition in visited {
            partition.in_flush_set.store(false, Ordering::SeqCst);
            let cached_bytes = partition.cached_bytes.load(Ordering::SeqCst);
            let to_drop = holds_page_beyond(cached_bytes, tail_bytes);
            let busy = (partition.dirty.load(Ordering::SeqCst) && partition.flushes_on_time())
                || partition.writeback_pending.load(Ordering::SeqCst)
                || to_drop;
            if busy && !partition.is_deleted() {
                partition.in_flush_set.store(true, Ordering::SeqCst);
                continue;
            }
            let key = key(partition);
            inner.active.remove(&key);
            // With dropping off (a tail of 0) cached bytes count for nothing.
            if tail_bytes > 0 && cached_bytes > 0 && !partition.is_deleted() {
                inner
                    .resting
                    .insert(key, (cached_bytes, Arc::downgrade(partition)));
                inner.resting_changed = true;
            }
        }
    }

    /// Active partitions now (for tests).
    #[cfg(test)]
    pub(crate) fn active_len(&self) -> usize {
        self.inner.lock().active.len()
    }

    /// Partition visits handed to ticks so far (for tests).
    #[cfg(test)]
    pub(crate) fn visits(&self) -> u64 {
        self.inner.lock().visits
    }
}

impl Inner {
    /// Makes active (and returns) every resting partition holding a page or more beyond
    /// `tail_bytes`.
    fn wake_resting_beyond(&mut self, tail_bytes: u64) -> Vec<Arc<PartitionLog>> {
        let beyond: Vec<usize> = self
            .resting
            .iter()
            .filter(|(_, (cached, _))| holds_page_beyond(*cached, tail_bytes))
            .map(|(key, _)| *key)
            .collect();
        let mut woken = Vec::with_capacity(beyond.len());
        for key in beyond {
            let Some((_, weak)) = self.resting.remove(&key) else {
                continue;
            };
            self.resting_changed = true;
            if let Some(partition) = live(&weak) {
                partition.in_flush_set.store(true, Ordering::SeqCst);
                self.active.insert(key, weak);
                woken.push(partition);
            }
        }
        woken
    }
}

impl PartitionLog {
    /// Whether `flush.ms` ever comes due: with Kafka's "never" (`Long.MAX_VALUE`, its
    /// default) appends not yet fsynced are no work for the tick, and the partition settles
    /// once its pages are written back (it stayed active, visited every tick, for good).
    pub(crate) fn flushes_on_time(&self) -> bool {
        self.config().flush_ms != FLUSH_MS_NEVER
    }

    /// Makes this partition active in its manager's [`FlushSet`] unless it is already (the
    /// appender calls it after setting `dirty` and `writeback_pending`).
    pub(crate) fn join_flush_set(&self) {
        if self.in_flush_set.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(me) = self.me.upgrade() {
            self.ctx.flush_set.join(me);
        }
    }
}
