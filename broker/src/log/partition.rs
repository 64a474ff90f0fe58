//! [`PartitionLog`]: one partition — its segments, offsets, appends and rolls.
//!
//! Thread-safety: one mutex (`state`) orders appends and guards the segment map; it is held
//! for the `.log` write of an append (that is what orders offsets) but readers take it only
//! to snapshot the segment list and sizes, then pread outside it. The flusher fsyncs outside
//! it too. Lock order: `append_lock` → `flush_lock` → partition `state` → segment state.
//! Reading, timestamp search, retention and durability live in sibling files as further
//! `impl PartitionLog` blocks.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::lock::{Mutex, MutexGuard};
use super::page_cache::WRITE_BYTES_MAX;
use runnel_protocol::batch::RecordBatch;
use tokio::sync::watch;

use super::checkpoint::{Checkpoints, PartitionKey};
use super::file_cache::FileCache;
use super::flusher::{Durable, FlushQueue};
use super::recovery::load_partition;
use super::segment::{reserve_blocks, Segment, PREALLOCATE_FROM_SEGMENT_BYTES};
use super::{now_ms, AppendInfo, LogError, MessageTimestampType, TopicConfig};

#[path = "append_write.rs"]
mod append_write;
use append_write::{check_batches, prepare_batches, write_all_vectored};

/// Test seam: see [`LogContext::before_delete_renames`].
#[cfg(test)]
pub(crate) type DeleteHook = Box<dyn Fn(&LogContext) + Send>;

/// What every partition of one manager shares.
pub(crate) struct LogContext {
    pub files: FileCache,
    pub checkpoints: Checkpoints,
    pub flusher: Arc<FlushQueue>,
    /// fsync calls made on segment files (tests assert group commit with it).
    pub fsyncs: AtomicU64,
    /// Seconds per segment fsync, once the broker's metrics are attached (else unrecorded).
    pub fsync_seconds: std::sync::OnceLock<metrics::Histogram>,
    /// False after an unclean stop: partitions loaded then are recovered first.
    pub clean_start: bool,
    /// The cached tails' shared budget and each partition's current share (0: off); see
    /// `page_cache`.
    pub page_cache: super::page_cache::PageCacheBudget,
    /// The partitions the flusher's tick visits.
    pub flush_set: super::flush_set::FlushSet,
    /// Test seam: makes every segment fsync fail (a dying disk).
    #[cfg(test)]
    pub fail_fsyncs: AtomicBool,
    /// Test seam (power-loss simulation): each segment file's length as of its last
    /// successful fsync; bytes past it are what a power cut may take.
    #[cfg(test)]
    pub synced_lengths: parking_lot::Mutex<std::collections::HashMap<std::path::PathBuf, u64>>,
    /// Test seam: the names of the threads that ran segment fsyncs.
    #[cfg(test)]
    pub fsync_thread_names: parking_lot::Mutex<std::collections::BTreeSet<String>>,
    /// Test seam: the names of the threads that recovered partitions at open.
    #[cfg(test)]
    pub recovery_thread_names: parking_lot::Mutex<std::collections::BTreeSet<String>>,
    /// Test seam: the cleaner's swap stops after this step (0: never), as if it crashed.
    #[cfg(test)]
    pub swap_crash_step: std::sync::atomic::AtomicU8,
    /// Test seam: the injected swap failure is an I/O error (repaired in place), not a crash.
    #[cfg(test)]
    pub swap_failure_repairs: AtomicBool,
    /// Test seam: runs in `delete_topic` just before the partition directories are renamed
    /// (what a read or flush that took its segment before the delete may do then).
    #[cfg(test)]
    pub before_delete_renames: parking_lot::Mutex<Option<DeleteHook>>,
}

/// A loaded partition's segments and offsets.
pub(crate) struct LogState {
    pub segments: BTreeMap<i64, Arc<Segment>>,
    pub next_offset: i64,
    /// Set when an index filled up: the next append rolls.
    pub active_full: bool,
    /// Set when a failed write could not be undone: appends fail until restart.
    pub poisoned: bool,
}

impl LogState {
    pub(crate) fn active(&self) -> &Arc<Segment> {
        match self.segments.last_key_value() {
            Some((_, segment)) => segment,
            None => unreachable!("a loaded log always has an active segment"),
        }
    }
}

/// One partition's log.
pub struct PartitionLog {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) dir: PathBuf,
    pub(crate) config: RwLock<Arc<TopicConfig>>,
    pub(crate) ctx: Arc<LogContext>,
    /// `None` until first use (thousands of partitions open lazily) and after close.
    pub(crate) state: Mutex<Option<LogState>>,
    pub(crate) closed: AtomicBool,
    /// Set once the log has been loaded (`end_tx` then holds its real end): lets a read at
    /// the end be answered without the state lock ([`Self::read_at_end`]).
    pub(crate) opened: AtomicBool,
    /// The log end as appends publish it (under the state lock, before `appended_bytes`
    /// grows and before `end_tx` announces it): what [`Self::read_at_end`] compares with. A
    /// long poll that counted an append's bytes must also find its records, or it would
    /// wait for the next append (`end_tx`, published later, could still show the old end).
    pub(crate) published_end: AtomicI64,
    /// Closed because its topic was deleted (reads and appends through a handle taken
    /// before are then UNKNOWN_TOPIC_OR_PARTITION, as for a topic that never existed).
    pub(crate) deleted: AtomicBool,
    pub(crate) log_start_offset: AtomicI64,
    pub(crate) end_tx: watch::Sender<i64>,
    /// Bumped with `end_tx`, shared by the topic's partitions: one wait for a fetch of many
    /// of them ([`Self::topic_moves`]).
    pub(crate) topic_tx: Arc<watch::Sender<u64>>,
    pub(crate) durable_tx: watch::Sender<Durable>,
    /// Held by a flush from its copy of the segment list to its last fsync. Segment files
    /// are removed only under it (retention, DeleteRecords, the cleaner's swap), so a flush
    /// never finds a file of its copy gone.
    pub(crate) flush_lock: Mutex<()>,
    /// Held by the one append (or roll by DeleteRecords, or close) under way, taken before
    /// the state lock: appends copy their bytes into the segment holding only this, so
    /// reads and the flusher take the state lock without waiting for the copy.
    pub(crate) append_lock: Mutex<()>,
    pub(crate) flush_requested: AtomicBool,
    /// Active in the flusher's [`super::flush_set::FlushSet`] (set by the append that joins).
    pub(crate) in_flush_set: AtomicBool,
    /// This log's own `Arc`, for joining the flush set from `append(&self)`.
    pub(crate) me: std::sync::Weak<PartitionLog>,
    /// Appends not yet covered by an fsync.
    pub(crate) dirty: AtomicBool,
    /// Appends whose pages the flusher has not yet handed to writeback (see
    /// [`super::flusher`]'s incremental writeback).
    pub(crate) writeback_pending: AtomicBool,
    /// How far the flusher has dropped this log's pages from the page cache.
    pub(crate) drop_cursor: Mutex<super::page_cache::LogPosition>,
    /// How far the flusher has started this log's writeback (the active segment's whole
    /// pages at its last start); its drops stay behind it (`page_cache`).
    pub(crate) writeback_mark: Mutex<super::page_cache::LogPosition>,
    /// Log bytes past the drop cursor, which the page cache may hold: raised by appends,
    /// set by the flusher after each drop (both under the state lock). The page-cache budget
    /// is shared by these figures (`page_cache`).
    pub(crate) cached_bytes: AtomicU64,
    pub(crate) last_flush_ms: AtomicI64,
    /// A segment file was created since the directory was last fsynced.
    pub(crate) dir_dirty: AtomicBool,
    /// Cleaner swaps begun on this log. Only a swap removes records below the log end
    /// without moving the log start, so anything derived from "the first record at or after
    /// offset o" holds while this count stays put (the lag cache relies on it).
    pub(crate) segment_rewrites: AtomicU64,
    /// Bytes appended since the log was created in this process (never decreases): how far
    /// a long-polling fetch's logs have grown, read without the state lock.
    pub(crate) appended_bytes: AtomicU64,
    /// Bytes and records in and out, bumped once per request by the API layer and read
    /// when `/metrics` is scraped.
    pub traffic: crate::metrics::TrafficCounters,
}

impl PartitionLog {
    pub(crate) fn new(
        topic: &str,
        partition: i32,
        dir: PathBuf,
        config: Arc<TopicConfig>,
        ctx: Arc<LogContext>,
        topic_tx: Arc<watch::Sender<u64>>,
    ) -> Arc<PartitionLog> {
        Arc::new_cyclic(|me| PartitionLog {
            topic: topic.to_string(),
            partition,
            dir,
            config: RwLock::new(config),
            ctx,
            state: Mutex::new(None),
            closed: AtomicBool::new(false),
            opened: AtomicBool::new(false),
            published_end: AtomicI64::new(0),
            deleted: AtomicBool::new(false),
            log_start_offset: AtomicI64::new(0),
            end_tx: watch::Sender::new(0),
            topic_tx,
            durable_tx: watch::Sender::new(Durable {
                offset: 0,
                failure: None,
            }),
            flush_lock: Mutex::new(()),
            append_lock: Mutex::new(()),
            flush_requested: AtomicBool::new(false),
            in_flush_set: AtomicBool::new(false),
            me: me.clone(),
            dirty: AtomicBool::new(false),
            writeback_pending: AtomicBool::new(false),
            drop_cursor: Mutex::default(),
            writeback_mark: Mutex::default(),
            cached_bytes: AtomicU64::new(0),
            last_flush_ms: AtomicI64::new(now_ms()),
            dir_dirty: AtomicBool::new(true),
            segment_rewrites: AtomicU64::new(0),
            appended_bytes: AtomicU64::new(0),
            traffic: crate::metrics::TrafficCounters::default(),
        })
    }

    pub(crate) fn key(&self) -> PartitionKey {
        (self.topic.clone(), self.partition)
    }

    /// Where an unclean load starts checking; `None` when unknown.
    ///
    /// Recovery takes an offset gap between segments past the recovery point for a tail lost
    /// in a power cut and drops the segments after it; the cleaner makes gaps too, but only
    /// below a recovery point it wrote to disk first. With no entry in the recovery-point
    /// checkpoint (the file lost or malformed, or a partition that crashed before its first
    /// checkpoint) the two can be told apart only by whether the cleaner ever rewrote the
    /// partition, which its own checkpoint records after each pass:
    /// - never cleaned: every gap is a lost tail; the whole log is checked from 0 (`Some(0)`);
    /// - cleaned: `None`, and recovery keeps the segments after a gap. Dropping a cleaner's
    ///   gap deletes acknowledged records; keeping a lost tail's gap only serves records
    ///   that were never acknowledged as durable across it.
    fn recovery_point_to_load(&self, key: &PartitionKey) -> Option<i64> {
        if let Some(recovery_point) = self.ctx.checkpoints.recovery_point(key) {
            return Some(recovery_point);
        }
        let cleaned = self.ctx.checkpoints.cleaner_offset(key).is_some();
        (!cleaned).then_some(0)
    }

    /// The loaded state, loading (and recovering) the directory on first use.
    pub(crate) fn loaded(&self) -> Result<MutexGuard<'_, Option<LogState>>, LogError> {
        let mut guard = self.state.lock();
        if self.closed.load(Ordering::Acquire) {
            if self.deleted.load(Ordering::Acquire) {
                return Err(LogError::UnknownTopicOrPartition {
                    topic: self.topic.clone(),
                    partition: self.partition,
                });
            }
            return Err(LogError::ShutDown);
        }
        if guard.is_none() {
            let key = self.key();
            let log_start = self.ctx.checkpoints.log_start(&key).unwrap_or(0);
            let config = self.config();
            let recovery_point = self.recovery_point_to_load(&key);
            let loaded = load_partition(
                &self.dir,
                &config,
                log_start,
                recovery_point,
                self.ctx.clean_start,
            )?;
            self.log_start_offset
                .store(loaded.log_start_offset, Ordering::Release);
            self.end_tx.send_replace(loaded.next_offset);
            self.published_end
                .store(loaded.next_offset, Ordering::Release);
            self.opened.store(true, Ordering::Release);
            // What was on disk at load is durable: clean shutdown fsynced it, recovery too.
            self.durable_tx
                .send_modify(|d| d.offset = loaded.next_offset);
            self.ctx
                .checkpoints
                .set_recovery_point(key, loaded.next_offset);
            *guard = Some(LogState {
                segments: loaded.segments,
                next_offset: loaded.next_offset,
                active_full: false,
                poisoned: false,
            });
        }
        Ok(guard)
    }

    /// Loads the log if it is not yet ([`Self::loaded`]'s errors for a closed one), without
    /// its lock once it is open.
    pub(crate) fn open(&self) -> Result<(), LogError> {
        if self.opened.load(Ordering::Acquire) && !self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        drop(self.loaded()?);
        Ok(())
    }

    /// Whether the log was closed because its topic was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Whether the log has been opened since start (partitions open lazily, on first use).
    pub fn is_loaded(&self) -> bool {
        self.state.lock().is_some()
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
    pub fn partition(&self) -> i32 {
        self.partition
    }
    pub fn config(&self) -> Arc<TopicConfig> {
        self.config.read().clone()
    }
    pub(crate) fn set_config(&self, config: Arc<TopicConfig>) {
        *self.config.write() = config;
        // Appends made while `flush.ms` was "never" left nothing for the tick to visit: they
        // come due under the new value without waiting for another append.
        if self.dirty.load(Ordering::SeqCst) && self.flushes_on_time() {
            self.join_flush_set();
        }
    }

    /// Appends validated batches in order, assigning consecutive offsets (patched into each
    /// batch's base offset). The data is in the page cache when this returns.
    ///
    /// One append at a time (the append lock). The state lock is held to plan each write
    /// (roll, room in the indexes, the offsets) and to publish it (indexes, segment size,
    /// log end), not while the bytes are copied into the segment: readers only read up to
    /// the published size, so they never see a partial write, and they do not wait for one.
    pub fn append(&self, batches: &[RecordBatch]) -> Result<AppendInfo, LogError> {
        let offsets_needed = check_batches(batches)?;
        let config = self.config();
        let now = now_ms();
        let _writer = self.append_lock.lock();
        let base_offset = {
            let mut guard = self.loaded()?;
            let state = guard.as_mut().ok_or(LogError::ShutDown)?;
            if state.poisoned {
                return Err(LogError::Io(io::Error::other(
                    "log poisoned by an earlier failed write",
                )));
            }
            state.next_offset
        };
        let log_append_time = config.message_timestamp_type == MessageTimestampType::LogAppendTime;
        let mut next_offset = base_offset;
        let written = self.append_chunks(batches, &mut next_offset, offsets_needed, &config, now);
        // Chunks published before a failure are in the log (their offsets are taken):
        // announced, flushed and written back like any others.
        if next_offset > base_offset {
            // Sequentially consistent, as the flusher's settling reads them (`flush_set`).
            self.dirty.store(true, Ordering::SeqCst);
            self.writeback_pending.store(true, Ordering::SeqCst);
            self.join_flush_set();
            self.end_tx.send_replace(next_offset);
            self.topic_tx
                .send_modify(|moves| *moves = moves.wrapping_add(1));
        }
        written?;
        assert_eq!(next_offset, base_offset + offsets_needed);
        Ok(AppendInfo {
            base_offset,
            last_offset: next_offset - 1,
            log_append_time_ms: if log_append_time { now } else { -1 },
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Writes `batches` (`offsets_needed` offsets from `next_offset`) in chunks that fit the
    /// active segment's indexes, rolling between them, and moves `next_offset` past each
    /// chunk published (also when a later one fails).
    fn append_chunks(
        &self,
        batches: &[RecordBatch],
        next_offset: &mut i64,
        offsets_needed: i64,
        config: &TopicConfig,
        now: i64,
    ) -> Result<(), LogError> {
        let end_offset = *next_offset + offsets_needed;
        let mut rest = batches;
        let mut rest_bytes: u64 = batches.iter().map(|b| b.size_bytes() as u64).sum();
        // Each pass writes ≥ 1 batch (a fresh segment has room for at least one index entry
        // of each kind), so the loop runs at most batches.len() times.
        while !rest.is_empty() {
            let (active, room) = {
                let mut guard = self.loaded()?;
                let state = guard.as_mut().ok_or(LogError::ShutDown)?;
                let rest_offsets = end_offset - state.next_offset;
                self.maybe_roll(state, config, rest_bytes, rest_offsets, now)?;
                let room = state.active().lock().index_room_entries().max(1);
                (state.active().clone(), room)
            };
            let (chunk, later) = rest.split_at(room.min(rest.len()));
            let chunk_bytes = chunk.iter().map(|b| b.size_bytes() as u64).sum::<u64>();
            *next_offset =
                self.append_chunk(&active, *next_offset, chunk, chunk_bytes, config, now)?;
            rest_bytes -= chunk_bytes;
            rest = later;
        }
        Ok(())
    }

    /// Writes `batches` (offsets from `next_offset`, `chunk_bytes` in all) to the end of
    /// `active` with one vectored write, outside the state lock, then indexes them and
    /// publishes the new end under it (LogAppendTime topics: stamped `now`). Returns the log
    /// end after them. The caller holds the append lock, so `active` is
    /// still the active segment and nobody else writes to it.
    fn append_chunk(
        &self,
        active: &Arc<Segment>,
        next_offset: i64,
        batches: &[RecordBatch],
        chunk_bytes: u64,
        config: &TopicConfig,
        now: i64,
    ) -> Result<i64, LogError> {
        let log_append_time = config.message_timestamp_type == MessageTimestampType::LogAppendTime;
        let prepared = prepare_batches(batches, next_offset, log_append_time.then_some(now));
        let file = self.ctx.files.get(&active.log_path)?;
        let (start_position, reserve) = {
            let mut segment = active.lock();
            let reserve = segment.reserve_ahead(chunk_bytes, config.segment_bytes);
            (segment.size_bytes, reserve)
        };
        if let Some((from, len)) = reserve {
            if let Err(e) = reserve_blocks(&file, from, len) {
                // Only a speed-up: the write below reports a full disk.
                tracing::debug!(topic = self.topic(), partition = self.partition(), error = %e, "reserving segment blocks failed");
            }
        }
        if let Err(e) = write_all_vectored(&file, &mut prepared.slices(), WRITE_BYTES_MAX) {
            // Never leave a partial batch behind: readers and recovery must see whole ones.
            // The truncation frees the blocks reserved past the end too: reserve again.
            let truncated = file.set_len(start_position);
            active.lock().allocated_bytes = 0;
            if truncated.is_err() {
                if let Some(state) = self.state.lock().as_mut() {
                    state.poisoned = true;
                }
            }
            return Err(LogError::Io(e));
        }
        let mut guard = self.loaded()?;
        let state = guard.as_mut().ok_or(LogError::ShutDown)?;
        if !Arc::ptr_eq(state.active(), active) || state.next_offset != next_offset {
            // Cannot happen while every roll holds the append lock; never publish over it.
            state.poisoned = true;
            return Err(LogError::Io(io::Error::other(
                "the active segment changed during an append",
            )));
        }
        let mut segment = active.lock();
        let mut position = start_position;
        let mut fits = true;
        let mut end = next_offset;
        for (batch, (offset, max_timestamp)) in
            batches.iter().zip(prepared.offsets_and_timestamps())
        {
            let size = batch.size_bytes() as u64;
            let relative = active.relative(offset);
            fits &= segment.track_batch(
                relative,
                position as u32,
                size,
                max_timestamp,
                config.index_interval_bytes,
            );
            position += size;
            end = offset + i64::from(batch.last_offset_delta()) + 1;
        }
        segment.size_bytes = position;
        segment.first_append_ms.get_or_insert(now);
        drop(segment);
        state.active_full |= !fits;
        state.next_offset = end;
        self.published_end.store(end, Ordering::Release);
        // Under the state lock, as the flusher's recount (see `cached_bytes`).
        self.cached_bytes
            .fetch_add(position - start_position, Ordering::Relaxed);
        self.appended_bytes
            .fetch_add(position - start_position, Ordering::Release);
        Ok(end)
    }

    /// Rolls to a new segment when the append would overflow `segment.bytes`, the active
    /// segment is older than `segment.ms` (less its `segment.jitter.ms` draw), an index is full, or u32 offsets/positions would
    /// overflow. An empty active segment never rolls (it takes any single append).
    fn maybe_roll(
        &self,
        state: &mut LogState,
        config: &TopicConfig,
        total_bytes: u64,
        offsets_needed: i64,
        now: i64,
    ) -> Result<(), LogError> {
        let active = state.active();
        let (size, first_append_ms, index_full, jitter_draw) = {
            let segment = active.lock();
            // Checked here, not only remembered from the last append: a reopened segment
            // can start out with full indexes.
            let index_full = segment.index_room_entries() == 0;
            let first = segment.first_append_ms;
            (
                segment.size_bytes,
                first,
                index_full,
                segment.roll_jitter_draw,
            )
        };
        if size == 0 {
            return Ok(());
        }
        let too_big =
            size + total_bytes > config.segment_bytes || size + total_bytes > u64::from(u32::MAX);
        let roll_ms = config.segment_roll_ms(jitter_draw);
        let too_old = first_append_ms.is_some_and(|first| now.saturating_sub(first) >= roll_ms);
        let offsets_overflow =
            state.next_offset + offsets_needed - active.base_offset > i64::from(u32::MAX);
        if too_big || too_old || offsets_overflow || index_full || state.active_full {
            self.roll(state, config)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end.
    pub(crate) fn roll(&self, state: &mut LogState, config: &TopicConfig) -> Result<(), LogError> {
        let base = state.next_offset;
        assert!(base >= state.active().base_offset);
        if base == state.active().base_offset {
            return Ok(());
        }
        self.seal_active(state.active())?;
        let segment = Segment::create(&self.dir, base, u64::from(config.segment_index_bytes))?;
        state.segments.insert(base, Arc::new(segment));
        state.active_full = false;
        self.dir_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Seals the active segment (rolling or closing) and frees the blocks reserved past its
    /// end: truncating a file to its own size frees them (ext4, xfs), those reserved before
    /// a restart included.
    pub(crate) fn seal_active(&self, segment: &Segment) -> Result<(), LogError> {
        let size_bytes = {
            let mut state = segment.lock();
            state.seal()?;
            state.allocated_bytes = 0;
            state.size_bytes
        };
        if size_bytes >= PREALLOCATE_FROM_SEGMENT_BYTES {
            let trimmed = self
                .ctx
                .files
                .get(&segment.log_path)
                .and_then(|file| file.set_len(size_bytes));
            if let Err(e) = trimmed {
                // Only disk space held until the segment is deleted.
                tracing::warn!(topic = self.topic(), partition = self.partition(), error = %e, "freeing reserved segment blocks failed");
            }
        }
        Ok(())
    }
}
