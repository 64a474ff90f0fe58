//! The cached tails: the partitions share a page-cache budget (`page_cache_bytes`); each
//! keeps only its share at the end of its log in the page cache, and older pages are dropped
//! once they are on disk.
//!
//! Why: left to the kernel, a broker's page cache grows until memory runs out, and every
//! appended page is a newly allocated one. On a VM whose freed memory goes back to the host
//! (virtio-balloon free-page reporting, as on the machines here), a newly allocated page
//! costs a host page fault: writing into a new file ran at 280–350 MiB/s, and at 2.0–2.2
//! GiB/s when the writer dropped its pages behind it so the kernel handed the same pages out
//! again. Reads of data not in the cache showed the same (364 vs 1 673 MiB/s). A bounded
//! footprint also keeps the broker's memory use readable in a container, where the page
//! cache counts against the memory limit.
//!
//! Why the default budget is small (64 MiB): the pages a budget holds are new to the host
//! until the budget is full (a 2 GiB budget ran 183 MiB/s over a 3 GB run, 64 MiB and 512 MiB
//! 882–1 078), and a small one is full within a fraction of a second. Session 8 measured
//! 512 MiB at a third of 64 MiB's throughput; that was the large folios of 1 MiB writes
//! ([`WRITE_BYTES_MAX`]), not the budget: with writes bounded the two ran alike in steady
//! state (BENCHMARKS.md, session 9). The price of a small budget is that a
//! consumer lagging more than its partition's tail reads from disk; on a machine whose memory
//! does not behave so (bare metal), a budget of a few GiB keeps lagging consumers in memory.
//!
//! What is kept: the tail of every partition, where producers append and caught-up
//! consumers read. What goes: pages more than a tail behind a partition's log end — on the
//! write side once the flusher sees them written back, on the read side right after a fetch
//! read them (a lagging consumer's reads stream through the cache instead of filling it),
//! and the cleaner's rewritten segments once fsynced.
//! The tail is the largest size that keeps the partitions' cached bytes together within the
//! budget when each keeps at most that much (max-min fair: partitions holding less keep all
//! of it); the flusher works it out from every partition's cached bytes on each tick. Eight
//! partitions being written under the default 64 MiB keep 8 MiB each; 1 000 keep the 64 KiB
//! floor each, however rarely each one is written — a share counted over "the partitions written
//! in the last second" left the others holding their old, larger shares, so a fan-in over
//! 1 000 partitions never dropped anything and every append got a fresh page again. A budget
//! of `0` keeps everything (Kafka's behaviour: the kernel decides).
//!
//! Dropping is advice (`posix_fadvise(POSIX_FADV_DONTNEED)`): the kernel keeps pages that are
//! dirty, under writeback or mapped, so nothing here can lose data; the write side first
//! waits for the range's writeback (`sync_file_range`) so the advice finds clean pages.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::partition::PartitionLog;
use super::segment::Segment;

/// Pages are dropped (and written back early, `flusher`) in whole units of this (the
/// smallest page size Linux uses).
pub(crate) const PAGE_BYTES: u64 = 4096;
/// The largest page-cache folio on x86-64 (a PMD). The kernel evicts a folio only when the
/// advised range covers all of it, and a folio can straddle the end of one drop: every drop
/// therefore reaches this far back over the previous one (a second look at an already
/// dropped range costs a page-cache lookup, nothing more).
const FOLIO_BYTES_MAX: u64 = 2 * 1024 * 1024;

/// The most an append writes per system call. The kernel gives a buffered write page-cache
/// folios up to the write's length (here up to 2 MiB), and on these VMs a large folio is a
/// slow allocation: a block of 128 KiB or more that sits free is reported to the host
/// (virtio-balloon free-page reporting, `page_reporting_order` 5), which takes the memory
/// back, so the next large folio is memory the host must fault in again, while small
/// folios reuse the pages just dropped. One producer, 8 partitions, 3 M messages of 1 000 B
/// (1 MiB batches), alternating: writes of at most 64 KiB 1 147–1 277 MiB/s (broker 1.85–2.11
/// CPU-s), 128 KiB 1 019–1 332, 256 KiB 835–937, 2 MiB 753–866 (2.53–2.89 CPU-s); a fan-in
/// over 1 000 new partitions 0.72–0.76× the 8-partition figure against 0.17–0.20× (the
/// copy into the page cache was 84 % of the broker). Sixteen system calls per MiB cost
/// little beside the copy.
pub(crate) const WRITE_BYTES_MAX: usize = 64 * 1024;

/// The smallest tail a partition keeps, however many share the budget.
const TAIL_BYTES_MIN: u64 = 64 * 1024;

/// The page cache the cached tails share, and each partition's current share.
pub(crate) struct PageCacheBudget {
    budget_bytes: u64,
    tail_bytes: AtomicU64,
    /// Log bytes advised out of the cache so far (each byte once per drop side: behind a
    /// tail on the write side, read behind one on the read side).
    dropped_bytes: AtomicU64,
}

impl PageCacheBudget {
    pub(crate) fn new(budget_bytes: u64) -> PageCacheBudget {
        PageCacheBudget {
            budget_bytes,
            // Until the flusher has counted: as if one partition were written.
            tail_bytes: AtomicU64::new(budget_bytes),
            dropped_bytes: AtomicU64::new(0),
        }
    }

    /// Log bytes advised out of the page cache since start.
    pub(crate) fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes.load(Ordering::Relaxed)
    }

    fn count_dropped(&self, bytes: u64) {
        self.dropped_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes at the end of each partition kept cached (0: dropping is off).
    pub(crate) fn tail_bytes(&self) -> u64 {
        self.tail_bytes.load(Ordering::Relaxed)
    }

    /// Sets and returns the tail from every partition's cached bytes (the flusher, every
    /// tick; the slice is reordered).
    pub(crate) fn share_among(&self, cached_bytes: &mut [u64]) -> u64 {
        let tail = tail_share(self.budget_bytes, cached_bytes);
        self.tail_bytes.store(tail, Ordering::Relaxed);
        tail
    }
}

/// Whether a partition holding `cached_bytes` has a page or more beyond a tail of
/// `tail_bytes` to drop (a drop ends on a page boundary); never with dropping off (0).
/// Saturating: a budget near `u64::MAX` (everything fits, the tail is the budget) must not
/// wrap to a tail of a few bytes.
pub(crate) fn holds_page_beyond(cached_bytes: u64, tail_bytes: u64) -> bool {
    tail_bytes > 0 && cached_bytes >= tail_bytes.saturating_add(PAGE_BYTES)
}

/// The largest tail `t` with `Σ min(cached, t) ≤ budget_bytes` (water-filling: partitions
/// holding less than `t` keep everything, the others are cut to `t`), at least
/// [`TAIL_BYTES_MIN`]; the whole budget when everything fits. 0 stays 0: off.
fn tail_share(budget_bytes: u64, cached_bytes: &mut [u64]) -> u64 {
    if budget_bytes == 0 {
        return 0;
    }
    if cached_bytes
        .iter()
        .fold(0u64, |sum, c| sum.saturating_add(*c))
        <= budget_bytes
    {
        return budget_bytes;
    }
    cached_bytes.sort_unstable();
    let mut left_bytes = budget_bytes;
    for (index, cached) in cached_bytes.iter().enumerate() {
        let sharing = (cached_bytes.len() - index) as u64;
        let share = left_bytes / sharing;
        if *cached > share {
            return share.max(TAIL_BYTES_MIN);
        }
        left_bytes -= cached;
    }
    budget_bytes
}

/// A place in a partition's log: `position` bytes into the segment based at `base_offset`.
/// The drop cursor: how far the write-side drops have reached (everything before it, every
/// older segment included). The writeback mark: how far the flusher has started writeback.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogPosition {
    pub(crate) base_offset: i64,
    pub(crate) position: u64,
}

/// Where a drop that may reach `to` in a segment of `size_bytes` ends: the segment's end,
/// last partial page and all, when it reaches that far (only a sealed segment's whole length
/// is ever cold); elsewhere the page boundary at or before `to` (the page holding `to` is
/// still being read or written).
fn drop_end(to: u64, size_bytes: u64) -> u64 {
    match to == size_bytes {
        true => to,
        false => to - to % PAGE_BYTES,
    }
}

/// The bytes at the front of a segment of `size_bytes`, with `bytes_after` more bytes of log
/// behind it, that lie more than `tail_bytes` behind the log end.
fn cold_bytes(size_bytes: u64, bytes_after: u64, tail_bytes: u64) -> u64 {
    size_bytes - tail_bytes.saturating_sub(bytes_after).min(size_bytes)
}

/// Writes back (waiting for it) and drops the cached pages of `[from, to)` of `file`, `to`
/// being a [`drop_end`] (a page boundary, or a segment's end whose partial page goes too).
#[cfg(target_os = "linux")]
fn drop_range(file: &File, from: u64, to: u64, wait_for_writeback: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (from, to) = (
        from.next_multiple_of(PAGE_BYTES),
        to.next_multiple_of(PAGE_BYTES),
    );
    if to <= from {
        return Ok(());
    }
    let offset = libc::off64_t::try_from(from).map_err(io::Error::other)?;
    let len = libc::off64_t::try_from(to - from).map_err(io::Error::other)?;
    let fd = file.as_raw_fd();
    if wait_for_writeback {
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: `fd` is open for the call (borrowed from `file`); no memory is passed.
        if unsafe { libc::sync_file_range(fd, offset, len, flags) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: as above. posix_fadvise returns the error number instead of setting errno.
    match unsafe { libc::posix_fadvise(fd, offset, len, libc::POSIX_FADV_DONTNEED) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Elsewhere the kernel keeps what it likes.
#[cfg(not(target_os = "linux"))]
fn drop_range(_file: &File, _from: u64, _to: u64, _wait_for_writeback: bool) -> io::Result<()> {
    Ok(())
}

impl PartitionLog {
    /// Drops the pages of this partition's log that lie more than `page_cache_tail_bytes`
    /// behind its end and have not been dropped yet, as far as the flusher has started their
    /// writeback (the writeback mark, [`cold_ranges`]), waiting for it to finish.
    pub(crate) fn drop_cold_pages(&self) -> io::Result<()> {
        let tail_bytes = self.ctx.page_cache.tail_bytes();
        if tail_bytes == 0 {
            return Ok(());
        }
        let mut cursor = self.drop_cursor.lock();
        let ranges = {
            let guard = self.state.lock();
            let Some(state) = guard.as_ref() else {
                return Ok(());
            };
            let segments: Vec<(Arc<Segment>, u64)> = state
                .segments
                .range(cursor.base_offset..)
                .map(|(_, segment)| (segment.clone(), segment.lock().size_bytes))
                .collect();
            cold_ranges(&segments, tail_bytes, *cursor, *self.writeback_mark.lock())
        };
        let dropped = self.drop_ranges(ranges, &mut cursor);
        // What is left past the cursor, under the state lock that appends count under (so
        // none is lost), whether or not every drop went through.
        if let Some(state) = self.state.lock().as_ref() {
            let cached: u64 = state
                .segments
                .range(cursor.base_offset..)
                .map(|(base_offset, segment)| {
                    let size_bytes = segment.lock().size_bytes;
                    match *base_offset == cursor.base_offset {
                        true => size_bytes.saturating_sub(cursor.position),
                        false => size_bytes,
                    }
                })
                .sum();
            self.cached_bytes.store(cached, Ordering::Relaxed);
        }
        dropped
    }

    /// Drops `ranges` (from [`cold_ranges`]) in order, moving `cursor` past each one dropped.
    fn drop_ranges(
        &self,
        ranges: Vec<(Arc<Segment>, u64, u64)>,
        cursor: &mut LogPosition,
    ) -> io::Result<()> {
        for (segment, from, to) in ranges {
            let file = match self.ctx.files.get(&segment.log_path) {
                Ok(file) => file,
                // Deleted by retention or replaced by the cleaner meanwhile: nothing to drop.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            drop_range(&file, from, to, true)?;
            let dropped_before = match segment.base_offset == cursor.base_offset {
                true => cursor.position,
                false => 0,
            };
            self.ctx
                .page_cache
                .count_dropped(to.saturating_sub(dropped_before));
            *cursor = LogPosition {
                base_offset: segment.base_offset,
                position: to,
            };
        }
        Ok(())
    }

    /// Whether a read ending `bytes_after` bytes before the log end lies outside the cached
    /// tail (never, when the page cache is left to the kernel).
    pub(crate) fn is_cold_read(&self, bytes_after: u64) -> bool {
        let tail_bytes = self.ctx.page_cache.tail_bytes();
        tail_bytes != 0 && bytes_after >= tail_bytes
    }

    /// After a fetch read `[from, to)` of a segment `size_bytes` long, with `bytes_after`
    /// more bytes of log behind the read's end: when the read lies outside the cached tail,
    /// drops what was read, so a lagging consumer's reads stream through the page cache,
    /// reusing its pages, instead of filling it. (Asking the kernel to read the next fetch's
    /// bytes ahead as well made no measurable difference here: its own readahead window on
    /// this disk is 8 MiB; nor did asking for the read's own range with small folios.)
    pub(crate) fn after_cold_read(
        &self,
        file: &File,
        (from, to): (u64, u64),
        size_bytes: u64,
        bytes_after: u64,
    ) {
        if !self.is_cold_read(bytes_after) {
            return;
        }
        // Pages this far behind the end were written back long ago (the kernel keeps any
        // that are not): no wait. A failure only leaves pages cached.
        let end = drop_end(to, size_bytes);
        match drop_range(file, from.saturating_sub(FOLIO_BYTES_MAX), end, false) {
            Ok(()) => self.ctx.page_cache.count_dropped(to.saturating_sub(from)),
            Err(e) => {
                tracing::debug!(topic = self.topic(), partition = self.partition(), error = %e, "dropping read pages failed");
            }
        }
    }
}

impl PartitionLog {
    /// After the cleaner wrote and fsynced a segment of `size_bytes` that replaces segments
    /// ending before `end_offset`: drops the part of it that lies outside the cached tail
    /// (counted from the log bytes after it), as the flusher does for appends. Cleaned
    /// segments are old, so usually all of it goes; without this, every pass left its
    /// output cached. A failure only leaves pages cached.
    pub(crate) fn after_cleaned_write(&self, file: &File, size_bytes: u64, end_offset: i64) {
        let tail_bytes = self.ctx.page_cache.tail_bytes();
        if tail_bytes == 0 {
            return;
        }
        let bytes_after: u64 = match self.state.lock().as_ref() {
            Some(state) => state
                .segments
                .range(end_offset..)
                .map(|(_, segment)| segment.lock().size_bytes)
                .sum(),
            None => return,
        };
        let cold_bytes = cold_bytes(size_bytes, bytes_after, tail_bytes);
        match drop_range(file, 0, drop_end(cold_bytes, size_bytes), false) {
            Ok(()) => self.ctx.page_cache.count_dropped(cold_bytes),
            Err(e) => {
                tracing::debug!(topic = self.topic(), partition = self.partition(), error = %e, "dropping cleaned pages failed");
            }
        }
    }
}

/// The byte ranges of `segments` (oldest first, with their sizes, starting at the cursor's
/// segment) that lie more than `tail_bytes` behind the log end, past `cursor`, and behind
/// the writeback `mark`: whole in segments older than the mark's, up to it in the mark's
/// segment (a page boundary), none in newer ones.
fn cold_ranges<S: Clone + HasBase>(
    segments: &[(S, u64)],
    tail_bytes: u64,
    cursor: LogPosition,
    mark: LogPosition,
) -> Vec<(S, u64, u64)> {
    let mut ranges = Vec::new();
    let mut bytes_after = 0u64;
    // Newest first: a segment is cold up to `size - (tail_bytes - bytes after it)`.
    let mut cold_ends: Vec<u64> = Vec::with_capacity(segments.len());
    for (_, size_bytes) in segments.iter().rev() {
        let cold = cold_bytes(*size_bytes, bytes_after, tail_bytes);
        cold_ends.push(drop_end(cold, *size_bytes));
        bytes_after = bytes_after.saturating_add(*size_bytes);
    }
    cold_ends.reverse();
    for ((segment, _), cold_end) in segments.iter().zip(cold_ends) {
        let cold_end = match segment.base_offset().cmp(&mark.base_offset) {
            std::cmp::Ordering::Less => cold_end,
            std::cmp::Ordering::Equal => cold_end.min(mark.position),
            std::cmp::Ordering::Greater => break,
        };
        let dropped = if segment.base_offset() == cursor.base_offset {
            cursor.position
        } else {
            0
        };
        if cold_end > dropped {
            let from = dropped.saturating_sub(FOLIO_BYTES_MAX);
            ranges.push((segment.clone(), from, cold_end));
        }
    }
    ranges
}

/// A segment's base offset (so [`cold_ranges`] can be tested without files).
pub(crate) trait HasBase {
    fn base_offset(&self) -> i64;
}

impl HasBase for Arc<Segment> {
    fn base_offset(&self) -> i64 {
        self.as_ref().base_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Fake(i64);
    impl HasBase for Fake {
        fn base_offset(&self) -> i64 {
            self.0
        }
    }

    const MIB: u64 = 1 << 20;
    /// A writeback mark past every test segment: no cut.
    const ALL: LogPosition = LogPosition {
        base_offset: i64::MAX,
        position: 0,
    };

    #[test]
    fn the_budget_is_water_filled_over_the_partitions_cached_bytes() {
        let share = |budget: u64, cached: &[u64]| tail_share(budget, &mut cached.to_vec());
        assert_eq!(share(512 * MIB, &[100 * MIB; 8]), 64 * MIB, "even split");
        assert_eq!(
            share(512 * MIB, &[]),
            512 * MIB,
            "nothing cached: the whole budget"
        );
        assert_eq!(share(512 * MIB, &[MIB; 8]), 512 * MIB, "everything fits");
        assert_eq!(
            share(512 * MIB, &[2 * MIB; 1000]),
            512 * MIB / 1000,
            "a fan-in: each partition written rarely still gets only its share"
        );
        // 992 partitions holding 256 KiB each (248 MiB) leave 264 MiB to the 8 busy ones.
        let mut cached = vec![256 * 1024; 992];
        cached.extend([100 * MIB; 8]);
        assert_eq!(share(512 * MIB, &cached), 33 * MIB);
        assert_eq!(share(512 * MIB, &[MIB; 100_000]), TAIL_BYTES_MIN, "a floor");
        assert_eq!(share(0, &[100 * MIB; 8]), 0, "0 keeps dropping off");
        let budget = PageCacheBudget::new(8 * MIB);
        assert_eq!(budget.tail_bytes(), 8 * MIB);
        let tail = budget.share_among(&mut [4 * MIB, 4 * MIB, 4 * MIB, 4 * MIB]);
        assert_eq!((tail, budget.tail_bytes()), (2 * MIB, 2 * MIB));
    }

    #[test]
    fn a_log_shorter_than_the_tail_keeps_everything() {
        let segments = [(Fake(0), 3 * MIB), (Fake(10), MIB)];
        assert!(cold_ranges(&segments, 4 * MIB, LogPosition::default(), ALL).is_empty());
    }

    #[test]
    fn the_cold_part_spans_older_segments_and_the_start_of_the_tail_segment() {
        let segments = [(Fake(0), 3 * MIB), (Fake(10), 2 * MIB), (Fake(20), MIB)];
        let ranges = cold_ranges(&segments, 2 * MIB, LogPosition::default(), ALL);
        assert_eq!(
            ranges,
            vec![(Fake(0), 0, 3 * MIB), (Fake(10), 0, MIB)],
            "the last 2 MiB (1 MiB of segment 10, all of segment 20) stay"
        );
    }

    #[test]
    fn drops_stay_behind_the_writeback_mark() {
        // Cold: all of the older segment, the newer one up to 2 MiB; dropped up to 1 MiB.
        let segments = [(Fake(0), 3 * MIB), (Fake(10), 3 * MIB)];
        let cursor = LogPosition {
            base_offset: 0,
            position: MIB,
        };
        let from = MIB.saturating_sub(FOLIO_BYTES_MAX);
        let ranges = |base_offset, position| {
            let mark = LogPosition {
                base_offset,
                position,
            };
            cold_ranges(&segments, MIB, cursor, mark)
        };
        // In the newer segment: all of the older one, the newer one up to the mark.
        assert_eq!(
            ranges(10, MIB),
            vec![(Fake(0), from, 3 * MIB), (Fake(10), 0, MIB)]
        );
        // Past the cold part: the cold part.
        assert_eq!(
            ranges(10, 3 * MIB),
            vec![(Fake(0), from, 3 * MIB), (Fake(10), 0, 2 * MIB)]
        );
        // In the older segment: up to the mark there, nothing of the newer one.
        assert_eq!(ranges(0, 2 * MIB), vec![(Fake(0), from, 2 * MIB)]);
        // At or behind the cursor, or nothing written back yet: nothing new to drop.
        assert!(ranges(0, MIB).is_empty());
        assert!(ranges(0, 0).is_empty());
    }

    #[test]
    fn a_sealed_segment_behind_the_tail_goes_to_its_end() {
        let segments = [(Fake(0), 3 * MIB + 100), (Fake(10), 2 * MIB + 100)];
        let ranges = cold_ranges(&segments, MIB, LogPosition::default(), ALL);
        assert_eq!(
            ranges,
            vec![(Fake(0), 0, 3 * MIB + 100), (Fake(10), 0, MIB)],
            "all of the sealed segment, its last partial page too; the active one to a page"
        );
        // The rule itself: a segment's end takes its partial page, elsewhere a page boundary.
        assert_eq!(drop_end(3 * MIB + 100, 3 * MIB + 100), 3 * MIB + 100);
        assert_eq!(drop_end(MIB + 100, 3 * MIB + 100), MIB);
        // Dropped to its end: nothing more of it.
        let cursor = LogPosition {
            base_offset: 0,
            position: 3 * MIB + 100,
        };
        assert_eq!(
            cold_ranges(&segments, MIB, cursor, ALL),
            vec![(Fake(10), 0, MIB)]
        );
    }

    #[test]
    fn ranges_reach_back_over_the_cursor_and_end_on_a_page_boundary() {
        let segments = [(Fake(10), 8 * MIB + 5000)];
        let cursor = LogPosition {
            base_offset: 10,
            position: 4 * MIB,
        };
        let ranges = cold_ranges(&segments, MIB, cursor, ALL);
        // From one largest folio before the cursor (it may straddle the last drop's end).
        assert_eq!(
            ranges,
            vec![(Fake(10), 4 * MIB - FOLIO_BYTES_MAX, 7 * MIB + 4096)]
        );
        // Nothing new behind the tail: nothing to do.
        let cursor = LogPosition {
            base_offset: 10,
            position: 7 * MIB + 4096,
        };
        assert!(cold_ranges(&segments, MIB, cursor, ALL).is_empty());
    }
}
