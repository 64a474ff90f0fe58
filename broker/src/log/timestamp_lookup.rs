//! Lookups of a [`PartitionLog`] by timestamp (ListOffsets): the first record at or after a
//! time, and the record with the largest timestamp.
//!
//! Like the reads by offset (`reader`), they snapshot the segment list under the partition
//! lock and read outside it, retried when the cleaner replaced a segment meanwhile.

use std::os::unix::fs::FileExt;

use bytes::Bytes;
use runnel_protocol::batch::{RecordBatch, TimestampType};

use super::partition::PartitionLog;
use super::reader::{retry_on_retired, SegmentView};
use super::segment::{find_batch, BatchHeader};
use super::{LogError, TimestampOffset};

/// Decompression bound when reading record timestamps of one batch.
const RECORDS_UNCOMPRESSED_BYTES_MAX: usize = 64 << 20;

impl PartitionLog {
    /// First record with timestamp ≥ `timestamp_ms`; `None` when there is none.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        retry_on_retired(|| {
            let (views, start, _) = match self.snapshot(None, usize::MAX) {
                Ok(snapshot) => snapshot,
                Err(e) => return (Vec::new(), Err(e)),
            };
            let result = self.search_views(&views, timestamp_ms, start);
            (views, result)
        })
    }

    /// The record with the largest timestamp, the earliest such record on ties (ListOffsets
    /// `-3`); `None` for an empty log. Each segment knows its max timestamp and its time index
    /// points at the batch that first reached it, so this reads one batch, not the log. Only
    /// a first segment that starts below the log start (DeleteRecords) has its batch headers
    /// scanned, from the log start to its end: its max may lie in deleted records.
    pub fn max_timestamp_record(&self) -> Result<Option<TimestampOffset>, LogError> {
        retry_on_retired(|| {
            let (views, start, _) = match self.snapshot(None, usize::MAX) {
                Ok(snapshot) => snapshot,
                Err(e) => return (Vec::new(), Err(e)),
            };
            let result = self.max_timestamp_in(&views, start);
            (views, result)
        })
    }

    fn max_timestamp_in(
        &self,
        views: &[SegmentView],
        start: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        // (max timestamp, segment): the first segment reaching the largest one wins ties.
        let mut best: Option<(i64, &SegmentView)> = None;
        for view in views
            .iter()
            .filter(|v| v.end_offset > start && v.size_bytes > 0)
        {
            let max_ms = if view.segment.base_offset < start {
                match self.live_max_timestamp(view, start)? {
                    Some(max_ms) => max_ms,
                    None => continue,
                }
            } else {
                self.segment_max_timestamp(view)?
            };
            if best.is_none_or(|(best_ms, _)| max_ms > best_ms) {
                best = Some((max_ms, view));
            }
        }
        let Some((max_ms, view)) = best else {
            return Ok(None);
        };
        self.search_segment(view, max_ms, start)
    }

    /// The segment's max timestamp (kept with its indexes, loaded on first use).
    fn segment_max_timestamp(&self, view: &SegmentView) -> Result<i64, LogError> {
        Ok(self.indexed_state(view)?.max_timestamp)
    }

    /// The largest batch max timestamp of `view` at or after `start` (header reads only).
    fn live_max_timestamp(&self, view: &SegmentView, start: i64) -> Result<Option<i64>, LogError> {
        let mut position = self.index_position(view, start)?;
        let file = self.ctx.files.get(&view.segment.log_path)?;
        let mut max_ms = None;
        // Each step moves past one whole batch inside the snapshot size: bounded.
        while let Some((at, header)) = find_batch(&file, position, view.size_bytes, start)
            .map_err(|e| self.corrupt(view, e))?
        {
            let batch_max_ms = if header.base_offset < start {
                let mut raw = vec![0u8; header.size_bytes as usize];
                file.read_exact_at(&mut raw, at)?;
                let batch = RecordBatch::parse(Bytes::from(raw))?;
                live_max_timestamp(&batch, &header, start)
            } else {
                header.max_timestamp
            };
            max_ms = max_ms.max(Some(batch_max_ms));
            position = at + header.size_bytes;
        }
        Ok(max_ms)
    }

    fn search_views(
        &self,
        views: &[SegmentView],
        timestamp_ms: i64,
        start: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        for view in views.iter().filter(|v| v.end_offset > start) {
            if let Some(found) = self.search_segment(view, timestamp_ms, start)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The time index points at the first batch whose max timestamp reaches the target; scan
    /// batches from there (skipping ones below the log start) for the first matching record.
    fn search_segment(
        &self,
        view: &SegmentView,
        timestamp_ms: i64,
        min_offset: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        let segment = &view.segment;
        let (relative, mut position) = {
            let state = self.indexed_state(view)?;
            let Some((_, time_index)) = state.indexes.as_ref() else {
                return Ok(None);
            };
            let Some((_, relative)) = time_index.first_at_or_after(timestamp_ms) else {
                return Ok(None);
            };
            (relative, state.lookup_position(relative))
        };
        let file = self.ctx.files.get(&segment.log_path)?;
        let target = (segment.base_offset + i64::from(relative)).max(min_offset);
        // Each step moves past one whole batch inside the snapshot size: bounded.
        while let Some((at, header)) = find_batch(&file, position, view.size_bytes, target)
            .map_err(|e| self.corrupt(view, e))?
        {
            if header.max_timestamp >= timestamp_ms {
                let mut raw = vec![0u8; header.size_bytes as usize];
                file.read_exact_at(&mut raw, at)?;
                let batch = RecordBatch::parse(Bytes::from(raw))?;
                if let Some(found) =
                    first_record_at_or_after(&batch, &header, timestamp_ms, min_offset)
                {
                    return Ok(Some(found));
                }
            }
            position = at + header.size_bytes;
        }
        Ok(None)
    }
}

/// The largest timestamp of `batch`'s records at or after `min_offset` (the batch's last
/// offset reaches it). Batch granularity where records cannot be decoded, as
/// [`first_record_at_or_after`] answers them.
fn live_max_timestamp(batch: &RecordBatch, header: &BatchHeader, min_offset: i64) -> i64 {
    if batch.timestamp_type() == TimestampType::LogAppendTime {
        return header.max_timestamp;
    }
    let Ok(records) = runnel_protocol::records::records(batch, RECORDS_UNCOMPRESSED_BYTES_MAX)
    else {
        return header.max_timestamp;
    };
    let mut max_ms = kafka_protocol::records::NO_TIMESTAMP;
    // Bounded: `records` yields at most the batch's declared record count.
    for record in records {
        let Ok(record) = record else {
            return header.max_timestamp;
        };
        if record.offset >= min_offset {
            max_ms = max_ms.max(record.timestamp);
        }
    }
    max_ms
}

/// The first record of `batch` at or after both `timestamp_ms` and `min_offset`; `None` when
/// no record of this batch qualifies (the caller moves on to later batches).
///
/// A batch whose records cannot be decoded (opaque payloads written by tools that bypass
/// record validation) is answered at batch granularity: its max timestamp reaches the target,
/// so its first offset at or above `min_offset` is a safe, never-late answer.
fn first_record_at_or_after(
    batch: &RecordBatch,
    header: &BatchHeader,
    timestamp_ms: i64,
    min_offset: i64,
) -> Option<TimestampOffset> {
    debug_assert!(
        header.max_timestamp >= timestamp_ms,
        "only candidate batches"
    );
    let batch_level = TimestampOffset {
        offset: header.base_offset.max(min_offset),
        timestamp: header.max_timestamp,
    };
    if batch.timestamp_type() == TimestampType::LogAppendTime {
        // Every record of a LogAppendTime batch carries the batch's max timestamp.
        return (header.last_offset >= min_offset).then_some(batch_level);
    }
    let Ok(records) = runnel_protocol::records::records(batch, RECORDS_UNCOMPRESSED_BYTES_MAX)
    else {
        return Some(batch_level);
    };
    // Bounded: `records` yields at most the batch's declared record count.
    for record in records {
        let Ok(record) = record else {
            return Some(batch_level);
        };
        if record.offset >= min_offset && record.timestamp >= timestamp_ms {
            return Some(TimestampOffset {
                offset: record.offset,
                timestamp: record.timestamp,
            });
        }
    }
    None
}
