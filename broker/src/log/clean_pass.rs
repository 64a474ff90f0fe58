//! One cleaning pass over one partition: build key → latest offset over the dirty section,
//! then rewrite the sealed segments below the map's end into merged cleaned segments,
//! keeping the latest record per key (which records survive: `clean_filter`), and swap each
//! in (see `swap.rs`).
//!
//! Runs on the cleaner thread without the partition lock: sealed segments never change
//! except by the swap (which re-checks them) or deletion (which the swap detects). Memory is
//! bounded by the offset map, one batch being read and one being rebuilt.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use runnel_protocol::batch::{RecordBatch, BATCH_HEADER_BYTES};

use super::clean_filter::{
    corrupt, decode, filter_batch, is_kept_verbatim, KeepRules, TombstoneRule,
};
use super::cleaner::Throttle;
use super::last_batches::LastBatches;
use super::offset_map::{key_hash, OffsetMap};
use super::page_cache::WRITE_BYTES_MAX;
use super::partition::PartitionLog;
use super::recovery::ensure_indexes;
use super::segment::{BatchHeader, Segment};
use super::swap::with_suffix;
use super::LogError;

/// Read-ahead when streaming a segment.
const READ_BUFFER_BYTES: usize = 1 << 20;
/// Write-behind of the cleaned segment.
const WRITE_BUFFER_BYTES: usize = WRITE_BYTES_MAX;
/// A stored batch larger than this is treated as corruption (Kafka's max is ~1 MiB).
const BATCH_BYTES_MAX: u64 = 64 << 20;
/// A sealed segment as the cleaner saw it.
#[derive(Clone)]
pub(crate) struct SealedView {
    pub segment: Arc<Segment>,
    pub size_bytes: u64,
    /// First offset after this segment (the next segment's base).
    pub end_offset: i64,
    /// Entries of its fuller index: what it would add to a merged segment's indexes.
    pub index_entries: usize,
}

/// A partition's sealed segments, its log start and its active segment's base.
pub(crate) struct CleanView {
    pub sealed: Vec<SealedView>,
    pub active_base: i64,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PassOutcome {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
}

/// Streams the whole, CRC-checked batches of one sealed segment.
struct SegmentBatches {
    reader: BufReader<File>,
    path: PathBuf,
    position: u64,
    end_bytes: u64,
}

impl SegmentBatches {
    fn open(view: &SealedView) -> Result<SegmentBatches, LogError> {
        let file = File::open(&view.segment.log_path)?;
        Ok(SegmentBatches {
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, file),
            path: view.segment.log_path.clone(),
            position: 0,
            end_bytes: view.size_bytes,
        })
    }

    /// The next batch, or `None` at the end. Framing and CRC are checked: cleaning never
    /// rewrites bytes it cannot vouch for.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, LogError> {
        let left_bytes = self.end_bytes - self.position;
        if left_bytes == 0 {
            return Ok(None);
        }
        let mut header_bytes = [0u8; BATCH_HEADER_BYTES];
        if left_bytes < BATCH_HEADER_BYTES as u64 {
            return Err(corrupt(
                &self.path,
                format!("torn batch at {}", self.position),
            ));
        }
        self.reader.read_exact(&mut header_bytes)?;
        let header = BatchHeader::parse(&header_bytes).map_err(|e| corrupt(&self.path, e))?;
        if !header.is_plausible()
            || header.size_bytes > left_bytes
            || header.size_bytes > BATCH_BYTES_MAX
        {
            return Err(corrupt(
                &self.path,
                format!("bad batch at {}", self.position),
            ));
        }
        let size = usize::try_from(header.size_bytes).map_err(|e| corrupt(&self.path, e))?;
        let mut raw = vec![0u8; size];
        raw[..BATCH_HEADER_BYTES].copy_from_slice(&header_bytes);
        self.reader.read_exact(&mut raw[BATCH_HEADER_BYTES..])?;
        let batch = RecordBatch::parse(Bytes::from(raw)).map_err(|e| corrupt(&self.path, e))?;
        batch.verify_crc().map_err(|e| corrupt(&self.path, e))?;
        self.position += header.size_bytes;
        Ok(Some(batch))
    }
}

/// Modification time of a segment's log in ms (0 when unknown: treated as oldest).
pub(crate) fn modified_ms(path: &Path) -> i64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl PartitionLog {
    /// The sealed segments (and indexes loaded, for their timestamps) under the state lock.
    pub(crate) fn clean_view(&self) -> Result<CleanView, LogError> {
        let config = self.config();
        let guard = self.loaded()?;
        let Some(state) = guard.as_ref() else {
            return Err(LogError::ShutDown);
        };
        let active_base = state.active().base_offset;
        let bases: Vec<i64> = state.segments.keys().copied().collect();
        let mut sealed = Vec::with_capacity(bases.len());
        for pair in bases.windows(2) {
            let Some(segment) = state.segments.get(&pair[0]) else {
                continue;
            };
            let mut segment_state = segment.lock();
            ensure_indexes(segment, &mut segment_state, &config, None, pair[1])?;
            let index_entries = segment_state
                .indexes
                .as_ref()
                .map_or(0, |(offsets, times)| offsets.len().max(times.len()));
            sealed.push(SealedView {
                segment: segment.clone(),
                size_bytes: segment_state.size_bytes,
                end_offset: pair[1],
                index_entries,
            });
        }
        Ok(CleanView {
            sealed,
            active_base,
        })
    }

    /// Indexes keys of the dirty section from `first_dirty` up to `end_offset` (a segment
    /// base); returns where the map's coverage ends (a batch boundary ≤ `end_offset`).
    pub(crate) fn build_offset_map(
        &self,
        view: &CleanView,
        first_dirty: i64,
        end_offset: i64,
        map: &mut OffsetMap,
        throttle: &mut Throttle,
        outcome: &mut PassOutcome,
    ) -> Result<i64, LogError> {
        map.clear();
        let mut covered = first_dirty;
        let dirty = view.sealed.iter().filter(|v| v.end_offset > first_dirty);
        for segment in dirty.take_while(|v| v.segment.base_offset < end_offset) {
            let mut batches = SegmentBatches::open(segment)?;
            // Each step consumes one whole batch of the segment: bounded by its size.
            while let Some(batch) = batches.next_batch()? {
                outcome.bytes_read += batch.size_bytes() as u64;
                throttle.charge(batch.size_bytes() as u64)?;
                if batch.last_offset() < first_dirty {
                    continue;
                }
                if !is_kept_verbatim(&batch) {
                    let count = usize::try_from(batch.record_count()).unwrap_or(usize::MAX);
                    if count > map.room_entries() {
                        return Ok(covered);
                    }
                    for record in decode(&batch, &segment.segment.log_path)? {
                        if let Some(key) = &record.key {
                            map.put(key_hash(key), record.offset);
                        }
                    }
                }
                covered = batch.next_offset();
            }
            covered = segment.end_offset;
        }
        assert!(covered <= end_offset || covered == first_dirty);
        Ok(covered.max(first_dirty))
    }

    /// Rewrites the `cleanable` sealed segments (ascending, from the first) into merged
    /// cleaned segments and swaps each in. An output takes input segments while what it
    /// already holds plus the next input's whole size fits `segment.bytes`, so runs of
    /// segments that shrank to little or nothing merge. False when the log changed under the
    /// cleaner (the pass stops; nothing is lost).
    pub(crate) fn rewrite_cleanable(
        &self,
        cleanable: &[SealedView],
        map: &OffsetMap,
        tombstones: TombstoneRule,
        throttle: &mut Throttle,
        outcome: &mut PassOutcome,
    ) -> Result<bool, LogError> {
        let config = self.config();
        // The larger index entry is the time index's 12 bytes.
        let limits = (
            config.segment_bytes,
            config.segment_index_bytes as usize / 12,
        );
        let last_batches = LastBatches::scan(cleanable, throttle)?;
        let rules = KeepRules {
            latest: map,
            last_batches: &last_batches,
            tombstones,
        };
        let mut current: Option<CleanedSegment> = None;
        for view in cleanable {
            if let Some(output) = current.take() {
                if output.fits(view, limits) {
                    current = Some(output);
                } else if !self.finish_cleaned(output, outcome)? {
                    return Ok(false);
                }
            }
            let output = match current.as_mut() {
                Some(output) => output,
                None => current.insert(CleanedSegment::create(view)?),
            };
            if let Err(e) = output.copy_from(view, &rules, throttle, outcome) {
                output.discard();
                return Err(e);
            }
        }
        match current {
            Some(output) => self.finish_cleaned(output, outcome),
            None => Ok(true),
        }
    }

    /// Makes `output` durable and swaps it in (or drops it when it changed nothing).
    fn finish_cleaned(
        &self,
        output: CleanedSegment,
        outcome: &mut PassOutcome,
    ) -> Result<bool, LogError> {
        let path = output.path.clone();
        let result = output.finish(self);
        let (old, size_bytes, changed) = match result {
            Ok(finished) => finished,
            Err(e) => {
                super::recovery::remove_if_exists(&path)?;
                return Err(e);
            }
        };
        if !changed {
            super::recovery::remove_if_exists(&path)?;
            return Ok(true);
        }
        outcome.bytes_written += size_bytes;
        self.swap_in(&old, &path, size_bytes)
    }
}

/// One cleaned segment being written: `<first input base>.log.cleaned`.
struct CleanedSegment {
    inputs: Vec<SealedView>,
    path: PathBuf,
    out: BufWriter<File>,
    written_bytes: u64,
    changed: bool,
    newest_mtime_ms: i64,
}

impl CleanedSegment {
    fn create(first: &SealedView) -> Result<CleanedSegment, LogError> {
        let path = with_suffix(&first.segment.log_path, ".cleaned");
        let file = File::create(&path)?;
        Ok(CleanedSegment {
            inputs: Vec::new(),
            path,
            out: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            written_bytes: 0,
            changed: false,
            newest_mtime_ms: 0,
        })
    }

    /// Whether `next` can join without the output outgrowing `segment.bytes` or its indexes
    /// (assuming `next` keeps everything: inputs' index entries are summed), or its offsets
    /// outgrowing u32 relative offsets. `limits` is (segment bytes, index entries).
    fn fits(&self, next: &SealedView, limits: (u64, usize)) -> bool {
        let (segment_bytes, index_entries_max) = limits;
        let base = self
            .inputs
            .first()
            .map_or(next.segment.base_offset, |v| v.segment.base_offset);
        let index_entries: usize = self.inputs.iter().map(|v| v.index_entries).sum();
        self.written_bytes + next.size_bytes <= segment_bytes
            && index_entries + next.index_entries < index_entries_max
            && next.end_offset - base <= i64::from(u32::MAX)
    }

    /// Appends what survives of `view`'s batches.
    fn copy_from(
        &mut self,
        view: &SealedView,
        rules: &KeepRules<'_>,
        throttle: &mut Throttle,
        outcome: &mut PassOutcome,
    ) -> Result<(), LogError> {
        let mtime_ms = modified_ms(&view.segment.log_path);
        self.newest_mtime_ms = self.newest_mtime_ms.max(mtime_ms);
        // Kafka's rule: tombstones survive while their segment is newer than the horizon.
        let rules = KeepRules {
            tombstones: TombstoneRule {
                segment_past_horizon: mtime_ms <= rules.tombstones.delete_horizon_ms,
                ..rules.tombstones
            },
            ..*rules
        };
        if let Some(last) = self.inputs.last() {
            assert_eq!(
                last.end_offset, view.segment.base_offset,
                "inputs are consecutive"
            );
        }
        self.changed |= !self.inputs.is_empty();
        self.inputs.push(view.clone());
        let mut batches = SegmentBatches::open(view)?;
        // Each step consumes one whole batch of the segment: bounded by its size.
        while let Some(batch) = batches.next_batch()? {
            outcome.bytes_read += batch.size_bytes() as u64;
            throttle.charge(batch.size_bytes() as u64)?;
            let filtered = filter_batch(&batch, &rules, &self.path)?;
            outcome.records_removed += filtered.records_removed;
            self.changed |= filtered.rewritten;
            if let Some(kept) = filtered.kept {
                assert!(
                    batch.base_offset() >= view.segment.base_offset,
                    "offsets never move"
                );
                // In pieces of at most the buffer (a larger write bypasses it): small
                // page-cache folios, as for appends (`WRITE_BYTES_MAX`).
                for piece in kept.chunks(WRITE_BYTES_MAX) {
                    self.out.write_all(piece)?;
                }
                self.written_bytes += kept.len() as u64;
                throttle.charge(kept.len() as u64)?;
            }
        }
        Ok(())
    }

    /// Flushes, fsyncs and dates the file, and drops its pages that lie outside the cached
    /// tail (`page_cache`; the file is written back by then); returns the inputs it replaces,
    /// its size and whether it differs from its single input.
    fn finish(self, log: &PartitionLog) -> Result<(Vec<Arc<Segment>>, u64, bool), LogError> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        if let Some(last) = self.inputs.last() {
            log.after_cleaned_write(&file, self.written_bytes, last.end_offset);
        }
        let newest_ms = u64::try_from(self.newest_mtime_ms).unwrap_or(0);
        // The new segment keeps the age of its newest input (retention and the tombstone
        // horizon read it), as Kafka does.
        file.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(newest_ms))?;
        let old = self.inputs.iter().map(|v| v.segment.clone()).collect();
        Ok((old, self.written_bytes, self.changed))
    }

    fn discard(&self) {
        let _ = fs::remove_file(&self.path);
    }
}
