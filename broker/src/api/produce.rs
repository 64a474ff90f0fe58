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
//! decompressed, within the broker-wide [`crate::budget::DecompressionBudget`] (those checks:
//! `produce_batch.rs`). With `compression.type`
//! `producer` (the default) batches are stored byte for byte as sent.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::batch::RecordBatch;

use super::create_topics::Refusal;
use super::errors::{log_error_code, log_error_i16};
use super::{BrokerContext, Completion};
use crate::append_pool::{PARALLEL_APPEND_BYTES_MIN, PARALLEL_APPEND_PARTITION_BYTES_MIN};
use crate::log::PartitionLog;
use crate::producers::{AppendOutcome, ProduceError, SequenceError};

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

/// A partition's answer before anything is known: no offsets.
fn unanswered(index: i32) -> PartitionProduceResponse {
    let mut partition = PartitionProduceResponse::default();
    partition.index = index;
    partition.base_offset = -1;
    partition.log_append_time_ms = -1;
    partition.log_start_offset = -1;
    partition
}

#[path = "produce_batch.rs"]
mod batch;
use batch::{single_batch, validate_batch};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "produce_tests.rs"]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "produce_test_fixture.rs"]
mod test_fixture;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "produce_budget_tests.rs"]
mod budget_tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "produce_request_tests.rs"]
mod request_tests;
