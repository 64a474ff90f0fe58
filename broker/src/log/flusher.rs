//! Durability: group commit for `wait_durable` and the periodic `flush.ms` background flush.
//!
//! Each [`super::LogManager`] has [`FSYNC_THREADS`] fsync threads and one tick thread. A
//! waiter registers its partition in the [`FlushQueue`] and watches the partition's durable
//! offset; an fsync thread takes the partition, fsyncs its unflushed segment files once and
//! publishes the new durable offset, releasing every waiter it covers; waiters that arrive
//! meanwhile queue the partition again and share the next fsync (group commit). An fsync
//! error is sticky: the durable offset never moves again and waiters get `LogError::Io`
//! (never "durable" on failure). Between `flush.ms` passes, acks=1 data lives only in the
//! page cache: it survives a process crash, not a power loss.
//!
//! Every tick the tick thread starts writeback (without waiting for it) of the whole pages
//! appended since the last tick. Left to the fsync, a second's worth of appends is written
//! in one burst, and appends to a file while it is being fsynced wait for it: eight
//! partitions' 1-second fsyncs took 60–70 ms here, and appends landing in that window took
//! up to 60 ms (e2e p99 29–70 ms at 100 MB/s). Written out as it arrives, the fsync finds
//! little left to do. The partial last page is left alone so an append never writes into a
//! page under writeback.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, PoisonError};
use std::time::Duration;

use super::checkpoint::sync_dir;
use super::lock::Mutex;
use super::page_cache::{holds_page_beyond, LogPosition, PAGE_BYTES};
use super::partition::{LogContext, PartitionLog};
use super::{now_ms, LogError};

/// How often the flusher looks for partitions whose `flush.ms` has elapsed, and for
/// appends to write back and drop, while nothing is being appended (it looks only at the
/// partitions of its flush set: an idle one costs nothing).
pub(crate) const FLUSH_TICK_MS: u64 = 50;
/// The same while partitions are being appended to: each tick writes back and drops what
/// came since the last, so a shorter tick spreads that work into smaller pieces. e2e at
/// 380 000 msg/s, alternating, p99: 10 ms 4.4–5.1 ms in 6 of 7 runs (9.0 once), 50 ms 5.9–6.8
/// in 7 of 7; producing 3 M messages 876–953 MiB/s against 738–854. Idle, the long tick
/// keeps a broker with 10 000 partitions from walking them 100 times a second.
const FLUSH_TICK_BUSY_MS: u64 = 10;
/// How often the recovery-point checkpoint is rewritten.
const RECOVERY_CHECKPOINT_INTERVAL_MS: i64 = 10_000;
/// Threads that fsync queued partitions, each one partition at a time. One after another,
/// eight partitions' fsyncs took ~100 ms (each its own journal commit and cache flush, ~10
/// ms here), and an append to a partition being fsynced waits for it; concurrent fsyncs
/// share journal commits. Run inline by the first acks=all waiter instead, a request's
/// eight fsyncs ran one after another on a connection's worker thread: 2 447 fsyncs in 6 s
/// took 5.97 s between them (0.57–0.68 × the write+fsync probe, against 0.71–0.93 × here).
pub(crate) const FSYNC_THREADS: usize = 8;

/// Starts writeback of `file`'s dirty pages in `[0, end_bytes)` (`sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`: pages already under writeback are skipped, nothing is waited
/// for, and nothing is made durable — metadata included).
#[cfg(target_os = "linux")]
fn start_file_writeback(file: &std::fs::File, end_bytes: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let end = libc::off64_t::try_from(end_bytes).map_err(io::Error::other)?;
    // SAFETY: the descriptor is open for the duration of the call (borrowed from `file`);
    // sync_file_range reads no memory of ours.
    let rc =
        unsafe { libc::sync_file_range(file.as_raw_fd(), 0, end, libc::SYNC_FILE_RANGE_WRITE) };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Elsewhere the periodic fsync writes everything.
#[cfg(not(target_os = "linux"))]
fn start_file_writeback(_file: &std::fs::File, _end_bytes: u64) -> io::Result<()> {
    Ok(())
}

/// The durable offset of a partition, or the fsync failure that froze it.
#[derive(Debug, Clone)]
pub(crate) struct Durable {
    pub offset: i64,
    pub failure: Option<Arc<str>>,
}

/// Partitions with waiters, for the fsync threads.
pub(crate) struct FlushQueue {
    inner: Mutex<FlushInner>,
    /// Fsync threads wait here for a partition.
    work: Condvar,
    /// The tick thread sleeps here between ticks (woken early only to stop).
    stopping: Condvar,
}

#[derive(Default)]
struct FlushInner {
    pending: VecDeque<Arc<PartitionLog>>,
    stop: bool,
}

impl FlushQueue {
    pub(crate) fn new() -> FlushQueue {
        FlushQueue {
            inner: Mutex::new(FlushInner::default()),
            work: Condvar::new(),
            stopping: Condvar::new(),
        }
    }

    /// Queues `partition` for an fsync (once until an fsync thread takes it, however many
    /// waiters ask).
    pub(crate) fn request(&self, partition: Arc<PartitionLog>) {
        if partition.flush_requested.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.lock().pending.push_back(partition);
        self.work.notify_one();
    }

    pub(crate) fn stop(&self) {
        self.inner.lock().stop = true;
        self.work.notify_all();
        self.stopping.notify_all();
    }

    /// The next queued partition, waiting for one; `None` when stopping.
    fn take(&self) -> Option<Arc<PartitionLog>> {
        let mut inner = self.inner.lock();
        loop {
            if inner.stop {
                return None;
            }
            if let Some(partition) = inner.pending.pop_front() {
                // Waiters from now on queue it again: their data may miss this fsync.
                partition.flush_requested.store(false, Ordering::Release);
                return Some(partition);
            }
            inner = self
                .work
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Sleeps `timeout_ms` or until stopped; false when stopping.
    fn tick(&self, timeout_ms: u64) -> bool {
        let inner = self.inner.lock();
        if inner.stop {
            return false;
        }
        let (inner, _timed_out) = self
            .stopping
            .wait_timeout(inner, Duration::from_millis(timeout_ms))
            .unwrap_or_else(PoisonError::into_inner);
        !inner.stop
    }
}

/// An fsync thread's body: flushes queued partitions until stopped.
pub(crate) fn run_fsync_thread(queue: Arc<FlushQueue>) {
    while let Some(partition) = queue.take() {
        let failed_before = partition.durable_tx.borrow().failure.is_some();
        if let Err(e) = partition.flush() {
            if failed_before {
                // Reported when it happened; every later flush repeats it.
                tracing::debug!(topic = partition.topic(), partition = partition.partition(), error = %e, "partition stays failed");
            } else {
                tracing::error!(topic = partition.topic(), partition = partition.partition(), error = %e, "fsync failed");
            }
        }
    }
}

/// The tick thread's body: writeback, page-cache shares, `flush.ms` flushes and the
/// recovery-point checkpoint (while `has_partitions`). Each tick visits only the partitions
/// in the flush set (`flush_set`): those with something to write back, drop or flush.
pub(crate) fn run_flusher(
    queue: Arc<FlushQueue>,
    ctx: &LogContext,
    has_partitions: impl Fn() -> bool,
) {
    let mut last_tick_ms = now_ms();
    let mut last_checkpoint_ms = now_ms();
    let mut tick_ms = FLUSH_TICK_MS;
    while queue.tick(tick_ms) {
        let now = now_ms();
        if now - last_tick_ms >= tick_ms as i64 {
            last_tick_ms = now;
            let (partitions, tail_bytes) = ctx.flush_set.begin_tick(&ctx.page_cache);
            let appended = drop_and_write_back(&partitions, tail_bytes);
            flush_due(&queue, &partitions, now);
            ctx.flush_set.end_tick(&partitions, tail_bytes);
            tick_ms = match appended {
                true => FLUSH_TICK_BUSY_MS,
                false => FLUSH_TICK_MS,
            };
        }
        if now - last_checkpoint_ms >= RECOVERY_CHECKPOINT_INTERVAL_MS {
            last_checkpoint_ms = now;
            if has_partitions() {
                if let Err(e) = ctx.checkpoints.write_changed_recovery_points() {
                    tracing::warn!(error = %e, "writing recovery-point checkpoint failed");
                }
            }
        }
    }
}

/// Drops the pages of every partition holding more than `tail_bytes` (`page_cache`), written
/// lately or not (the tail shrinks when other partitions fill the cache), as far as earlier
/// ticks started their writeback; then starts writeback of every partition appended to since
/// the last call. A drop thus finds I/O that had a tick to finish: dropped right after their
/// writeback started, each partition's drop waited for the disk in turn, and with 1 000
/// partitions taking 1 MiB batches the drops fell behind the appends (600 MiB cached against
/// a 64 MiB budget with the waits in sequence, 240–510 MiB with all writebacks started before
/// the first wait; `strace`: `sync_file_range` 2.4 s of every 4).
///
/// Returns whether any partition was appended to since the last call.
fn drop_and_write_back(partitions: &[Arc<PartitionLog>], tail_bytes: u64) -> bool {
    if tail_bytes > 0 {
        for partition in partitions {
            let cached_bytes = partition.cached_bytes.load(Ordering::Relaxed);
            if holds_page_beyond(cached_bytes, tail_bytes) {
                if let Err(e) = partition.drop_cold_pages() {
                    // The pages stay cached; the fsync reports any real write failure.
                    tracing::debug!(topic = partition.topic(), partition = partition.partition(), error = %e, "dropping cold pages failed");
                }
            }
        }
    }
    let mut appended = false;
    for partition in partitions {
        if partition.writeback_pending.swap(false, Ordering::AcqRel) {
            appended = true;
            if let Err(e) = partition.start_writeback() {
                // Only an early start of what the next fsync writes anyway: that fsync
                // reports any real failure.
                tracing::debug!(topic = partition.topic(), partition = partition.partition(), error = %e, "starting writeback failed");
            }
        }
    }
    appended
}

/// Queues every dirty partition whose `flush.ms` has elapsed for the fsync threads.
fn flush_due(queue: &FlushQueue, partitions: &[Arc<PartitionLog>], now: i64) {
    for partition in partitions {
        if partition.dirty.load(Ordering::Acquire)
            && now - partition.last_flush_ms.load(Ordering::Acquire) >= partition.config().flush_ms
        {
            queue.request(partition.clone());
        }
    }
}

impl PartitionLog {
    /// Fsyncs every segment holding offsets at or above the durable offset and publishes the
    /// log end observed before the fsync as durable.
    pub(crate) fn flush(&self) -> Result<(), LogError> {
        let _one_flush_at_a_time = self.flush_lock.lock();
        if let Some(failure) = self.durable_tx.borrow().failure.clone() {
            // Nothing can be made durable any more, and `dirty` stays (a close must still
            // fail): counting this as a flush keeps the tick from asking again before
            // `flush.ms`, which it did every 50 ms, logging each.
            self.last_flush_ms.store(now_ms(), Ordering::Release);
            return Err(LogError::Io(io::Error::other(failure.to_string())));
        }
        let durable = self.durable_tx.borrow().offset;
        let (end_offset, segments) = {
            let guard = self.state.lock();
            let Some(state) = guard.as_ref() else {
                return Ok(());
            };
            self.dirty.store(false, Ordering::Release);
            let from = state
                .segments
                .range(..=durable)
                .next_back()
                .map_or(i64::MIN, |(base, _)| *base);
            let segments: Vec<_> = state
                .segments
                .range(from..)
                .map(|(_, s)| s.clone())
                .collect();
            (state.next_offset, segments)
        };
        self.last_flush_ms.store(now_ms(), Ordering::Release);
        let result = self.sync_segments(&segments);
        if let Err(e) = result {
            let failure: Arc<str> = Arc::from(e.to_string());
            self.durable_tx.send_modify(|d| d.failure = Some(failure));
            return Err(LogError::Io(e));
        }
        self.durable_tx.send_if_modified(|d| {
            let moved = end_offset > d.offset;
            d.offset = d.offset.max(end_offset);
            moved
        });
        self.ctx
            .checkpoints
            .set_live_recovery_point(self.key(), end_offset, &self.deleted);
        Ok(())
    }

    /// Hands the active segment's dirty whole pages to the kernel's writeback and returns
    /// without waiting for the disk.
    pub(crate) fn start_writeback(&self) -> io::Result<()> {
        let (segment, size_bytes) = {
            let guard = self.state.lock();
            let Some(state) = guard.as_ref() else {
                return Ok(());
            };
            let active = state.active().clone();
            let size_bytes = active.lock().size_bytes;
            (active, size_bytes)
        };
        let whole_pages_bytes = size_bytes - size_bytes % PAGE_BYTES;
        // (On larger pages than PAGE_BYTES the partial page may go early: an append then
        // waits for it, nothing worse.)
        if whole_pages_bytes > 0 {
            let file = self.ctx.files.get(&segment.log_path)?;
            start_file_writeback(&file, whole_pages_bytes)?;
        }
        // Moved even without a whole page: after a roll the mark must leave the sealed
        // segment, or its bytes past the old mark stay cached (and the partition in the
        // flush set) until the new segment fills a page. Its drop waits for that writeback.
        *self.writeback_mark.lock() = LogPosition {
            base_offset: segment.base_offset,
            position: whole_pages_bytes,
        };
        Ok(())
    }

    fn sync_segments(&self, segments: &[Arc<super::segment::Segment>]) -> io::Result<()> {
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = sync_dir(&self.dir) {
                self.dir_dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        for segment in segments {
            #[cfg(test)]
            if self.ctx.fail_fsyncs.load(Ordering::Acquire) {
                return Err(io::Error::other("injected fsync failure"));
            }
            let file = self.ctx.files.get(&segment.log_path)?;
            // Every byte written before sync_data starts is covered by it.
            #[cfg(test)]
            let len_before_sync = file.metadata()?.len();
            let started = std::time::Instant::now();
            file.sync_data()?;
            if let Some(histogram) = self.ctx.fsync_seconds.get() {
                histogram.record(started.elapsed().as_secs_f64());
            }
            self.ctx.fsyncs.fetch_add(1, Ordering::Relaxed);
            #[cfg(test)]
            self.ctx
                .synced_lengths
                .lock()
                .entry(segment.log_path.clone())
                .and_modify(|len| *len = (*len).max(len_before_sync))
                .or_insert(len_before_sync);
            #[cfg(test)]
            self.ctx.fsync_thread_names.lock().insert(
                std::thread::current()
                    .name()
                    .unwrap_or("unnamed")
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// Every offset below this one is fsynced.
    pub fn durable_offset(&self) -> i64 {
        self.durable_tx.borrow().offset
    }

    /// Queues the partition for the fsync threads without waiting for the fsync.
    pub(crate) fn request_flush(self: &Arc<Self>) {
        self.ctx.flusher.request(self.clone());
    }

    /// Resolves once every offset below `end_offset` is fsynced. Concurrent waiters share one
    /// fsync (group commit): the partition is queued for the fsync threads once, and a flush
    /// that is already running is followed by one more covering every waiter that arrived
    /// meanwhile. The caller's thread never fsyncs (a connection's worker would stop reading
    /// and appending for the length of the fsync, and a request's partitions would be
    /// fsynced one after another).
    pub fn wait_durable(
        self: &Arc<Self>,
        end_offset: i64,
    ) -> impl Future<Output = Result<(), LogError>> + Send + 'static {
        let mut durable = self.durable_tx.subscribe();
        let log_end = self.log_end_offset();
        let early = if end_offset > log_end {
            Some(Err(LogError::OffsetOutOfRange {
                offset: end_offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: log_end,
            }))
        } else {
            settled(&durable.borrow_and_update(), end_offset)
        };
        if early.is_none() {
            self.ctx.flusher.request(self.clone());
        }
        async move {
            if let Some(result) = early {
                return result;
            }
            loop {
                if let Some(result) = settled(&durable.borrow_and_update(), end_offset) {
                    return result;
                }
                if durable.changed().await.is_err() {
                    return Err(LogError::ShutDown);
                }
            }
        }
    }

    /// Flushes and seals the active segment's indexes; the log serves nothing afterwards.
    pub(crate) fn close(&self) -> Result<(), LogError> {
        // An append under way finishes (and is flushed) first.
        let _writer = self.append_lock.lock();
        let flushed = if self.is_loaded() {
            self.flush()
        } else {
            Ok(())
        };
        let mut guard = self.state.lock();
        self.closed.store(true, Ordering::Release);
        if let Some(state) = guard.take() {
            self.seal_active(state.active())?;
        }
        flushed
    }
}

/// Closes every partition ([`PartitionLog::close`]) side by side (see [`on_threads`]). A
/// close of a loaded partition ends in fsyncs that wait for the disk: 10 000 partitions
/// closed one after another took 15–42 s at shutdown (longer than a container's default
/// stop grace, after which the kill leaves an unclean shutdown); side by side 1 s.
pub(crate) fn close_all(partitions: &[Arc<PartitionLog>]) -> Result<(), LogError> {
    on_threads(partitions, "runnel-close", |partition| partition.close())
}

/// Runs `f` on every partition on up to [`FSYNC_THREADS`] threads (this one included), each
/// taking the next partition not yet taken; the first error, if any, once all are done.
/// For work that waits for the disk per partition (fsyncs at shutdown and in recovery):
/// side by side the waits overlap in the device queue and share journal commits.
pub(crate) fn on_threads(
    partitions: &[Arc<PartitionLog>],
    thread_name: &str,
    f: impl Fn(&PartitionLog) -> Result<(), LogError> + Sync,
) -> Result<(), LogError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    let work = || {
        while let Some(partition) = partitions.get(next.fetch_add(1, Ordering::Relaxed)) {
            if let Err(e) = f(partition) {
                first_error.lock().get_or_insert(e);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..FSYNC_THREADS.min(partitions.len()) {
            // A thread that cannot start leaves its share to the others and this one.
            if let Err(e) = std::thread::Builder::new()
                .name(thread_name.to_owned())
                .spawn_scoped(scope, work)
            {
                tracing::warn!(error = %e, thread_name, "running on fewer threads");
            }
        }
        work();
    });
    let first_error = first_error.lock().take();
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `Some` once `end_offset` is durable (Ok) or can never become durable (Err).
fn settled(durable: &Durable, end_offset: i64) -> Option<Result<(), LogError>> {
    if durable.offset >= end_offset {
        return Some(Ok(()));
    }
    durable
        .failure
        .as_ref()
        .map(|failure| Err(LogError::Io(io::Error::other(failure.to_string()))))
}

impl PartitionLog {
    /// Stops serving without flushing: the topic is being deleted.
    pub(crate) fn close_for_delete(&self) {
        let _writer = self.append_lock.lock();
        let mut guard = self.state.lock();
        self.deleted.store(true, Ordering::Release);
        self.closed.store(true, Ordering::Release);
        *guard = None;
        // Waiters on unflushed offsets would otherwise wait forever.
        self.durable_tx
            .send_modify(|d| d.failure = Some(Arc::from("partition deleted")));
        // Fetches long-polling on it look again (and find it gone) instead of waiting out
        // their max wait: the end offset does not move, but its receivers are woken.
        self.announce_move();
    }
}
