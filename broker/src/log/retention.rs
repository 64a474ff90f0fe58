//! Retention and DeleteRecords: moving the log start offset and deleting whole segments.
//!
//! Only sealed segments are ever deleted. The new log start offset is checkpointed *before*
//! files go, so a crash in between leaves extra files below the start, never a start that
//! exposes deleted records. Files are renamed to `.deleted` first so a crash mid-delete
//! leaves names recovery knows how to finish.

use std::fs;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::partition::{LogState, PartitionLog};
use super::recovery::{ensure_indexes, remove_if_exists};
use super::segment::Segment;
use super::{LogError, TopicConfig};

impl PartitionLog {
    /// Deletes sealed segments past `retention.ms` (by newest timestamp) or beyond
    /// `retention.bytes` (oldest first, and only while the rest still holds at least
    /// `retention.bytes`, as Kafka does). Policy `compact` alone disables both.
    pub(crate) fn enforce_retention(&self, now_ms: i64) -> Result<(), LogError> {
        let config = self.config();
        if !config.cleanup_policy.delete || (config.retention_ms < 0 && config.retention_bytes < 0)
        {
            return Ok(());
        }
        // Segment files go only under the flush lock (see `delete_below`).
        let _no_flush = self.flush_lock.lock();
        let mut guard = self.loaded()?;
        let Some(state) = guard.as_mut() else {
            return Err(LogError::ShutDown);
        };
        let doomed = expired_segments(state, &config, now_ms)?;
        if doomed == 0 {
            return Ok(());
        }
        let Some((&new_first_base, _)) = state.segments.iter().nth(doomed) else {
            unreachable!("the active segment is never counted as expired");
        };
        let new_start = self.log_start_offset().max(new_first_base);
        self.move_log_start(new_start)?;
        self.delete_below(state, new_start)
    }

    /// DeleteRecords: moves the log start offset up to `offset` (checkpointed); returns the
    /// new log start offset. `-1` means the high watermark.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        // It may roll the active segment: no append may be writing to it meanwhile.
        let _writer = self.append_lock.lock();
        // Segment files go only under the flush lock (see `delete_below`).
        let _no_flush = self.flush_lock.lock();
        let mut guard = self.loaded()?;
        let Some(state) = guard.as_mut() else {
            return Err(LogError::ShutDown);
        };
        let end = state.next_offset;
        let offset = if offset == -1 { end } else { offset };
        let start = self.log_start_offset();
        if offset < 0 || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        if offset <= start {
            return Ok(start);
        }
        if offset == end {
            // Everything goes: roll so the old active segment becomes deletable.
            let config = self.config();
            self.roll(state, &config)?;
        }
        self.move_log_start(offset)?;
        self.delete_below(state, offset)?;
        Ok(offset)
    }

    fn move_log_start(&self, offset: i64) -> Result<(), LogError> {
        assert!(
            offset >= self.log_start_offset(),
            "the log start never moves back"
        );
        self.ctx.checkpoints.set_log_start(self.key(), offset)?;
        self.log_start_offset.store(offset, Ordering::Release);
        // A fetch long-polling below the new start must answer OFFSET_OUT_OF_RANGE now, not
        // at its deadline: wake the end-offset watchers (the value itself is unchanged).
        self.announce_move();
        Ok(())
    }

    /// Deletes every sealed segment whose offsets all lie below `offset`.
    ///
    /// The caller holds `flush_lock` (lock order: `append_lock` → `flush_lock` → `state`), as
    /// the cleaner's swap does. A flush copies the segment list under the state lock and
    /// fsyncs each file after releasing it; a file deleted in between would fail that fsync
    /// with NotFound, and an fsync failure is sticky (every later acks=all produce would get
    /// KAFKA_STORAGE_ERROR until restart). Holding the flush lock here means no flush is
    /// between its copy and its fsyncs, so every file a flush opens still exists. The cost
    /// is that a deletion waits for at most one fsync under way; telling "deleted by us"
    /// from "lost" at the fsync instead would weaken the one check that catches the latter.
    fn delete_below(&self, state: &mut LogState, offset: i64) -> Result<(), LogError> {
        let bases: Vec<i64> = state.segments.keys().copied().collect();
        for pair in bases.windows(2) {
            let (base, next_base) = (pair[0], pair[1]);
            if next_base > offset {
                break;
            }
            if let Some(segment) = state.segments.remove(&base) {
                self.delete_segment_files(&segment)?;
            }
        }
        assert!(
            !state.segments.is_empty(),
            "the active segment is never deleted"
        );
        Ok(())
    }

    fn delete_segment_files(&self, segment: &Segment) -> Result<(), LogError> {
        self.ctx.files.evict(&segment.log_path);
        segment.lock().indexes = None;
        for path in segment.paths() {
            let mut doomed = path.clone().into_os_string();
            doomed.push(".deleted");
            match fs::rename(&path, &doomed) {
                Ok(()) => remove_if_exists(doomed.as_ref())?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// How many of the oldest sealed segments retention removes.
fn expired_segments(
    state: &LogState,
    config: &TopicConfig,
    now_ms: i64,
) -> Result<usize, LogError> {
    let sealed: Vec<(i64, Arc<Segment>)> = state
        .segments
        .iter()
        .map(|(b, s)| (*b, s.clone()))
        .take(state.segments.len() - 1)
        .collect();
    let mut total_bytes: i64 = state
        .segments
        .values()
        .map(|s| s.lock().size_bytes as i64)
        .sum();
    let mut doomed = 0usize;
    for (i, (_, segment)) in sealed.iter().enumerate() {
        let end_offset = sealed
            .get(i + 1)
            .map_or(state.active().base_offset, |(b, _)| *b);
        let mut segment_state = segment.lock();
        ensure_indexes(segment, &mut segment_state, config, None, end_offset)?;
        let newest_ms = if segment_state.max_timestamp >= 0 {
            segment_state.max_timestamp
        } else {
            modified_ms(segment)
        };
        let size = segment_state.size_bytes as i64;
        // An empty sealed segment (all its records compacted away) holds nothing to keep.
        let too_old = config.retention_ms >= 0
            && (size == 0 || now_ms.saturating_sub(newest_ms) > config.retention_ms);
        // Kafka's rule: a segment goes only if what remains still holds retention.bytes.
        let too_big = config.retention_bytes >= 0 && total_bytes - size >= config.retention_bytes;
        if !too_old && !too_big {
            break;
        }
        total_bytes -= size;
        doomed += 1;
    }
    Ok(doomed)
}

/// The log file's mtime: the age of a segment whose batches carry no timestamps.
fn modified_ms(segment: &Segment) -> i64 {
    fs::metadata(&segment.log_path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(i64::MAX, |d| d.as_millis() as i64)
}
