//! Produce's checks of one partition's batch: its framing and header (Kafka's rules per
//! version), timestamps against the topic's bounds, keys on compacted topics, a max
//! timestamp to repair, and broker-side recompression, with records read (decompressed)
//! only within the broker-wide [`DecompressionBudget`].

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use runnel_protocol::batch::{
    peek_batch_frame, set_max_timestamp, BatchError, Compression, RecordBatch, TimestampType,
    BATCH_HEADER_BYTES, MAGIC_V2,
};
use runnel_protocol::builder::{BatchBuilder, BatchFields, BuildError};
use runnel_protocol::records::{records, Record, Records};
use std::time::Duration;

use crate::budget::{BudgetPermit, DecompressionBudget};
use crate::log::{CompressionType, MessageTimestampType, TopicConfig};

/// Upper bound on decompressed records when the produce path reads records (keys on a
/// compacted topic; a max timestamp to repair; a batch to recompress), lowered to the decompression budget when
/// that is smaller.
const RECORDS_SCAN_MAX_UNCOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// How long a records scan waits for decompression budget before its partition fails with
/// REQUEST_TIMED_OUT. The wait blocks the connection's thread, so it is kept shorter than a
/// decompression at the 64 MiB bound takes.
pub(super) const DECOMPRESSION_WAIT_MS_MAX: u64 = 100;

/// Framing a compressed records section may add beyond its per-byte worst case: codec
/// headers and trailers (gzip 18, an lz4 frame's 19, snappy-java's 16).
const COMPRESSED_OVERHEAD_BYTES_MAX: usize = 1024;

/// The smallest magic-2 record: length, attributes, timestamp delta, offset delta, key
/// length, value length and header count, one byte each.
const RECORD_BYTES_MIN: i64 = 7;

/// The batch timestamp meaning "none" (Kafka's `RecordBatch.NO_TIMESTAMP`).
pub(super) const NO_TIMESTAMP: i64 = -1;

/// The first Produce version that may carry zstd batches (KIP-110).
const PRODUCE_ZSTD_VERSION_MIN: i16 = 7;

/// A partition's records as their one batch, or Kafka's answer (its
/// `ProduceRequest.validateRecords` for v3+, framed as its batch iterator frames): no whole
/// batch, a magic other than 2, or a second whole batch is INVALID_RECORD; zstd before v7
/// is UNSUPPORTED_COMPRESSION_TYPE; a length or magic no batch can have is CORRUPT_MESSAGE.
/// Bytes after the batch that hold no whole batch are dropped, never stored: Kafka's
/// iterator (`ByteBufferLogInputStream.nextBatch`) stops at them and its log trims them
/// (`UnifiedLog.trimInvalidBytes`). Headers only, so the produce path's per-batch cost
/// stays a few reads.
pub(super) fn single_batch(
    mut records: Bytes,
    version: i16,
) -> Result<RecordBatch, (ResponseError, String)> {
    let invalid = |message: String| (ResponseError::InvalidRecord, message);
    let Some(first) = peek_batch_frame(&records).map_err(framing_error)? else {
        let message = format!("no whole record batch in {} bytes", records.len());
        return Err(invalid(message));
    };
    if first.magic != MAGIC_V2 {
        let message = format!(
            "Produce v{version} carries magic-2 batches only, not magic {}",
            first.magic
        );
        return Err(invalid(message));
    }
    let batch = RecordBatch::parse(records.split_to(first.size_bytes)).map_err(framing_error)?;
    if version < PRODUCE_ZSTD_VERSION_MIN && batch.compression() == Ok(Compression::Zstd) {
        let message = format!(
            "Produce v{version} may not carry zstd batches (v{PRODUCE_ZSTD_VERSION_MIN}+ may)"
        );
        return Err((ResponseError::UnsupportedCompressionType, message));
    }
    // What follows is framed as Kafka frames it: a whole second batch is refused, a length
    // or magic no batch has is corrupt, and anything shorter than a whole batch is left out
    // (`records` is dropped here; only `batch` is appended).
    match peek_batch_frame(&records) {
        Ok(None) => Ok(batch),
        Ok(Some(_)) => Err(invalid(format!(
            "Produce v{version} carries exactly one record batch per partition"
        ))),
        Err(e) => Err(framing_error(e)),
    }
}

/// Checks a partition's batch before it is appended, repairs a contradicted max
/// timestamp and rebuilds it in the topic's `compression.type` codec; `now_ms` is the
/// broker's clock for the topic's timestamp bounds.
pub(super) fn validate_batch(
    config: &TopicConfig,
    now_ms: i64,
    budget: &DecompressionBudget,
    mut batch: RecordBatch,
) -> Result<RecordBatch, (ResponseError, String)> {
    let max_message_bytes = usize::try_from(config.max_message_bytes).unwrap_or(0);
    check_header(&batch, max_message_bytes)?;
    if config.message_timestamp_type == MessageTimestampType::CreateTime {
        if max_timestamp_contradicted(&batch) {
            batch = restamp_max_timestamp(&batch, budget)?;
        }
        check_timestamp_bounds(&batch, config, now_ms)?;
    }
    if config.cleanup_policy.compact {
        check_keys(&batch, budget)?;
    }
    if let CompressionType::Codec(target) = config.compression_type {
        // `compression()` was checked by `check_header`.
        if batch.compression().ok() != Some(target) {
            batch = recompress(&batch, target, config, budget)?;
        }
    }
    Ok(batch)
}

fn framing_error(error: BatchError) -> (ResponseError, String) {
    (ResponseError::CorruptMessage, error.to_string())
}

/// One batch's size, CRC, offsets and count.
fn check_header(
    batch: &RecordBatch,
    max_message_bytes: usize,
) -> Result<(), (ResponseError, String)> {
    if batch.size_bytes() > max_message_bytes {
        let message = format!(
            "batch of {} bytes exceeds max.message.bytes {max_message_bytes}",
            batch.size_bytes()
        );
        return Err((ResponseError::MessageTooLarge, message));
    }
    batch.verify_crc().map_err(framing_error)?;
    batch.compression().map_err(framing_error)?;
    let invalid = |message: String| Err((ResponseError::InvalidRecord, message));
    if batch.is_control() {
        // Transaction markers are the broker's to write.
        return invalid("clients may not write control batches".to_owned());
    }
    if batch.base_offset() != 0 {
        return invalid(format!(
            "batch base offset {} is not 0",
            batch.base_offset()
        ));
    }
    // -1 means "no timestamp"; anything lower is no instant at all (Kafka's producer refuses
    // to send one) and would poison time-based lookups and retention.
    let (base_ms, max_ms) = (batch.base_timestamp(), batch.max_timestamp());
    if base_ms < NO_TIMESTAMP || max_ms < NO_TIMESTAMP {
        let message = format!("batch timestamps {base_ms}..{max_ms} are negative");
        return Err((ResponseError::InvalidTimestamp, message));
    }
    let count = i64::from(batch.record_count());
    if count <= 0 {
        return invalid(format!("batch record count {count} is not positive"));
    }
    if i64::from(batch.last_offset_delta()) + 1 != count {
        return invalid(format!(
            "last offset delta {} does not match record count {count}",
            batch.last_offset_delta()
        ));
    }
    // An uncompressed batch cannot hold more records than its bytes allow: without this a
    // 61-byte batch claiming i32::MAX records would move the log end by 2^31. (Compressed
    // counts are checked only where the records are decompressed anyway.)
    let uncompressed = matches!(batch.compression(), Ok(Compression::None));
    let records_bytes = batch.size_bytes().saturating_sub(BATCH_HEADER_BYTES) as i64;
    if uncompressed && count.saturating_mul(RECORD_BYTES_MIN) > records_bytes {
        let message = format!("{count} records cannot fit in {records_bytes} bytes");
        return Err((ResponseError::CorruptMessage, message));
    }
    Ok(())
}

/// `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` (KIP-937): a
/// CreateTime batch's timestamps must lie within [now - before, now + after].
///
/// Only the header is read: the base timestamp (the first record's) and the max timestamp.
/// Kafka checks every record; a record whose timestamp is below its batch's first one (a
/// negative delta, which Kafka producers never write) escapes the "before" bound here, in
/// exchange for no decompression on the produce path.
fn check_timestamp_bounds(
    batch: &RecordBatch,
    config: &TopicConfig,
    now_ms: i64,
) -> Result<(), (ResponseError, String)> {
    let earliest_ms = now_ms.saturating_sub(config.message_timestamp_before_max_ms);
    let latest_ms = now_ms.saturating_add(config.message_timestamp_after_max_ms);
    let timestamps = [batch.base_timestamp(), batch.max_timestamp()];
    let out_of_range = timestamps
        .into_iter()
        .find(|&ms| ms != NO_TIMESTAMP && !(earliest_ms..=latest_ms).contains(&ms));
    if let Some(out_ms) = out_of_range {
        let message = format!(
            "timestamp {out_ms} is out of range [{earliest_ms}, {latest_ms}] \
             (message.timestamp.before.max.ms {}, message.timestamp.after.max.ms {})",
            config.message_timestamp_before_max_ms, config.message_timestamp_after_max_ms
        );
        return Err((ResponseError::InvalidTimestamp, message));
    }
    Ok(())
}

/// Compacted topics keep the latest record per key, so every record needs one. A
/// compressed batch is decompressed only with a budget permit for its output bound; when
/// none is free within [`DECOMPRESSION_WAIT_MS_MAX`] the partition fails with
/// REQUEST_TIMED_OUT: a timeout is what happened, and Kafka clients retry it (a
/// TimeoutException is retriable) without the metadata refresh KAFKA_STORAGE_ERROR would
/// trigger by claiming the log directory failed.
fn check_keys(
    batch: &RecordBatch,
    budget: &DecompressionBudget,
) -> Result<(), (ResponseError, String)> {
    scan_records(batch, budget, |record| {
        if record.key.is_none() {
            let message = "compacted topic: every record needs a key".to_owned();
            return Err((ResponseError::InvalidRecord, message));
        }
        Ok(())
    })
}

/// A CreateTime batch whose header max timestamp is below its base timestamp: the max is
/// wrong, since the base is the first record's. sarama before 1.23 never sets the max
/// (it sends -1), which left such batches out of the time index: ListOffsets by timestamp
/// skipped them and time retention misjudged their segments.
fn max_timestamp_contradicted(batch: &RecordBatch) -> bool {
    batch.base_timestamp() != NO_TIMESTAMP && batch.max_timestamp() < batch.base_timestamp()
}

/// The batch with its max timestamp set from its records (and its CRC again), as Kafka's
/// broker sets it on every append. Only contradicted batches come here, so a well-formed
/// batch is still never decompressed on the produce path.
fn restamp_max_timestamp(
    batch: &RecordBatch,
    budget: &DecompressionBudget,
) -> Result<RecordBatch, (ResponseError, String)> {
    let mut max_ms = batch.base_timestamp();
    scan_records(batch, budget, |record| {
        max_ms = max_ms.max(record.timestamp);
        Ok(())
    })?;
    let mut bytes = BytesMut::from(batch.as_bytes().as_ref());
    set_max_timestamp(&mut bytes, max_ms);
    let restamped = RecordBatch::parse(bytes.freeze()).map_err(framing_error)?;
    debug_assert_eq!(restamped.max_timestamp(), max_ms);
    debug_assert!(
        restamped.verify_crc().is_ok(),
        "CRC rewritten over the new max"
    );
    Ok(restamped)
}

/// `batch` rebuilt in `target` (Kafka's broker-side `compression.type`): the same records,
/// offsets, timestamps, producer id, epoch and sequence, new attributes and CRC. The result
/// is held to `max.message.bytes` as Kafka holds it (MESSAGE_TOO_LARGE beyond).
///
/// The whole rebuild stays within the decompression budget: the decompressed records
/// under the scan's permit, and the rebuilt batch (its records section, and for a codec
/// the compressed output and the finished batch) under a second one, sized once the
/// records section's size is known and taken before any of it is allocated. A rebuild the
/// budget can never hold fails at once, one that finds it spent waits like a scan; both
/// answer REQUEST_TIMED_OUT as a scan without budget does.
fn recompress(
    batch: &RecordBatch,
    target: Compression,
    config: &TopicConfig,
    budget: &DecompressionBudget,
) -> Result<RecordBatch, (ResponseError, String)> {
    let fields = BatchFields::of(batch, target);
    let max_message_bytes = usize::try_from(config.max_message_bytes).unwrap_or(0);
    let (mut decode_permit, records) = decode_records(batch, budget)?;
    if let Some(permit) = decode_permit.as_mut() {
        // Only the decompressed section is held from here on: the rest of the output
        // bound goes back (a budget below the bound could otherwise never hold the rebuild).
        permit.shrink_to(u64::try_from(records.section_bytes()).unwrap_or(u64::MAX));
    }
    // The rebuilt records are the decoded ones re-encoded with the same offset and (with
    // the original base timestamp) timestamp deltas: no more bytes than the section.
    let section_bytes = records.section_bytes().saturating_add(BATCH_HEADER_BYTES);
    let held_bytes = decode_permit.as_ref().map_or(0, BudgetPermit::bytes);
    let _rebuild_permit = acquire(budget, held_bytes, rebuild_bytes(section_bytes, target))?;
    let mut builder = BatchBuilder::new(fields, max_message_bytes)
        .with_max_uncompressed_bytes(section_bytes)
        .with_capacity_bytes(section_bytes)
        .with_last_offset_delta_min(batch.last_offset_delta());
    // LogAppendTime records all read as the max timestamp: their deltas from the first
    // (0) are no longer than the originals either.
    if batch.timestamp_type() == TimestampType::CreateTime {
        builder = builder.with_base_timestamp(batch.base_timestamp());
    }
    let level = match target {
        Compression::Gzip => Some(config.compression_gzip_level),
        Compression::Lz4 => Some(config.compression_lz4_level),
        Compression::Zstd => Some(config.compression_zstd_level),
        Compression::None | Compression::Snappy => None,
    };
    if let Some(level) = level {
        builder = builder.with_compression_level(level);
    }
    for record in records {
        let record = record.map_err(|e| (ResponseError::CorruptMessage, e.to_string()))?;
        builder.push_record(&record).map_err(build_error)?;
    }
    let rebuilt = builder.finish().map_err(build_error)?;
    let rebuilt = RecordBatch::parse(rebuilt).map_err(framing_error)?;
    debug_assert!(u64::try_from(rebuilt.size_bytes())
        .is_ok_and(|b| b <= rebuild_bytes(section_bytes, target)));
    debug_assert_eq!(rebuilt.record_count(), batch.record_count());
    debug_assert_eq!(rebuilt.last_offset_delta(), batch.last_offset_delta());
    Ok(rebuilt)
}

fn build_error(error: BuildError) -> (ResponseError, String) {
    let code = match error {
        BuildError::TooLarge { .. } => ResponseError::MessageTooLarge,
        BuildError::Compress(_) => ResponseError::UnknownServerError,
        _ => ResponseError::InvalidRecord,
    };
    (code, format!("recompressing for compression.type: {error}"))
}

/// Budget bytes a rebuild of a `section_bytes` records section (header included) into
/// `target` holds at its peak: the section, and for a codec the compressed output and the
/// finished batch it is copied into, each at most the codecs' worst case on incompressible
/// input (snappy's: a sixth more, plus per-block framing).
pub(super) fn rebuild_bytes(section_bytes: usize, target: Compression) -> u64 {
    let output_bytes = match target {
        Compression::None => 0,
        _ => section_bytes
            .saturating_add(section_bytes / 6)
            .saturating_add(section_bytes / 512)
            .saturating_add(COMPRESSED_OVERHEAD_BYTES_MAX)
            .saturating_mul(2),
    };
    u64::try_from(section_bytes.saturating_add(output_bytes)).unwrap_or(u64::MAX)
}

/// A permit for `bytes` more while `held_bytes` are held: at once REQUEST_TIMED_OUT when
/// the two together exceed the budget's capacity (no wait could grant them), else as
/// [`DecompressionBudget::acquire`] within [`DECOMPRESSION_WAIT_MS_MAX`].
fn acquire(
    budget: &DecompressionBudget,
    held_bytes: u64,
    bytes: u64,
) -> Result<BudgetPermit<'_>, (ResponseError, String)> {
    let capacity_bytes = budget.capacity_bytes();
    if held_bytes.saturating_add(bytes) > capacity_bytes {
        let message = format!(
            "{bytes} bytes of decompression budget beside {held_bytes} held are more than \
             decompression-bytes-max {capacity_bytes}"
        );
        return Err((ResponseError::RequestTimedOut, message));
    }
    let wait = Duration::from_millis(DECOMPRESSION_WAIT_MS_MAX);
    budget
        .acquire(bytes, wait)
        .ok_or_else(|| budget_spent(budget))
}

/// The answer when no decompression budget came free in time (see [`check_keys`]).
fn budget_spent(budget: &DecompressionBudget) -> (ResponseError, String) {
    let message = format!(
        "no decompression budget free within {DECOMPRESSION_WAIT_MS_MAX} ms \
         (decompression-bytes-max {}); retry",
        budget.capacity_bytes()
    );
    (ResponseError::RequestTimedOut, message)
}

/// The most decompressed record bytes one scan may produce.
fn records_bound_bytes(budget: &DecompressionBudget) -> usize {
    let capacity_bytes = usize::try_from(budget.capacity_bytes()).unwrap_or(usize::MAX);
    RECORDS_SCAN_MAX_UNCOMPRESSED_BYTES.min(capacity_bytes)
}

/// Calls `visit` on every record of `batch`, decompressing under a budget permit (see
/// [`check_keys`] for why a missing permit is REQUEST_TIMED_OUT).
fn scan_records(
    batch: &RecordBatch,
    budget: &DecompressionBudget,
    mut visit: impl FnMut(&Record) -> Result<(), (ResponseError, String)>,
) -> Result<(), (ResponseError, String)> {
    let (_permit, iter) = decode_records(batch, budget)?;
    for record in iter {
        let record = record.map_err(|e| (ResponseError::CorruptMessage, e.to_string()))?;
        visit(&record)?;
    }
    Ok(())
}

/// The records of `batch`, decompressed under a budget permit for the scan's output bound
/// when it is compressed (uncompressed records are read in place: nothing to budget); the
/// permit is held as long as the records are.
fn decode_records<'b>(
    batch: &RecordBatch,
    budget: &'b DecompressionBudget,
) -> Result<(Option<BudgetPermit<'b>>, Records), (ResponseError, String)> {
    let bound_bytes = records_bound_bytes(budget);
    let compressed = !matches!(batch.compression(), Ok(Compression::None));
    let permit = if compressed {
        Some(acquire(budget, 0, bound_bytes as u64)?)
    } else {
        None
    };
    let iter =
        records(batch, bound_bytes).map_err(|e| (ResponseError::CorruptMessage, e.to_string()))?;
    Ok((permit, iter))
}
