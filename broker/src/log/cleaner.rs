//! The log cleaner: picks the dirtiest compacted partition and runs one pass over it
//! (`clean_pass.rs`), keeping per-partition figures for metrics.
//!
//! One cleaner thread per [`super::LogManager`] (Kafka's `log.cleaner.threads` = 1). Memory:
//! one [`OffsetMap`] of `offset_map_bytes`, reused by every pass (a partition with more keys
//! than fit is cleaned over several passes). I/O: `io_bytes_per_second_max` (read + written).
//! Thread-safety: the map sits behind a mutex held for a whole pass, so passes never overlap;
//! the stats map behind its own mutex, held only to copy figures.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::checkpoint::PartitionKey;
use super::clean_filter::TombstoneRule;
use super::clean_pass::{modified_ms, CleanView, PassOutcome};
use super::offset_map::OffsetMap;
use super::partition::PartitionLog;
use super::segment::read_header;
use super::LogError;

/// Cleaner tuning (Kafka's `log.cleaner.*` broker settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size`: memory of the key → offset map.
    pub offset_map_bytes: usize,
    /// `log.cleaner.backoff.ms`: pause between looks for a dirty partition. Short by default
    /// because a look only reads in-memory segment sizes.
    pub backoff_ms: u64,
    /// `log.cleaner.io.max.bytes.per.second` (bytes read plus written; `u64::MAX`: no cap).
    pub io_bytes_per_second_max: u64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            offset_map_bytes: 128 << 20,
            backoff_ms: 1_000,
            io_bytes_per_second_max: u64::MAX,
        }
    }
}

/// Cleaner figures of one partition (totals since the broker started).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionCleanerStats {
    pub topic: String,
    pub partition: i32,
    pub bytes_read_total: u64,
    pub bytes_written_total: u64,
    pub records_removed_total: u64,
    pub passes_total: u64,
    pub errors_total: u64,
    /// Duration of the last pass in seconds.
    pub last_run_duration_seconds: f64,
    /// Dirty bytes / (clean + dirty bytes) when last looked at.
    pub dirty_ratio: f64,
    /// Cleaning stopped for this partition after an error (until restart).
    pub uncleanable: bool,
}

/// A snapshot of every partition's cleaner figures and their totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanerStats {
    pub partitions: Vec<PartitionCleanerStats>,
    pub bytes_read_total: u64,
    pub bytes_written_total: u64,
    pub records_removed_total: u64,
    pub passes_total: u64,
    pub errors_total: u64,
    /// Duration of the most recent pass of any partition, in seconds.
    pub last_run_duration_seconds: f64,
}

/// Caps bytes per second by sleeping once ahead of the budget, and stops a pass when the
/// manager shuts down (checked per batch, so shutdown never waits for a whole pass).
pub(crate) struct Throttle {
    bytes_per_second_max: u64,
    started: Instant,
    bytes: u64,
    abort: Arc<AtomicBool>,
}

/// Longest single sleep of the throttle, so an abort is noticed promptly.
const THROTTLE_SLEEP_MS_MAX: u64 = 100;

impl Throttle {
    pub(crate) fn new(bytes_per_second_max: u64, abort: Arc<AtomicBool>) -> Throttle {
        Throttle {
            bytes_per_second_max: bytes_per_second_max.max(1),
            started: Instant::now(),
            bytes: 0,
            abort,
        }
    }

    /// Accounts `bytes` of I/O; `ShutDown` once the manager is stopping.
    pub(crate) fn charge(&mut self, bytes: u64) -> Result<(), LogError> {
        if self.abort.load(Ordering::Acquire) {
            return Err(LogError::ShutDown);
        }
        if self.bytes_per_second_max == u64::MAX {
            return Ok(());
        }
        self.bytes = self.bytes.saturating_add(bytes);
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_second_max as f64);
        if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(ahead.min(Duration::from_millis(THROTTLE_SLEEP_MS_MAX)));
        }
        Ok(())
    }
}

/// The cleaner's state, shared by its thread and `LogManager::clean_now`.
pub(crate) struct Cleaner {
    pub config: Mutex<CleanerConfig>,
    map: Mutex<OffsetMap>,
    stats: Mutex<BTreeMap<PartitionKey, PartitionCleanerStats>>,
    /// Counters of deleted partitions, still part of the totals: a total that fell when a
    /// topic went would read as a counter reset to Prometheus.
    forgotten: Mutex<PartitionCleanerStats>,
    uncleanable: Mutex<BTreeSet<PartitionKey>>,
    /// Set when the manager stops: a running pass gives up at its next batch.
    pub abort: Arc<AtomicBool>,
}

/// How dirty a partition is and where its cleanable section ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dirtiness {
    pub first_dirty: i64,
    /// First offset the cleaner may not touch (a segment base ≤ the active base).
    pub uncleanable_offset: i64,
    pub dirty_ratio: f64,
    pub dirty_bytes: u64,
    /// `max.compaction.lag.ms` passed for the oldest dirty record: clean whatever the ratio.
    pub overdue: bool,
}

impl Cleaner {
    pub(crate) fn new(config: CleanerConfig) -> Cleaner {
        let map = OffsetMap::with_memory_bytes(config.offset_map_bytes);
        Cleaner {
            config: Mutex::new(config),
            map: Mutex::new(map),
            stats: Mutex::new(BTreeMap::new()),
            forgotten: Mutex::new(PartitionCleanerStats::default()),
            uncleanable: Mutex::new(BTreeSet::new()),
            abort: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn set_config(&self, config: CleanerConfig) {
        *self.map.lock() = OffsetMap::with_memory_bytes(config.offset_map_bytes);
        *self.config.lock() = config;
    }

    pub(crate) fn is_uncleanable(&self, key: &PartitionKey) -> bool {
        self.uncleanable.lock().contains(key)
    }

    fn stats_of<'a>(
        stats: &'a mut BTreeMap<PartitionKey, PartitionCleanerStats>,
        log: &PartitionLog,
    ) -> &'a mut PartitionCleanerStats {
        stats
            .entry(log.key())
            .or_insert_with(|| PartitionCleanerStats {
                topic: log.topic().to_string(),
                partition: log.partition(),
                ..PartitionCleanerStats::default()
            })
    }

    pub(crate) fn record_ratio(&self, log: &PartitionLog, dirty_ratio: f64) {
        Self::stats_of(&mut self.stats.lock(), log).dirty_ratio = dirty_ratio;
    }

    /// Runs one pass over `log` and records its figures; a corrupt batch or any other
    /// failure (except the partition going away) marks the partition uncleanable.
    pub(crate) fn run_pass(&self, log: &PartitionLog, now_ms: i64) -> Result<(), LogError> {
        let started = Instant::now();
        let config = self.config.lock().clone();
        let mut map = self.map.lock();
        let mut throttle = Throttle::new(config.io_bytes_per_second_max, self.abort.clone());
        let mut outcome = PassOutcome::default();
        let result = log.clean_once(now_ms, &mut map, &mut throttle, &mut outcome);
        let mut stats = self.stats.lock();
        let entry = Self::stats_of(&mut stats, log);
        entry.bytes_read_total += outcome.bytes_read;
        entry.bytes_written_total += outcome.bytes_written;
        entry.records_removed_total += outcome.records_removed;
        entry.passes_total += 1;
        entry.last_run_duration_seconds = started.elapsed().as_secs_f64();
        match &result {
            // Stopping, or the topic was deleted under the pass.
            Ok(()) | Err(LogError::ShutDown | LogError::UnknownTopicOrPartition { .. }) => {}
            Err(LogError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(topic = log.topic(), partition = log.partition(), error = %e, "cleaning failed; partition marked uncleanable");
                entry.errors_total += 1;
                entry.uncleanable = true;
                self.uncleanable.lock().insert(log.key());
            }
        }
        result
    }

    /// Every partition's figures and their totals (deleted partitions' counters included).
    pub(crate) fn snapshot(&self) -> CleanerStats {
        let partitions: Vec<PartitionCleanerStats> = self.stats.lock().values().cloned().collect();
        let mut totals = CleanerStats::default();
        let forgotten = self.forgotten.lock().clone();
        for p in partitions.iter().chain(std::iter::once(&forgotten)) {
            totals.bytes_read_total += p.bytes_read_total;
            totals.bytes_written_total += p.bytes_written_total;
            totals.records_removed_total += p.records_removed_total;
            totals.passes_total += p.passes_total;
            totals.errors_total += p.errors_total;
        }
        totals.last_run_duration_seconds = partitions
            .iter()
            .map(|p| p.last_run_duration_seconds)
            .fold(0.0, f64::max);
        totals.partitions = partitions;
        totals
    }

    /// Forgets a deleted partition: its own figures go, its counters stay in the totals.
    pub(crate) fn forget(&self, key: &PartitionKey) {
        let gone = self.stats.lock().remove(key);
        if let Some(gone) = gone {
            let mut forgotten = self.forgotten.lock();
            forgotten.bytes_read_total += gone.bytes_read_total;
            forgotten.bytes_written_total += gone.bytes_written_total;
            forgotten.records_removed_total += gone.records_removed_total;
            forgotten.passes_total += gone.passes_total;
            forgotten.errors_total += gone.errors_total;
        }
        self.uncleanable.lock().remove(key);
    }
}

impl PartitionLog {
    /// Where the clean section ends (checkpoint, clamped into the log).
    fn first_dirty(&self, view: &CleanView) -> i64 {
        let start = self.log_start_offset();
        let checkpoint = self.ctx.checkpoints.cleaner_offset(&self.key());
        checkpoint.unwrap_or(start).clamp(start, view.active_base)
    }

    /// Dirty ratio and the cleanable range, honouring `min.compaction.lag.ms` (a segment
    /// with records younger than the lag, and everything after it, is left alone) and
    /// `max.compaction.lag.ms` (an overdue dirty record forces a pass).
    pub(crate) fn dirtiness(&self, view: &CleanView, now_ms: i64) -> Dirtiness {
        let config = self.config();
        let first_dirty = self.first_dirty(view);
        let lag_floor_ms = now_ms.saturating_sub(config.min_compaction_lag_ms);
        let mut uncleanable_offset = view.active_base;
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        let mut overdue = false;
        for segment in &view.sealed {
            if segment.end_offset <= first_dirty {
                clean_bytes += segment.size_bytes;
                continue;
            }
            let newest_ms = segment.segment.lock().max_timestamp;
            if config.min_compaction_lag_ms > 0 && newest_ms > lag_floor_ms {
                uncleanable_offset = segment.segment.base_offset;
                break;
            }
            if dirty_bytes == 0 {
                overdue = first_batch_timestamp(segment).is_some_and(|oldest_ms| {
                    now_ms.saturating_sub(oldest_ms) > config.max_compaction_lag_ms
                });
            }
            dirty_bytes += segment.size_bytes;
        }
        let total = clean_bytes + dirty_bytes;
        Dirtiness {
            first_dirty,
            uncleanable_offset: uncleanable_offset.max(first_dirty),
            dirty_ratio: if total == 0 {
                0.0
            } else {
                dirty_bytes as f64 / total as f64
            },
            dirty_bytes,
            overdue,
        }
    }

    /// One pass: map the dirty section, rewrite the segments below the map's end, checkpoint.
    fn clean_once(
        &self,
        now_ms: i64,
        map: &mut OffsetMap,
        throttle: &mut Throttle,
        outcome: &mut PassOutcome,
    ) -> Result<(), LogError> {
        let config = self.config();
        let view = self.clean_view()?;
        let dirtiness = self.dirtiness(&view, now_ms);
        let first_dirty = dirtiness.first_dirty;
        let end = dirtiness.uncleanable_offset;
        let map_end = self.build_offset_map(&view, first_dirty, end, map, throttle, outcome)?;
        assert!(
            (first_dirty..=end.max(first_dirty)).contains(&map_end),
            "the map covers part of the cleanable range"
        );
        if map_end == first_dirty && dirtiness.dirty_bytes > 0 {
            return Err(LogError::InvalidConfig(
                "cleaner offset map too small for one batch".to_string(),
            ));
        }
        // Kafka's horizon: the newest clean segment's age minus delete.retention.ms.
        let delete_horizon_ms = view
            .sealed
            .iter()
            .take_while(|v| v.end_offset <= first_dirty)
            .last()
            .map_or(i64::MIN, |v| {
                modified_ms(&v.segment.log_path).saturating_sub(config.delete_retention_ms)
            });
        let cleanable: Vec<_> = view
            .sealed
            .iter()
            .filter(|v| v.segment.base_offset < map_end)
            .cloned()
            .collect();
        let tombstones = TombstoneRule {
            delete_horizon_ms,
            first_dirty,
            segment_past_horizon: false,
        };
        if let Some(last) = cleanable.last() {
            self.record_durable_through(last.end_offset)?;
        }
        if !self.rewrite_cleanable(&cleanable, map, tombstones, throttle, outcome)? {
            return Ok(());
        }
        self.ctx
            .checkpoints
            .set_cleaner_offset(self.key(), map_end, &self.deleted)?;
        Ok(())
    }

    /// Makes every offset below `end` durable and records that in the recovery-point
    /// checkpoint on disk, before a pass rewrites segments below `end`. A rewritten segment
    /// that lost its last records leaves an offset gap before the next one, and recovery
    /// takes a gap past the recovery point for a tail lost in a power cut (it drops every
    /// segment after it); with the recovery point on disk at or past every gap the cleaner
    /// made, recovery never scans one — whatever the topic's cleanup policy is by then.
    fn record_durable_through(&self, end: i64) -> Result<(), LogError> {
        let key = self.key();
        if self
            .ctx
            .checkpoints
            .recovery_point(&key)
            .unwrap_or(i64::MIN)
            < end
        {
            self.flush()?;
        }
        self.ctx.checkpoints.write_recovery_points()?;
        Ok(())
    }
}

/// Max timestamp of a segment's first batch: Kafka's "earliest timestamp" of a segment is
/// read the same cheap way (one header).
fn first_batch_timestamp(view: &super::clean_pass::SealedView) -> Option<i64> {
    let file = std::fs::File::open(&view.segment.log_path).ok()?;
    let header = read_header(&file, 0, view.size_bytes).ok()??;
    (header.max_timestamp >= 0).then_some(header.max_timestamp)
}

/// Picks the partition most worth cleaning: overdue ones first, then the highest dirty ratio
/// at or above its `min.cleanable.dirty.ratio`.
pub(crate) fn pick_dirtiest(
    cleaner: &Cleaner,
    partitions: &[Arc<PartitionLog>],
    now_ms: i64,
) -> Option<Arc<PartitionLog>> {
    let mut best: Option<(bool, f64, Arc<PartitionLog>)> = None;
    for log in partitions {
        let config = log.config();
        if !config.cleanup_policy.compact || cleaner.is_uncleanable(&log.key()) {
            continue;
        }
        let Ok(view) = log.clean_view() else {
            continue;
        };
        let dirtiness = log.dirtiness(&view, now_ms);
        cleaner.record_ratio(log, dirtiness.dirty_ratio);
        let eligible = dirtiness.dirty_bytes > 0
            && (dirtiness.overdue || dirtiness.dirty_ratio >= config.min_cleanable_dirty_ratio);
        let better = best.as_ref().is_none_or(|(overdue, ratio, _)| {
            (dirtiness.overdue, dirtiness.dirty_ratio) > (*overdue, *ratio)
        });
        if eligible && better {
            best = Some((dirtiness.overdue, dirtiness.dirty_ratio, log.clone()));
        }
    }
    best.map(|(_, _, log)| log)
}
