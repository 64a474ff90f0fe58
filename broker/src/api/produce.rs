//! Produce: validate each partition's batches, append them, answer per partition.
//!
//! Every batch of a partition is checked before any is appended, so a partition's append is
//! all or nothing; a bad partition fails only itself. acks=1 answers once the data is in the
//! page cache, acks=-1 once it is fsynced (the completion waits on group commit), acks=0
//! applies and answers nothing. Idempotent batches (producer id ≥ 0) are checked against
//! their producer's sequence by [`crate::producers`] while the append is ordered; a retried
//! batch is answered with its original offset and not stored again.

use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::batch::{
    BatchError, BatchSplitter, Compression, RecordBatch, BATCH_HEADER_BYTES,
};
use runnel_protocol::records::records;

use super::errors::{log_error_code, log_error_i16};
use super::{BrokerContext, Completion};
use crate::log::{PartitionLog, TopicConfig};
use crate::producers::{AppendOutcome, ProduceError, SequenceError};

/// Upper bound on decompressed records when checking keys on a compacted topic.
const KEY_CHECK_MAX_UNCOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// The smallest magic-2 record: length, attributes, timestamp delta, offset delta, key
/// length, value length and header count, one byte each.
const RECORD_BYTES_MIN: i64 = 7;

/// The batch timestamp meaning "none" (Kafka's `RecordBatch.NO_TIMESTAMP`).
const NO_TIMESTAMP: i64 = -1;

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
    if !matches!(acks, -1..=1) {
        let response = answer_all(request, ResponseError::InvalidRequiredAcks.code());
        return Completion::Ready(ResponseKind::Produce(response));
    }
    let mut response = ProduceResponse::default();
    let mut waits = Vec::new();
    for (topic_index, topic) in request.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic.name;
        topic_response.topic_id = topic.topic_id;
        for (partition_index, data) in topic.partition_data.into_iter().enumerate() {
            let (partition_response, appended) = produce_partition(ctx, &name, data, version);
            if let (Some((log, end_offset)), -1) = (appended, acks) {
                waits.push(DurableWait {
                    topic_index,
                    partition_index,
                    log,
                    end_offset,
                });
            }
            topic_response.partition_responses.push(partition_response);
        }
        response.responses.push(topic_response);
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
        0 => Completion::NoResponse,
        -1 if !waits.is_empty() => {
            Completion::Pending(wait_durable(response, waits, timeout_ms).boxed())
        }
        _ => Completion::Ready(ResponseKind::Produce(response)),
    }
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
        if let Some(partition) = slot {
            partition.error_code = error_code;
            partition.base_offset = -1;
        }
    }
    ResponseKind::Produce(response)
}

/// Validates and appends one partition's records; returns the log and end offset to wait
/// on when the append succeeded.
fn produce_partition(
    ctx: &BrokerContext,
    topic: &str,
    data: PartitionProduceData,
    version: i16,
) -> (PartitionProduceResponse, Option<(Arc<PartitionLog>, i64)>) {
    let mut response = PartitionProduceResponse::default();
    response.index = data.index;
    response.base_offset = -1;
    response.log_append_time_ms = -1;
    response.log_start_offset = -1;
    let fail = |mut response: PartitionProduceResponse, error: ResponseError, message: String| {
        response.error_code = error.code();
        if version >= 8 {
            response.error_message = Some(StrBytes::from_string(message));
        }
        (response, None)
    };
    let log = match ctx.logs.partition(topic, data.index) {
        Ok(log) => log,
        Err(e) => return fail(response, log_error_code(&e), e.to_string()),
    };
    let batches = match validate_batches(&log.config(), data.records.unwrap_or_default()) {
        Ok(batches) => batches,
        Err((error, message)) => return fail(response, error, message),
    };
    match ctx.producers.append(&log, &batches) {
        Ok(AppendOutcome::Appended(info)) => {
            let bytes: usize = batches.iter().map(RecordBatch::size_bytes).sum();
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
            (response, Some((log, end_offset)))
        }
        Ok(AppendOutcome::Duplicate(original)) => {
            // Kafka answers a retried batch as the original append; an acks=-1 retry still
            // waits until the original is durable.
            response.base_offset = original.base_offset;
            response.log_start_offset = log.log_start_offset();
            let end_offset = original.last_offset.saturating_add(1);
            (response, Some((log, end_offset)))
        }
        Err(ProduceError::Log(e)) => fail(response, log_error_code(&e), e.to_string()),
        Err(ProduceError::Sequence(e)) => fail(response, sequence_error_code(&e), e.to_string()),
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

/// Splits `records` into batches and checks every one before anything is appended.
pub fn validate_batches(
    config: &TopicConfig,
    records: Bytes,
) -> Result<Vec<RecordBatch>, (ResponseError, String)> {
    if records.is_empty() {
        return Err((ResponseError::InvalidRecord, "no record batches".to_owned()));
    }
    let max_message_bytes = usize::try_from(config.max_message_bytes).unwrap_or(0);
    let mut batches = Vec::new();
    for batch in BatchSplitter::new(records) {
        let batch = batch.map_err(framing_error)?;
        validate_batch(&batch, max_message_bytes)?;
        if config.cleanup_policy.compact {
            check_keys(&batch)?;
        }
        batches.push(batch);
    }
    Ok(batches)
}

fn framing_error(error: BatchError) -> (ResponseError, String) {
    (ResponseError::CorruptMessage, error.to_string())
}

/// One batch's size, CRC, offsets and count.
fn validate_batch(
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

/// Compacted topics keep the latest record per key, so every record needs one.
fn check_keys(batch: &RecordBatch) -> Result<(), (ResponseError, String)> {
    let iter = records(batch, KEY_CHECK_MAX_UNCOMPRESSED_BYTES)
        .map_err(|e| (ResponseError::CorruptMessage, e.to_string()))?;
    for record in iter {
        let record = record.map_err(|e| (ResponseError::CorruptMessage, e.to_string()))?;
        if record.key.is_none() {
            let message = "compacted topic: every record needs a key".to_owned();
            return Err((ResponseError::InvalidRecord, message));
        }
    }
    Ok(())
}

/// The same error for every partition (request-level failures such as bad acks).
fn answer_all(request: ProduceRequest, error_code: i16) -> ProduceResponse {
    let mut response = ProduceResponse::default();
    for topic in request.topic_data {
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic.name;
        topic_response.topic_id = topic.topic_id;
        for data in topic.partition_data {
            let mut partition = PartitionProduceResponse::default();
            partition.index = data.index;
            partition.error_code = error_code;
            partition.base_offset = -1;
            partition.log_append_time_ms = -1;
            partition.log_start_offset = -1;
            topic_response.partition_responses.push(partition);
        }
        response.responses.push(topic_response);
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use runnel_protocol::batch::{build_raw_batch, RawBatchFields};

    use super::*;

    fn config() -> TopicConfig {
        TopicConfig {
            max_message_bytes: 200,
            ..TopicConfig::default()
        }
    }

    fn raw(fields: RawBatchFields<'_>) -> Bytes {
        build_raw_batch(&fields)
    }

    fn code(result: Result<Vec<RecordBatch>, (ResponseError, String)>) -> Option<ResponseError> {
        result.err().map(|(error, _)| error)
    }

    #[test]
    fn accepts_well_formed_batches() {
        let one = raw(RawBatchFields {
            records: b"abcdefg",
            ..RawBatchFields::default()
        });
        let two = raw(RawBatchFields {
            last_offset_delta: 1,
            record_count: 2,
            records: &[0; 14],
            ..RawBatchFields::default()
        });
        let blob = Bytes::from([one.to_vec(), two.to_vec()].concat());
        assert_eq!(validate_batches(&config(), blob).unwrap().len(), 2);
    }

    #[test]
    fn maps_each_defect_to_its_kafka_error() {
        let c = config();
        assert_eq!(
            code(validate_batches(&c, Bytes::new())),
            Some(ResponseError::InvalidRecord)
        );
        let big = vec![0u8; 300];
        let too_big = raw(RawBatchFields {
            records: &big,
            ..RawBatchFields::default()
        });
        assert_eq!(
            code(validate_batches(&c, too_big)),
            Some(ResponseError::MessageTooLarge)
        );
        let mut corrupt = raw(RawBatchFields {
            records: b"abc",
            ..RawBatchFields::default()
        })
        .to_vec();
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(
            code(validate_batches(&c, Bytes::from(corrupt))),
            Some(ResponseError::CorruptMessage)
        );
        let based = raw(RawBatchFields {
            base_offset: 3,
            ..RawBatchFields::default()
        });
        assert_eq!(
            code(validate_batches(&c, based)),
            Some(ResponseError::InvalidRecord)
        );
        let miscounted = raw(RawBatchFields {
            last_offset_delta: 4,
            ..RawBatchFields::default()
        });
        assert_eq!(
            code(validate_batches(&c, miscounted)),
            Some(ResponseError::InvalidRecord)
        );
        let empty = raw(RawBatchFields {
            record_count: 0,
            last_offset_delta: -1,
            ..RawBatchFields::default()
        });
        assert_eq!(
            code(validate_batches(&c, empty)),
            Some(ResponseError::InvalidRecord)
        );
        let codec = raw(RawBatchFields {
            attributes: 6,
            ..RawBatchFields::default()
        });
        assert_eq!(
            code(validate_batches(&c, codec)),
            Some(ResponseError::CorruptMessage)
        );
        let overcounted = raw(RawBatchFields {
            last_offset_delta: 1,
            record_count: 2,
            records: &[0; 13],
            ..RawBatchFields::default()
        });
        assert_eq!(
            code(validate_batches(&c, overcounted)),
            Some(ResponseError::CorruptMessage)
        );
        let before_epoch = raw(RawBatchFields {
            base_timestamp: -2,
            max_timestamp: 5,
            records: &[0; 7],
            ..RawBatchFields::default()
        });
        assert_eq!(
            code(validate_batches(&c, before_epoch)),
            Some(ResponseError::InvalidTimestamp)
        );
        let garbage = Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(
            code(validate_batches(&c, garbage)),
            Some(ResponseError::CorruptMessage)
        );
    }
}
