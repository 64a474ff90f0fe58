//! What a cleaning pass keeps of each batch (`clean_pass` streams the batches and writes what
//! this decides): the rules (latest offset per key, tombstone horizon, producers' last
//! batches) and the batch rebuilt from the records that survive, checked before it is written.

use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::NO_TIMESTAMP;
use runnel_protocol::batch::{
    build_raw_batch, RawBatchFields, RecordBatch, ATTR_TIMESTAMP_TYPE, ATTR_TRANSACTIONAL,
};
use runnel_protocol::builder::{BatchBuilder, BatchFields};
use runnel_protocol::records::{records, Record};

use super::last_batches::LastBatches;
use super::offset_map::{key_hash, OffsetMap};
use super::LogError;

/// Decompression bound for one batch's records.
const RECORDS_UNCOMPRESSED_BYTES_MAX: usize = 64 << 20;

pub(super) fn corrupt(path: &Path, detail: impl ToString) -> LogError {
    LogError::Corruption {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Every record of `batch`, decoded (bounded by the batch's declared count).
pub(super) fn decode(batch: &RecordBatch, path: &Path) -> Result<Vec<Record>, LogError> {
    let decoded = records(batch, RECORDS_UNCOMPRESSED_BYTES_MAX).map_err(|e| corrupt(path, e))?;
    decoded.map(|r| r.map_err(|e| corrupt(path, e))).collect()
}

/// Control batches (transaction markers) are copied as they are and never index keys: their
/// keys name a marker type, not a record key.
///
/// Transactional data batches are compacted like any other: their keys enter the offset map
/// and their records go once a later record of the key supersedes them, and a batch losing
/// records is rebuilt with its transactional bit (one losing none stays byte for byte).
/// Kept verbatim, a record could outlive the tombstone of its key — the tombstone goes after
/// `delete.retention.ms`, and the key would come back with its old value. Runnel has no
/// transactions (no markers, no aborts), so to readers these records are plain data, and a
/// later record of the key supersedes one whether its transaction committed or aborted.
pub(super) fn is_kept_verbatim(batch: &RecordBatch) -> bool {
    batch.is_control()
}

/// When a tombstone (null value) may go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TombstoneRule {
    /// The clean section's newest segment age minus `delete.retention.ms` (Kafka's horizon).
    pub delete_horizon_ms: i64,
    /// Where the clean section ended before this pass: only tombstones below it were
    /// already cleaned once (so every older record of their key is gone).
    pub first_dirty: i64,
    /// The segment being rewritten is at least as old as the horizon.
    pub segment_past_horizon: bool,
}

impl TombstoneRule {
    fn may_drop(&self, offset: i64) -> bool {
        self.segment_past_horizon && offset < self.first_dirty
    }
}

/// What decides which records and batches a rewrite keeps.
#[derive(Clone, Copy)]
pub(crate) struct KeepRules<'a> {
    /// Key → offset of its latest record in the dirty section.
    pub latest: &'a OffsetMap,
    /// Batches kept (if only as a header) whatever happens to their records.
    pub last_batches: &'a LastBatches,
    pub tombstones: TombstoneRule,
}

/// What to write for one batch.
pub(super) struct FilteredBatch {
    /// The batch itself, a rebuilt copy, an empty header, or nothing.
    pub(super) kept: Option<Bytes>,
    pub(super) records_removed: u64,
    /// `kept` differs from the batch read.
    pub(super) rewritten: bool,
}

impl FilteredBatch {
    fn unchanged(batch: &RecordBatch) -> FilteredBatch {
        FilteredBatch {
            kept: Some(batch.as_bytes().clone()),
            records_removed: 0,
            rewritten: false,
        }
    }
}

/// What to write for `batch`: itself, a rebuilt copy without the removed records, an empty
/// header (every record went but the batch is its producer's last, see `last_batches`), or
/// nothing.
pub(super) fn filter_batch(
    batch: &RecordBatch,
    rules: &KeepRules<'_>,
    path: &Path,
) -> Result<FilteredBatch, LogError> {
    if is_kept_verbatim(batch) {
        return Ok(FilteredBatch::unchanged(batch));
    }
    let decoded = decode(batch, path)?;
    let keep = |record: &Record| {
        // As Kafka's cleaner (`shouldRetainRecord`): a keyless record is invalid in a
        // compacted log and goes. Produce refuses them here, so they come only from before
        // the topic was switched from delete to compact.
        let Some(key) = &record.key else {
            return false;
        };
        let superseded = rules
            .latest
            .get(key_hash(key))
            .is_some_and(|latest| record.offset < latest);
        !superseded && (record.value.is_some() || !rules.tombstones.may_drop(record.offset))
    };
    let kept: Vec<&Record> = decoded.iter().filter(|r| keep(r)).collect();
    let records_removed = (decoded.len() - kept.len()) as u64;
    if kept.is_empty() {
        // Also an empty batch an earlier pass kept: it goes once it is no longer the last.
        let last = rules
            .last_batches
            .is_last(batch.producer_id(), batch.last_offset());
        return Ok(match (last, batch.record_count() == 0) {
            (true, true) => FilteredBatch::unchanged(batch),
            (true, false) => FilteredBatch {
                kept: Some(empty_batch(batch, path)?),
                records_removed,
                rewritten: true,
            },
            (false, _) => FilteredBatch {
                kept: None,
                records_removed,
                rewritten: true,
            },
        });
    }
    if records_removed == 0 {
        return Ok(FilteredBatch::unchanged(batch));
    }
    Ok(FilteredBatch {
        kept: Some(rebuild(batch, &kept, path)?),
        records_removed,
        rewritten: true,
    })
}

/// `batch` with only the `kept` records. The header keeps the batch's last offset delta
/// (`with_last_offset_delta_min`), as Kafka's cleaner does (`overrideLastOffset`): for an idempotent producer, base sequence +
/// last offset delta is the batch's last sequence, which a restart reads back from the
/// header (`producers::tail_scan`); a smaller delta would make it expect an old sequence
/// and refuse the producer's next batch. Readers step over the offsets past the last record
/// as over any compaction gap.
fn rebuild(batch: &RecordBatch, kept: &[&Record], path: &Path) -> Result<Bytes, LogError> {
    let fields = BatchFields::of(batch, batch.compression().map_err(|e| corrupt(path, e))?);
    if kept
        .iter()
        .any(|record| record.offset > batch.last_offset())
    {
        // A record whose offset delta lies beyond its batch's header.
        return Err(corrupt(
            path,
            format!("record offsets beyond batch {}", batch.base_offset()),
        ));
    }
    let mut builder = BatchBuilder::new(fields, RECORDS_UNCOMPRESSED_BYTES_MAX)
        .with_max_uncompressed_bytes(RECORDS_UNCOMPRESSED_BYTES_MAX)
        .with_last_offset_delta_min(batch.last_offset_delta());
    for record in kept {
        builder
            .push_record(record)
            .map_err(|e| corrupt(path, format!("rebuilding batch: {e}")))?;
    }
    let built = builder
        .finish()
        .map_err(|e| corrupt(path, format!("rebuilding batch: {e}")))?;
    let record_count = i32::try_from(kept.len()).unwrap_or(i32::MAX);
    checked(built, batch, record_count, path)
}

/// A header-only copy of `batch` (record count 0) with its offsets, producer fields,
/// timestamp type and transactional bit, as Kafka's `writeEmptyHeader`. No records, so no compression; and no
/// timestamp ([`NO_TIMESTAMP`]): the segment's max timestamp and time index must point at a
/// record that exists (ListOffsets -3 and timestamp lookups read the batch they point at).
fn empty_batch(batch: &RecordBatch, path: &Path) -> Result<Bytes, LogError> {
    let empty = build_raw_batch(&RawBatchFields {
        base_offset: batch.base_offset(),
        partition_leader_epoch: batch.partition_leader_epoch(),
        attributes: batch.attributes() & (ATTR_TIMESTAMP_TYPE | ATTR_TRANSACTIONAL),
        last_offset_delta: batch.last_offset_delta(),
        base_timestamp: NO_TIMESTAMP,
        max_timestamp: NO_TIMESTAMP,
        producer_id: batch.producer_id(),
        producer_epoch: batch.producer_epoch(),
        base_sequence: batch.base_sequence(),
        record_count: 0,
        records: &[],
    });
    checked(empty, batch, 0, path)
}

/// Reads `written` back as a batch before it goes to disk: CRC-valid, `record_count`
/// records, and the same offsets and producer identity as `original`.
fn checked(
    written: Bytes,
    original: &RecordBatch,
    record_count: i32,
    path: &Path,
) -> Result<Bytes, LogError> {
    let check = RecordBatch::parse(written).map_err(|e| corrupt(path, e))?;
    check.verify_crc().map_err(|e| corrupt(path, e))?;
    assert_eq!(check.record_count(), record_count, "the records kept");
    assert_eq!(
        (check.base_offset(), check.last_offset()),
        (original.base_offset(), original.last_offset()),
        "a rewritten batch keeps its offsets"
    );
    assert_eq!(
        (
            check.producer_id(),
            check.producer_epoch(),
            check.base_sequence()
        ),
        (
            original.producer_id(),
            original.producer_epoch(),
            original.base_sequence()
        ),
        "a rewritten batch keeps its producer's sequence"
    );
    Ok(check.as_bytes().clone())
}
