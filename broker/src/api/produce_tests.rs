//! Unit tests of produce validation: each batch defect's Kafka error and the timestamp
//! bounds (KIP-937).

use runnel_protocol::batch::{build_raw_batch, RawBatchFields, BATCH_HEADER_BYTES};

use super::batch::NO_TIMESTAMP;
use super::test_fixture::{code, compressed_keyed, raw, validate_with, NOW_MS};
use super::*;
use crate::budget::DecompressionBudget;
use crate::log::{MessageTimestampType, TopicConfig};

fn config() -> TopicConfig {
    TopicConfig {
        max_message_bytes: 200,
        ..TopicConfig::default()
    }
}

fn budget() -> DecompressionBudget {
    DecompressionBudget::new(crate::config::defaults::DECOMPRESSION_BYTES_MAX as u64)
}

fn validate(config: &TopicConfig, records: Bytes) -> Result<RecordBatch, (ResponseError, String)> {
    validate_with(config, &budget(), records)
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

// Timestamp bounds (KIP-937).

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
