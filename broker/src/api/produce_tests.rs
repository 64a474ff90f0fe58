//! Unit tests of produce validation: each batch defect's Kafka error, the timestamp bounds
//! (KIP-937) and the decompression budget of key checks.

use std::time::{Duration, Instant};

use runnel_protocol::batch::{build_raw_batch, Compression, RawBatchFields, BATCH_HEADER_BYTES};
use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};
use runnel_protocol::records::records;

use super::batch::{rebuild_bytes, DECOMPRESSION_WAIT_MS_MAX, NO_TIMESTAMP};
use super::*;
use crate::api::Answer;
use crate::budget::DecompressionBudget;
use crate::log::{CleanupPolicy, CompressionType, MessageTimestampType, TopicConfig};

fn config() -> TopicConfig {
    TopicConfig {
        max_message_bytes: 200,
        ..TopicConfig::default()
    }
}

fn raw(fields: RawBatchFields<'_>) -> Bytes {
    build_raw_batch(&fields)
}

/// The broker clock the tests validate against.
const NOW_MS: i64 = 1_700_000_000_000;

fn budget() -> DecompressionBudget {
    DecompressionBudget::new(crate::config::defaults::DECOMPRESSION_BYTES_MAX as u64)
}

/// A Produce v9 partition's records through both checks, as the handler runs them.
fn validate_with(
    config: &TopicConfig,
    budget: &DecompressionBudget,
    records: Bytes,
) -> Result<RecordBatch, (ResponseError, String)> {
    single_batch(records, 9).and_then(|batch| validate_batch(config, NOW_MS, budget, batch))
}

fn validate(config: &TopicConfig, records: Bytes) -> Result<RecordBatch, (ResponseError, String)> {
    validate_with(config, &budget(), records)
}

fn code(result: Result<RecordBatch, (ResponseError, String)>) -> Option<ResponseError> {
    result.err().map(|(error, _)| error)
}

#[test]
fn accepts_one_well_formed_batch_a_partition() {
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
    assert_eq!(validate(&config(), one.clone()).unwrap().record_count(), 1);
    assert_eq!(validate(&config(), two.clone()).unwrap().record_count(), 2);
    // Kafka's rule from Produce v3 on: exactly one batch a partition.
    let blob = Bytes::from([one.to_vec(), two.to_vec()].concat());
    assert_eq!(
        code(validate(&config(), blob)),
        Some(ResponseError::InvalidRecord)
    );
}

#[test]
fn zstd_needs_produce_v7_checked_on_the_one_batch() {
    let zstd = compressed_keyed(1);
    let unsupported = ResponseError::UnsupportedCompressionType;
    assert_eq!(code(single_batch(zstd.clone(), 6)), Some(unsupported));
    assert!(single_batch(zstd.clone(), 7).is_ok());
    // Kafka checks the first batch's codec before it looks for a second.
    let twice = Bytes::from([zstd.to_vec(), zstd.to_vec()].concat());
    assert_eq!(code(single_batch(twice.clone(), 6)), Some(unsupported));
    assert_eq!(
        code(single_batch(twice, 7)),
        Some(ResponseError::InvalidRecord)
    );
}

#[test]
fn maps_each_defect_to_its_kafka_error() {
    let big = vec![0u8; 300];
    let mut corrupt = raw(RawBatchFields {
        records: b"abc",
        ..RawBatchFields::default()
    })
    .to_vec();
    *corrupt.last_mut().unwrap() ^= 1;
    let defaults = RawBatchFields::default;
    let cases = [
        ("empty request", Bytes::new(), ResponseError::InvalidRecord),
        (
            "above max.message.bytes",
            raw(RawBatchFields {
                records: &big,
                ..defaults()
            }),
            ResponseError::MessageTooLarge,
        ),
        (
            "CRC mismatch",
            Bytes::from(corrupt),
            ResponseError::CorruptMessage,
        ),
        (
            "base offset not 0",
            raw(RawBatchFields {
                base_offset: 3,
                ..defaults()
            }),
            ResponseError::InvalidRecord,
        ),
        (
            "last offset delta vs count",
            raw(RawBatchFields {
                last_offset_delta: 4,
                ..defaults()
            }),
            ResponseError::InvalidRecord,
        ),
        (
            "no records",
            raw(RawBatchFields {
                record_count: 0,
                last_offset_delta: -1,
                ..defaults()
            }),
            ResponseError::InvalidRecord,
        ),
        (
            "control batch",
            raw(RawBatchFields {
                attributes: 0x20,
                ..defaults()
            }),
            ResponseError::InvalidRecord,
        ),
        (
            "unknown codec",
            raw(RawBatchFields {
                attributes: 6,
                ..defaults()
            }),
            ResponseError::CorruptMessage,
        ),
        (
            "more records than bytes",
            raw(RawBatchFields {
                last_offset_delta: 1,
                record_count: 2,
                records: &[0; 13],
                ..defaults()
            }),
            ResponseError::CorruptMessage,
        ),
        (
            "timestamp below -1",
            raw(RawBatchFields {
                base_timestamp: -2,
                max_timestamp: 5,
                records: &[0; 7],
                ..defaults()
            }),
            ResponseError::InvalidTimestamp,
        ),
        (
            "no whole batch (a length, then nothing)",
            Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]),
            ResponseError::InvalidRecord,
        ),
        (
            "length below any batch's",
            Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0, 0, 2]),
            ResponseError::CorruptMessage,
        ),
        ("magic 0", with_magic(0), ResponseError::InvalidRecord),
        ("magic 1", with_magic(1), ResponseError::InvalidRecord),
        ("magic 3", with_magic(3), ResponseError::CorruptMessage),
        (
            "a cut batch",
            with_magic(2).slice(..BATCH_HEADER_BYTES + 1),
            ResponseError::InvalidRecord,
        ),
        (
            "a second batch",
            Bytes::from([with_magic(2).to_vec(), with_magic(1).to_vec()].concat()),
            ResponseError::InvalidRecord,
        ),
        (
            "a length below any batch's after the batch",
            Bytes::from(
                [
                    with_magic(2).to_vec(),
                    vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13],
                ]
                .concat(),
            ),
            ResponseError::CorruptMessage,
        ),
        (
            "a magic no batch has after the batch",
            Bytes::from([with_magic(2).to_vec(), with_magic(3).slice(..17).to_vec()].concat()),
            ResponseError::CorruptMessage,
        ),
    ];
    for (defect, records, error) in cases {
        assert_eq!(code(validate(&config(), records)), Some(error), "{defect}");
    }
}

/// Kafka's batch iterator stops at bytes after the batch that hold no whole batch (fewer
/// than a length and offset, fewer than the magic, or a batch cut short) and its log trims
/// them: the batch alone is accepted, the bytes after it are not part of it.
#[test]
fn bytes_after_the_batch_that_hold_no_whole_batch_are_left_out() {
    let batch = with_magic(2);
    let second = raw(RawBatchFields {
        records: b"hijklmn",
        ..RawBatchFields::default()
    });
    let tails: [(&str, Vec<u8>); 4] = [
        ("a few zero bytes", vec![0; 5]),
        ("an offset and length, no magic", second[..12].to_vec()),
        ("a header up to the magic", second[..17].to_vec()),
        (
            "a second batch cut short",
            second[..second.len() - 1].to_vec(),
        ),
    ];
    for (tail, bytes) in tails {
        let records = Bytes::from([batch.to_vec(), bytes].concat());
        let accepted = validate(&config(), records).unwrap_or_else(|e| panic!("{tail}: {e:?}"));
        assert_eq!(accepted.as_bytes(), &batch, "{tail}");
    }
}

/// A well-formed batch claiming `magic`.
fn with_magic(magic: u8) -> Bytes {
    let mut batch = raw(RawBatchFields {
        records: b"abcdefg",
        ..RawBatchFields::default()
    })
    .to_vec();
    batch[16] = magic;
    Bytes::from(batch)
}

// Timestamp bounds and the decompression budget.

const HOUR_MS: i64 = 3_600_000;

fn stamped(base_timestamp: i64, max_timestamp: i64) -> Bytes {
    build_raw_batch(&RawBatchFields {
        base_timestamp,
        max_timestamp,
        records: &[0; 7],
        ..RawBatchFields::default()
    })
}

fn bounded(before_ms: i64, after_ms: i64) -> TopicConfig {
    TopicConfig {
        message_timestamp_before_max_ms: before_ms,
        message_timestamp_after_max_ms: after_ms,
        ..TopicConfig::default()
    }
}

fn check(config: &TopicConfig, records: Bytes) -> Result<(), ResponseError> {
    let budget = DecompressionBudget::new(1 << 20);
    validate_with(config, &budget, records)
        .map(|_| ())
        .map_err(|(error, _)| error)
}

#[test]
fn create_time_batches_outside_the_bounds_are_invalid_timestamp() {
    let hour = bounded(HOUR_MS, HOUR_MS);
    let accepted = [
        (NOW_MS, NOW_MS),
        (NOW_MS - HOUR_MS, NOW_MS + HOUR_MS),
        (NO_TIMESTAMP, NO_TIMESTAMP),
    ];
    for (base, max) in accepted {
        assert_eq!(check(&hour, stamped(base, max)), Ok(()), "{base}..{max}");
    }
    let refused = [
        (NOW_MS - HOUR_MS - 1, NOW_MS),
        (NOW_MS, NOW_MS + HOUR_MS + 1),
        (0, 0),
        (NOW_MS, i64::MAX),
    ];
    for (base, max) in refused {
        let result = check(&hour, stamped(base, max));
        assert_eq!(
            result,
            Err(ResponseError::InvalidTimestamp),
            "{base}..{max}"
        );
    }
    // Each bound alone; 0 means "exactly the broker's clock".
    assert!(check(&bounded(HOUR_MS, i64::MAX), stamped(NOW_MS, i64::MAX)).is_ok());
    assert!(check(&bounded(i64::MAX, 0), stamped(0, NOW_MS)).is_ok());
    assert!(check(&bounded(i64::MAX, 0), stamped(0, NOW_MS + 1)).is_err());
    // The defaults (Kafka 3.6's) bound nothing.
    assert!(check(&TopicConfig::default(), stamped(0, i64::MAX)).is_ok());
}

#[test]
fn log_append_time_topics_ignore_the_bounds() {
    let config = TopicConfig {
        message_timestamp_type: MessageTimestampType::LogAppendTime,
        ..bounded(0, 0)
    };
    assert!(check(&config, stamped(0, 5)).is_ok());
}

/// A zstd batch of `records` keyed records.
fn compressed_keyed(records: usize) -> Bytes {
    let fields = BatchFields {
        compression: Compression::Zstd,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    for _ in 0..records {
        let record = NewRecord {
            timestamp: NOW_MS,
            key: Some(b"k"),
            value: Some(&[7; 100]),
            headers: &[],
        };
        builder.push(&record).unwrap();
    }
    builder.finish().unwrap()
}

#[test]
fn key_checks_without_decompression_budget_fail_with_request_timed_out() {
    let compacted = TopicConfig {
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
            compact_first: false,
        },
        ..TopicConfig::default()
    };
    let budget = DecompressionBudget::new(1 << 20);
    let batch = compressed_keyed(10);
    let validate =
        |records: Bytes| validate_with(&compacted, &budget, records).map_err(|(error, _)| error);
    assert!(validate(batch.clone()).is_ok());
    assert_eq!(budget.available_bytes(), 1 << 20, "permit given back");
    // Another connection holds the whole budget: this one gives up after a short wait.
    let held = budget.acquire(1 << 20, Duration::ZERO).unwrap();
    let started = Instant::now();
    assert_eq!(
        validate(batch.clone()).err(),
        Some(ResponseError::RequestTimedOut)
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(DECOMPRESSION_WAIT_MS_MAX));
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    // Uncompressed batches are read in place and need no budget.
    let plain = {
        let mut builder = BatchBuilder::new(BatchFields::default(), 1 << 20);
        let record = NewRecord {
            timestamp: NOW_MS,
            key: Some(b"k"),
            value: None,
            headers: &[],
        };
        builder.push(&record).unwrap();
        builder.finish().unwrap()
    };
    assert!(validate(plain).is_ok());
    drop(held);
    assert!(validate(batch).is_ok());
    // A budget below the 64 MiB per-batch bound lowers the bound: a batch decompressing
    // past it is refused as corrupt rather than waiting forever for a permit.
    let tiny = DecompressionBudget::new(512);
    let result = validate_with(&compacted, &tiny, compressed_keyed(10));
    assert_eq!(
        result.err().map(|(e, _)| e),
        Some(ResponseError::CorruptMessage)
    );
}

/// A topic whose `compression.type` rebuilds batches in gzip.
fn gzip_topic() -> TopicConfig {
    TopicConfig {
        compression_type: CompressionType::Codec(Compression::Gzip),
        max_message_bytes: 1 << 20,
        ..TopicConfig::default()
    }
}

/// Recompression holds the rebuilt batch (its records section, the compressed output and
/// the finished batch) within the decompression budget as well as the decompressed
/// records: a rebuild the budget cannot hold now is REQUEST_TIMED_OUT after the usual
/// wait, one it can never hold at once, as a key check without budget is; nothing is
/// allocated for it. Uncompressed batches, read in place, were rebuilt outside the budget.
#[test]
fn recompression_is_charged_to_the_decompression_budget() {
    let plain = batch_of(10, 1000);
    let need_bytes = rebuild_bytes(plain.len(), Compression::Gzip);
    let timed_out = Some(ResponseError::RequestTimedOut);
    let budget = DecompressionBudget::new(need_bytes);
    let rebuilt = validate_with(&gzip_topic(), &budget, plain.clone()).unwrap();
    assert_eq!(rebuilt.compression(), Ok(Compression::Gzip));
    assert_eq!(budget.available_bytes(), need_bytes, "permits given back");
    // Another connection holds a byte of it: this one waits, then gives up.
    let held = budget.acquire(1, Duration::ZERO).unwrap();
    let started = Instant::now();
    assert_eq!(
        code(validate_with(&gzip_topic(), &budget, plain.clone())),
        timed_out
    );
    assert!(started.elapsed() >= Duration::from_millis(DECOMPRESSION_WAIT_MS_MAX));
    drop(held);
    // A budget that can never hold the rebuild refuses it without waiting.
    let small = DecompressionBudget::new(need_bytes - 1);
    let started = Instant::now();
    assert_eq!(code(validate_with(&gzip_topic(), &small, plain)), timed_out);
    assert!(started.elapsed() < Duration::from_millis(DECOMPRESSION_WAIT_MS_MAX));
    assert_eq!(small.available_bytes(), need_bytes - 1);
    // A compressed batch holds its decompressed records beside the rebuild (not the whole
    // 64 MiB output bound, which is given back once the records' size is known).
    let zstd = compressed_keyed(10);
    let records_bytes = records(&RecordBatch::parse(zstd.clone()).unwrap(), 1 << 20)
        .unwrap()
        .section_bytes();
    let need_bytes =
        rebuild_bytes(records_bytes + BATCH_HEADER_BYTES, Compression::Gzip) + records_bytes as u64;
    let exact = DecompressionBudget::new(need_bytes);
    assert!(validate_with(&gzip_topic(), &exact, zstd.clone()).is_ok());
    let short = DecompressionBudget::new(need_bytes - 1);
    assert_eq!(code(validate_with(&gzip_topic(), &short, zstd)), timed_out);
}

/// A produce request of `(topic, partition, records)` entries, one topic entry each.
fn produce_request(acks: i16, entries: Vec<(&str, i32, Bytes)>) -> ProduceRequest {
    use kafka_protocol::messages::produce_request::TopicProduceData;
    use kafka_protocol::messages::TopicName;
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 30_000;
    for (topic, partition, records) in entries {
        let mut data = PartitionProduceData::default();
        data.index = partition;
        data.records = Some(records);
        let mut topic_data = TopicProduceData::default();
        topic_data.name = TopicName(StrBytes::from_string(topic.to_owned()));
        topic_data.partition_data.push(data);
        request.topic_data.push(topic_data);
    }
    request
}

/// One uncompressed batch of `records` records, `value_bytes` each.
fn batch_of(records: i32, value_bytes: usize) -> Bytes {
    let value = vec![b'v'; value_bytes];
    let mut builder = BatchBuilder::new(BatchFields::default(), 1 << 20);
    for _ in 0..records {
        let record = NewRecord {
            timestamp: NOW_MS,
            key: None,
            value: Some(&value),
            headers: &[],
        };
        builder.push(&record).unwrap();
    }
    builder.finish().unwrap()
}

fn produced(completion: Completion) -> Vec<(String, i32, i16, i64)> {
    let Completion::Ready(Answer {
        body: ResponseKind::Produce(response),
        ..
    }) = completion
    else {
        panic!("an acks=1 produce answers at once");
    };
    response
        .responses
        .iter()
        .flat_map(|t| {
            t.partition_responses
                .iter()
                .map(|p| (t.name.0.to_string(), p.index, p.error_code, p.base_offset))
        })
        .collect()
}

#[test]
fn a_large_request_is_appended_across_partitions_in_parallel_and_answered_per_topic() {
    let fixture = crate::api::create_topics::fixture::broker();
    crate::api::create_topics::fixture::topic(&fixture, "p", 4);
    crate::api::create_topics::fixture::topic(&fixture, "q", 1);
    let big = || batch_of(64, 1000); // 64 KiB a partition: the request is worth the pool
    let entries = vec![
        ("p", 3, big()),
        ("q", 0, big()),
        ("p", 0, big()),
        ("missing", 0, big()),
        ("p", 1, Bytes::from_static(b"not a batch")),
        ("p", 2, big()),
    ];
    let header = crate::api::create_topics::fixture::header(9);
    let twice = |entries: Vec<(&str, i32, Bytes)>| {
        let request = produce_request(1, entries);
        produced(handle(&fixture.ctx, &header, request))
    };
    let first = twice(entries.clone());
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let invalid = ResponseError::InvalidRecord.code();
    // One answer entry per topic (Kafka's `ProduceResponse` groups by topic), topics and
    // their partitions in the order first named.
    assert_eq!(
        first,
        vec![
            ("p".to_owned(), 3, 0, 0),
            ("p".to_owned(), 0, 0, 0),
            ("p".to_owned(), 1, invalid, -1),
            ("p".to_owned(), 2, 0, 0),
            ("q".to_owned(), 0, 0, 0),
            ("missing".to_owned(), 0, unknown, -1),
        ]
    );
    let second = twice(entries);
    let offsets: Vec<i64> = second.iter().map(|(_, _, _, offset)| *offset).collect();
    assert_eq!(offsets, vec![64, 64, -1, 64, 64, -1]);
}

#[test]
fn the_coordinators_internal_topic_refuses_client_records() {
    let fixture = crate::api::create_topics::fixture::broker();
    let offsets = crate::groups::OFFSETS_TOPIC;
    crate::api::create_topics::fixture::topic(&fixture, offsets, 1);
    let header = crate::api::create_topics::fixture::header(9);
    let request = produce_request(1, vec![(offsets, 0, batch_of(1, 10))]);
    let answers = produced(handle(&fixture.ctx, &header, request));
    let invalid_topic = ResponseError::InvalidTopicException.code();
    assert_eq!(answers, vec![(offsets.to_owned(), 0, invalid_topic, -1)]);
    let log = fixture.ctx.logs.partition(offsets, 0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
}

/// Kafka refuses an internal topic only when it appends (`ReplicaManager.appendToLocalLog`),
/// after `KafkaApis.handleProduceRequest` has answered partitions its metadata does not know
/// and batches `ProduceRequest.validateRecords` refuses: those answers win, on an internal
/// topic as on any other, whether or not the topic exists yet; a partition named twice keeps
/// its failed entry's error.
#[test]
fn the_internal_topic_check_comes_after_the_partition_and_format_checks() {
    let fixture = crate::api::create_topics::fixture::broker();
    let offsets = crate::groups::OFFSETS_TOPIC;
    let header = crate::api::create_topics::fixture::header(9);
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let invalid_record = ResponseError::InvalidRecord.code();
    let invalid_topic = ResponseError::InvalidTopicException.code();
    let not_yet = produce_request(1, vec![(offsets, 0, batch_of(1, 10))]);
    let answers = produced(handle(&fixture.ctx, &header, not_yet));
    assert_eq!(answers, vec![(offsets.to_owned(), 0, unknown, -1)]);
    crate::api::create_topics::fixture::topic(&fixture, offsets, 2);
    let garbage = || Bytes::from_static(b"not a batch");
    let entries = vec![
        (offsets, 0, garbage()),
        (offsets, 1, batch_of(1, 10)),
        (offsets, 2, batch_of(1, 10)),
        (offsets, 1, garbage()),
    ];
    let answers = produced(handle(&fixture.ctx, &header, produce_request(1, entries)));
    assert_eq!(
        answers,
        vec![
            (offsets.to_owned(), 0, invalid_record, -1),
            (offsets.to_owned(), 1, invalid_record, -1),
            (offsets.to_owned(), 2, unknown, -1),
        ]
    );
    let zstd = produce_request(1, vec![(offsets, 0, compressed_keyed(1))]);
    let header_v6 = crate::api::create_topics::fixture::header(6);
    let answers = produced(handle(&fixture.ctx, &header_v6, zstd));
    let unsupported = ResponseError::UnsupportedCompressionType.code();
    assert_eq!(answers, vec![(offsets.to_owned(), 0, unsupported, -1)]);
    let valid = produce_request(1, vec![(offsets, 1, batch_of(1, 10))]);
    let answers = produced(handle(&fixture.ctx, &header, valid));
    assert_eq!(answers, vec![(offsets.to_owned(), 1, invalid_topic, -1)]);
    for partition in 0..2 {
        let log = fixture.ctx.logs.partition(offsets, partition).unwrap();
        assert_eq!(log.log_end_offset(), 0, "nothing appended to {partition}");
    }
}

/// Kafka reads a Produce into a map keyed by topic-partition: a partition named twice is
/// appended once, with its last entry, and answered once (here where it was first named);
/// a topic named in several entries gets one answer entry. Bad acks are answered the same
/// way.
#[test]
fn a_partition_named_twice_is_appended_once_as_last_asked() {
    let fixture = crate::api::create_topics::fixture::broker();
    crate::api::create_topics::fixture::topic(&fixture, "d", 2);
    let entries = vec![
        ("d", 0, batch_of(100, 1000)),
        ("d", 1, batch_of(100, 1000)),
        ("d", 0, batch_of(3, 1000)),
    ];
    let header = crate::api::create_topics::fixture::header(9);
    let request = produce_request(1, entries.clone());
    let completion = handle(&fixture.ctx, &header, request);
    let Completion::Ready(Answer {
        body: ResponseKind::Produce(response),
        ..
    }) = &completion
    else {
        panic!("an acks=1 produce answers at once");
    };
    assert_eq!(response.responses.len(), 1, "one entry for topic d");
    assert_eq!(
        produced(completion),
        vec![("d".to_owned(), 0, 0, 0), ("d".to_owned(), 1, 0, 0)]
    );
    let log = fixture.ctx.logs.partition("d", 0).unwrap();
    assert_eq!(log.log_end_offset(), 3, "only the last entry appended");
    let answers = produced(handle(&fixture.ctx, &header, produce_request(2, entries)));
    let bad_acks = ResponseError::InvalidRequiredAcks.code();
    assert_eq!(
        answers,
        vec![
            ("d".to_owned(), 0, bad_acks, -1),
            ("d".to_owned(), 1, bad_acks, -1)
        ]
    );
}

/// Kafka checks the format of every entry of a partition named twice
/// (`KafkaApis.handleProduceRequest` validates each entry, keeps the last that passes for the
/// append, and merges a failed entry's error over the append's answer): the last entry that
/// passes is appended, and the partition is answered with the failed entry's error, whether
/// that entry came first or last.
#[test]
fn every_entry_of_a_partition_named_twice_is_checked() {
    let fixture = crate::api::create_topics::fixture::broker();
    crate::api::create_topics::fixture::topic(&fixture, "f", 3);
    let garbage = || Bytes::from_static(b"not a batch");
    let entries = vec![
        ("f", 0, garbage()),
        ("f", 1, batch_of(5, 10)),
        ("f", 2, garbage()),
        ("f", 0, batch_of(3, 10)),
        ("f", 1, garbage()),
        ("f", 2, garbage()),
    ];
    let header = crate::api::create_topics::fixture::header(9);
    let answers = produced(handle(&fixture.ctx, &header, produce_request(1, entries)));
    let invalid = ResponseError::InvalidRecord.code();
    assert_eq!(
        answers,
        vec![
            ("f".to_owned(), 0, invalid, -1),
            ("f".to_owned(), 1, invalid, -1),
            ("f".to_owned(), 2, invalid, -1),
        ]
    );
    let end_offset = |partition| {
        let log = fixture.ctx.logs.partition("f", partition).unwrap();
        log.log_end_offset()
    };
    assert_eq!(end_offset(0), 3, "the later, valid entry is appended");
    assert_eq!(end_offset(1), 5, "the earlier, valid entry is appended");
    assert_eq!(end_offset(2), 0, "no valid entry: nothing appended");
}

/// Kafka refuses bad acks in `ReplicaManager.appendRecords` before its internal-topic check,
/// so an existing internal topic's partition gets INVALID_REQUIRED_ACKS, as any other does;
/// a partition past the topic's count is unknown.
#[test]
fn invalid_acks_come_before_the_internal_topic_check() {
    let fixture = crate::api::create_topics::fixture::broker();
    let offsets = crate::groups::OFFSETS_TOPIC;
    crate::api::create_topics::fixture::topic(&fixture, offsets, 1);
    let entries = vec![(offsets, 0, batch_of(1, 10)), (offsets, 1, batch_of(1, 10))];
    let header = crate::api::create_topics::fixture::header(9);
    let answers = produced(handle(&fixture.ctx, &header, produce_request(3, entries)));
    let bad_acks = ResponseError::InvalidRequiredAcks.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        answers,
        vec![
            (offsets.to_owned(), 0, bad_acks, -1),
            (offsets.to_owned(), 1, unknown, -1)
        ]
    );
    let log = fixture.ctx.logs.partition(offsets, 0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn only_large_requests_of_large_partitions_go_to_the_append_pool() {
    let items = |partitions: i32, records: i32| -> Vec<Item> {
        (0..partitions)
            .map(|partition| {
                let mut data = PartitionProduceData::default();
                data.index = partition;
                data.records = Some(batch_of(records, 1000));
                let earlier = Vec::new();
                Item {
                    topic_index: 0,
                    topic: Arc::from("d"),
                    entries: Entries { data, earlier },
                }
            })
            .collect()
    };
    assert!(worth_parallel(&items(2, 100)));
    assert!(!worth_parallel(&items(1, 200)), "one partition");
    // Many small partitions: each hand-off would carry too little to pay for its wake-up.
    assert!(
        !worth_parallel(&items(8, 32)),
        "8 partitions of ~32 KiB stay sequential"
    );
}

/// An acks=all append's whole pages are handed to writeback by the handler itself, before
/// the answer's task queues the fsync (the flusher's tick would start them up to 50 ms
/// later, and the fsync would otherwise write them itself).
#[test]
fn acks_all_starts_the_appended_pages_writeback_at_once() {
    use kafka_protocol::messages::produce_request::TopicProduceData;
    use kafka_protocol::messages::TopicName;

    let fixture = super::super::create_topics::fixture::broker();
    super::super::create_topics::fixture::topic(&fixture, "wb", 1);
    let log = fixture.ctx.logs.partition("wb", 0).unwrap();
    let payload = vec![7u8; 40_000];
    let records = raw(RawBatchFields {
        records: &payload,
        base_timestamp: NOW_MS,
        max_timestamp: NOW_MS,
        ..RawBatchFields::default()
    });
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("wb")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records.clone()))])]);
    let header = RequestHeader::default().with_request_api_version(9);
    let completion = handle(&fixture.ctx, &header, request);
    let mark = *log.writeback_mark.lock();
    assert!(matches!(completion, Completion::Pending(_)));
    let whole_pages = records.len() as u64 / 4096 * 4096;
    assert_eq!(
        mark.position, whole_pages,
        "writeback started for the whole pages"
    );
}
