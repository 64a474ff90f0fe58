//! Produce: validate each partition's batch, append it, answer per partition.
//!
//! A partition's records are exactly one batch of magic 2 (Kafka's rule from Produce v3 on,
//! the oldest version Runnel serves), checked before it is appended; a bad partition fails
//! only itself. A large request's partitions are
//! checked and appended side by side on the [`crate::append_pool`]; the request is done
//! before the connection applies its next one. acks=1 answers once the data is in the
//! page cache, acks=-1 once it is fsynced (the completion waits on group commit; the
//! pages' writeback starts as soon as they are appended), acks=0
//! applies and answers nothing. Idempotent batches (producer id ≥ 0) are checked against
//! their producer's sequence by [`crate::producers`] while the append is ordered; a retried
//! batch is answered with its original offset and not stored again.
//!
//! Validation reads batch headers only, except on compacted topics, where every record must
//! have a key, and on topics whose `compression.type` names a codec, where a batch in
//! another codec is rebuilt in that one (Kafka's broker-side compression): those batches are
//! decompressed, within the broker-wide [`DecompressionBudget`]. With `compression.type`
//! `producer` (the default) batches are stored byte for byte as sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::batch::{
    peek_batch_frame, set_max_timestamp, BatchError, Compression, RecordBatch, TimestampType,
    BATCH_HEADER_BYTES, MAGIC_V2,
};
use runnel_protocol::builder::{BatchBuilder, BatchFields, BuildError};
use runnel_protocol::records::{records, Record, Records};

use super::create_topics::Refusal;
use super::errors::{log_error_code, log_error_i16};
use super::{BrokerContext, Completion};
use crate::append_pool::{PARALLEL_APPEND_BYTES_MIN, PARALLEL_APPEND_PARTITION_BYTES_MIN};
use crate::budget::{BudgetPermit, DecompressionBudget};
use crate::log::{CompressionType, MessageTimestampType, PartitionLog, TopicConfig};
use crate::producers::{AppendOutcome, ProduceError, SequenceError};

/// Upper bound on decompressed records when the produce path reads records (keys on a
/// compacted topic; a max timestamp to repair; a batch to recompress), lowered to the decompression budget when
/// that is smaller.
const RECORDS_SCAN_MAX_UNCOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// How long a records scan waits for decompression budget before its partition fails with
/// REQUEST_TIMED_OUT. The wait blocks the connection's thread, so it is kept shorter than a
/// decompression at the 64 MiB bound takes.
const DECOMPRESSION_WAIT_MS_MAX: u64 = 100;

/// Framing a compressed records section may add beyond its per-byte worst case: codec
/// headers and trailers (gzip 18, an lz4 frame's 19, snappy-java's 16).
const COMPRESSED_OVERHEAD_BYTES_MAX: usize = 1024;

/// The smallest magic-2 record: length, attributes, timestamp delta, offset delta, key
/// length, value length and header count, one byte each.
const RECORD_BYTES_MIN: i64 = 7;

/// The batch timestamp meaning "none" (Kafka's `RecordBatch.NO_TIMESTAMP`).
const NO_TIMESTAMP: i64 = -1;

/// The first Produce version that may carry zstd batches (KIP-110).
const PRODUCE_ZSTD_VERSION_MIN: i16 = 7;

/// Every partition's in-sync replicas: this broker alone.
const IN_SYNC_REPLICAS: i32 = 1;

/// Floor on an acks=-1 produce's wait for fsync.
const PRODUCE_TIMEOUT_MS_MIN: u64 = 1_000;

/// A partition appended with acks=-1 that must be fsynced before the answer.
struct DurableWait {
    topic_index: usize,
    partition_index: usize,
    log: Arc<PartitionLog>,
    end_offset: i64,
}

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: ProduceRequest) -> Completion {
    let acks = request.acks;
    // Kafka clients send 30 s; a non-positive timeout still gets one fsync's chance.
    let timeout_ms = u64::try_from(request.timeout_ms)
        .unwrap_or(0)
        .max(PRODUCE_TIMEOUT_MS_MIN);
    let version = header.request_api_version;
    let (mut response, items) = by_partition(request);
    if !matches!(acks, -1..=1) {
        for item in items {
            if let Some(topic) = response.responses.get_mut(item.topic_index) {
                let partition = refuse_acks(ctx, &item.topic, item.entries, acks, version);
                topic.partition_responses.push(partition);
            }
        }
        return Completion::ready(ResponseKind::Produce(response));
    }
    let parallel = worth_parallel(&items);
    let results = ctx.append_pool.map(items, parallel, |item| {
        let answer = produce_partition(ctx, &item.topic, item.entries, acks, version);
        (item.topic_index, answer)
    });
    let mut waits = Vec::new();
    for (topic_index, (partition_response, appended)) in results {
        let Some(topic_response) = response.responses.get_mut(topic_index) else {
            continue; // every result's topic was pushed above
        };
        let partitions = &mut topic_response.partition_responses;
        // acks=all, and any append that leaves `flush.messages` records unflushed (Kafka
        // flushes those before answering too), waits for its fsync.
        let must_flush = appended.filter(|(log, end_offset)| {
            acks == -1
                || end_offset.saturating_sub(log.durable_offset()) >= log.config().flush_messages
        });
        if let Some((log, end_offset)) = must_flush {
            // The fsync will write these pages anyway: started now, their writeback runs
            // while the answer is queued and the fsync thread picks the partition up, not
            // after (acks=all, 8 partitions, alternating: 887 against 847 MiB/s, 4 of 4).
            // Only a head start, so a failure is left to the fsync to report.
            if let Err(e) = log.start_writeback() {
                tracing::debug!(topic = log.topic(), partition = log.partition(), error = %e, "starting writeback failed");
            }
            waits.push(DurableWait {
                topic_index,
                partition_index: partitions.len(),
                log,
                end_offset,
            });
        }
        partitions.push(partition_response);
    }
    let failed = || {
        let mut partitions = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses);
        partitions.any(|p| p.error_code != 0)
    };
    match acks {
        0 if failed() => Completion::CloseConnection,
        0 => {
            // Nobody waits for an acks=0 answer: only start the fsync flush.messages asks for.
            for wait in waits {
                wait.log.request_flush();
            }
            Completion::NoResponse
        }
        _ if !waits.is_empty() => Completion::pending(wait_durable(response, waits, timeout_ms)),
        _ => Completion::ready(ResponseKind::Produce(response)),
    }
}

/// One partition of a request, with everything the request asks of it.
struct Item {
    /// Its topic's entry in the response.
    topic_index: usize,
    topic: Arc<str>,
    entries: Entries,
}

/// A partition's entries in a request: the last one, and the records of the earlier ones
/// (when the partition is named more than once), in request order.
struct Entries {
    data: PartitionProduceData,
    earlier: Vec<Bytes>,
}

/// The request as Kafka reads it: a map keyed by topic-partition (`KafkaApis.
/// handleProduceRequest` builds `authorizedRequestInfo`, a `mutable.Map`, and answers from
/// a map too). A partition named twice is appended once, with its last entry that passes
/// the format checks, and answered once, where it was first named (see
/// [`produce_partition`]); a topic named in several entries is answered in one (Kafka's
/// `ProduceResponse` groups its answers by topic). Returns the response with one entry per
/// topic, no partitions yet, and the partitions' entries in request order.
fn by_partition(request: ProduceRequest) -> (ProduceResponse, Vec<Item>) {
    let mut response = ProduceResponse::default();
    let mut items: Vec<Item> = Vec::new();
    let mut topics: HashMap<Arc<str>, usize> = HashMap::with_capacity(request.topic_data.len());
    // (topic, partition) → its entry in `items`.
    let mut placed: HashMap<(Arc<str>, i32), usize> = HashMap::new();
    for topic in request.topic_data {
        let name: Arc<str> = Arc::from(topic.name.0.as_str());
        let topic_index = *topics.entry(Arc::clone(&name)).or_insert_with(|| {
            let mut topic_response = TopicProduceResponse::default();
            topic_response.name = topic.name;
            topic_response.topic_id = topic.topic_id;
            response.responses.push(topic_response);
            response.responses.len() - 1
        });
        for data in topic.partition_data {
            let key = (Arc::clone(&name), data.index);
            match placed.get(&key).and_then(|&at| items.get_mut(at)) {
                Some(slot) => {
                    // Kept to be checked too; bounded by the request's size.
                    let entries = &mut slot.entries;
                    let replaced = std::mem::replace(&mut entries.data, data);
                    entries.earlier.push(replaced.records.unwrap_or_default());
                }
                None => {
                    placed.insert(key, items.len());
                    items.push(Item {
                        topic_index,
                        topic: Arc::clone(&name),
                        entries: Entries {
                            data,
                            earlier: Vec::new(),
                        },
                    });
                }
            }
        }
    }
    debug_assert_eq!(placed.len(), items.len());
    (response, items)
}

/// Whether a request's partitions go to the append pool: at least two, together at least
/// [`PARALLEL_APPEND_BYTES_MIN`] of records and on average at least
/// [`PARALLEL_APPEND_PARTITION_BYTES_MIN`] each ([`by_partition`] left each partition
/// once, so no two of them append to one log).
fn worth_parallel(items: &[Item]) -> bool {
    let records_bytes: usize = items
        .iter()
        .map(|item| {
            let Entries { data, earlier } = &item.entries;
            let earlier_bytes: usize = earlier.iter().map(Bytes::len).sum();
            data.records.as_ref().map_or(0, Bytes::len) + earlier_bytes
        })
        .sum();
    items.len() >= 2
        && records_bytes >= PARALLEL_APPEND_BYTES_MIN
        && records_bytes / items.len() >= PARALLEL_APPEND_PARTITION_BYTES_MIN
}

/// Waits for every acks=-1 partition's fsync, at most the request's `timeout_ms`; a failed
/// or late fsync fails that partition only (the data may still become durable later, as in
/// Kafka).
async fn wait_durable(
    mut response: ProduceResponse,
    waits: Vec<DurableWait>,
    timeout_ms: u64,
) -> ResponseKind {
    let pending = waits.iter().map(|w| w.log.wait_durable(w.end_offset));
    let timeout = std::time::Duration::from_millis(timeout_ms);
    let results = match tokio::time::timeout(timeout, futures::future::join_all(pending)).await {
        Ok(results) => results
            .into_iter()
            .map(|r| r.map_err(|e| log_error_i16(&e)))
            .collect(),
        Err(_elapsed) => vec![Err(ResponseError::RequestTimedOut.code()); waits.len()],
    };
    for (wait, result) in waits.iter().zip(results) {
        let Err(error_code) = result else { continue };
        let slot = response
            .responses
            .get_mut(wait.topic_index)
            .and_then(|t| t.partition_responses.get_mut(wait.partition_index));
        // A partition already answered with an error (an earlier entry's) keeps it.
        if let Some(partition) = slot.filter(|p| p.error_code == 0) {
            partition.error_code = error_code;
            partition.base_offset = -1;
        }
    }
    ResponseKind::Produce(response)
}

/// Validates and appends one partition's records; returns the log and end offset to wait
/// on when the append succeeded.
///
/// A partition named more than once is checked as Kafka's `KafkaApis.handleProduceRequest`
/// does: every entry's format ([`single_batch`], its `ProduceRequest.validateRecords`), the
/// last entry that passes is appended, and a failed entry's error (the last one's) is the
/// answer even so (its `invalidRequestResponses` is merged over the append results).
fn produce_partition(
    ctx: &BrokerContext,
    topic: &str,
    entries: Entries,
    acks: i16,
    version: i16,
) -> (PartitionProduceResponse, Option<(Arc<PartitionLog>, i64)>) {
    let index = entries.data.index;
    let fail = |error: ResponseError, message: String| failed(index, version, error, message);
    let log = match ctx.logs.partition(topic, index) {
        Ok(log) => log,
        Err(e) => return fail(log_error_code(&e), e.to_string()),
    };
    let (batch, format_error) = check_formats(entries, version);
    let (batch, format_error) = match (batch, format_error) {
        (Some(batch), format_error) => (batch, format_error),
        (None, format_error) => {
            // Every partition has an entry, so a batch or an error was found.
            let (error, message) = format_error
                .unwrap_or_else(|| (ResponseError::InvalidRecord, "no records".to_owned()));
            return fail(error, message);
        }
    };
    // Kafka refuses an internal topic only as it appends (`ReplicaManager.appendToLocalLog`),
    // after the partition and format checks above; a failed entry's error still wins.
    if let Err(refusal) = Refusal::unless_client_may("produce to", topic) {
        let (error, message) =
            format_error.unwrap_or((ResponseError::InvalidTopicException, refusal.message));
        return fail(error, message);
    }
    let (response, appended) = append_partition(ctx, &log, topic, batch, acks, version);
    match format_error {
        // The append still happened (and an acks=all answer still waits for it), as in Kafka.
        Some((error, message)) => (fail(error, message).0, appended),
        None => (response, appended),
    }
}

/// Every entry's format checked ([`single_batch`]): the last entry that passes, and the
/// last one's error that fails.
fn check_formats(
    entries: Entries,
    version: i16,
) -> (Option<RecordBatch>, Option<(ResponseError, String)>) {
    let Entries { data, earlier } = entries;
    let mut batch = None;
    let mut format_error = None;
    for records in earlier
        .into_iter()
        .chain([data.records.unwrap_or_default()])
    {
        match single_batch(records, version) {
            Ok(passed) => batch = Some(passed),
            Err(error) => format_error = Some(error),
        }
    }
    (batch, format_error)
}

/// A partition's answer to a produce whose acks are none of -1, 0, 1; nothing is appended.
/// Kafka (`KafkaApis.handleProduceRequest`) first answers a partition its metadata does not
/// know UNKNOWN_TOPIC_OR_PARTITION and one whose format check fails with that error; only
/// the partitions it hands to `ReplicaManager.appendRecords` get INVALID_REQUIRED_ACKS
/// (`sendInvalidRequiredAcksResponse`), before that method's internal-topic and storage
/// checks, so neither applies here.
fn refuse_acks(
    ctx: &BrokerContext,
    topic: &str,
    entries: Entries,
    acks: i16,
    version: i16,
) -> PartitionProduceResponse {
    let index = entries.data.index;
    let known = ctx
        .logs
        .topic(topic)
        .is_some_and(|info| (0..info.partitions).contains(&index));
    let (error, message) = if !known {
        let message = format!("unknown partition {topic}-{index}");
        (ResponseError::UnknownTopicOrPartition, message)
    } else {
        match check_formats(entries, version) {
            (_, Some(format_error)) => format_error,
            (_, None) => {
                let message = format!("acks {acks} is none of -1, 0, 1");
                (ResponseError::InvalidRequiredAcks, message)
            }
        }
    };
    failed(index, version, error, message).0
}

/// A partition's answer with `error` (and its message, from v8 on), and nothing to wait on.
fn failed(
    index: i32,
    version: i16,
    error: ResponseError,
    message: String,
) -> (PartitionProduceResponse, Option<(Arc<PartitionLog>, i64)>) {
    let mut response = unanswered(index);
    response.error_code = error.code();
    if version >= 8 {
        response.error_message = Some(StrBytes::from_string(message));
    }
    (response, None)
}

/// Checks and appends a partition's batch (its format already checked).
fn append_partition(
    ctx: &BrokerContext,
    log: &Arc<PartitionLog>,
    topic: &str,
    batch: RecordBatch,
    acks: i16,
    version: i16,
) -> (PartitionProduceResponse, Option<(Arc<PartitionLog>, i64)>) {
    let mut response = unanswered(log.partition());
    let fail =
        |error: ResponseError, message: String| failed(log.partition(), version, error, message);
    let config = log.config();
    // Kafka checks the in-sync replicas before the records; here the ISR is this broker.
    if acks == -1 && config.min_insync_replicas > IN_SYNC_REPLICAS {
        let message = format!(
            "{IN_SYNC_REPLICAS} in-sync replica (this broker) is fewer than min.insync.replicas \
             {} of {topic}-{}",
            config.min_insync_replicas,
            log.partition()
        );
        return fail(ResponseError::NotEnoughReplicas, message);
    }
    let now_ms = crate::log::now_ms();
    let batch = match validate_batch(&config, now_ms, &ctx.decompression_budget, batch) {
        Ok(batch) => batch,
        Err((error, message)) => return fail(error, message),
    };
    match ctx.producers.append(log, std::slice::from_ref(&batch)) {
        Ok(AppendOutcome::Appended(info)) => {
            let bytes = batch.size_bytes();
            let records = info
                .last_offset
                .saturating_sub(info.base_offset)
                .saturating_add(1);
            log.traffic
                .add_in(bytes as u64, u64::try_from(records).unwrap_or(0));
            response.base_offset = info.base_offset;
            response.log_append_time_ms = info.log_append_time_ms;
            response.log_start_offset = info.log_start_offset;
            let end_offset = info.last_offset.saturating_add(1);
            (response, Some((Arc::clone(log), end_offset)))
        }
        Ok(AppendOutcome::Duplicate(original)) => {
            // Kafka answers a retried batch as the original append; an acks=-1 retry still
            // waits until the original is durable.
            response.base_offset = original.base_offset;
            response.log_start_offset = log.log_start_offset();
            let end_offset = original.last_offset.saturating_add(1);
            (response, Some((Arc::clone(log), end_offset)))
        }
        Err(ProduceError::Log(e)) => fail(log_error_code(&e), e.to_string()),
        Err(ProduceError::Sequence(e)) => fail(sequence_error_code(&e), e.to_string()),
    }
}

/// The Kafka error for a refused idempotent batch. A stale epoch is INVALID_PRODUCER_EPOCH,
/// as Kafka (2.7+) answers Produce, which clients treat as abortable rather than fatal.
fn sequence_error_code(error: &SequenceError) -> ResponseError {
    match error {
        SequenceError::MissingSequence { .. } => ResponseError::InvalidRecord,
        SequenceError::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch,
        SequenceError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
    }
}

/// A partition's records as their one batch, or Kafka's answer (its
/// `ProduceRequest.validateRecords` for v3+, framed as its batch iterator frames): no whole
/// batch, a magic other than 2, or a second whole batch is INVALID_RECORD; zstd before v7
/// is UNSUPPORTED_COMPRESSION_TYPE; a length or magic no batch can have is CORRUPT_MESSAGE.
/// Bytes after the batch that hold no whole batch are dropped, never stored: Kafka's
/// iterator (`ByteBufferLogInputStream.nextBatch`) stops at them and its log trims them
/// (`UnifiedLog.trimInvalidBytes`). Headers only, so the produce path's per-batch cost
/// stays a few reads.
fn single_batch(mut records: Bytes, version: i16) -> Result<RecordBatch, (ResponseError, String)> {
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
pub fn validate_batch(
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
fn rebuild_bytes(section_bytes: usize, target: Compression) -> u64 {
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

/// A partition's answer before anything is known: no offsets.
fn unanswered(index: i32) -> PartitionProduceResponse {
    let mut partition = PartitionProduceResponse::default();
    partition.index = index;
    partition.base_offset = -1;
    partition.log_append_time_ms = -1;
    partition.log_start_offset = -1;
    partition
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "produce_tests.rs"]
mod tests;
