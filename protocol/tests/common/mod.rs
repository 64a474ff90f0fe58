//! Shared proptest strategies for the protocol crate's property tests: owned records and
//! batch fields that can be turned into a built batch.

#![allow(dead_code)] // each test binary uses a different subset

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use runnel_protocol::batch::{Compression, TimestampType};
use runnel_protocol::builder::{BatchBuilder, BatchFields, NewHeader, NewRecord};

/// Generous bound for decompression in tests: far above anything the strategies make.
pub const MAX_TEST_BYTES: usize = 4 << 20;

pub const ALL_CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// One record the test owns, with its explicit offset delta.
#[derive(Debug, Clone)]
pub struct TestRecord {
    pub offset_delta: i32,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<TestHeader>,
}

/// A header's key and nullable value.
pub type TestHeader = (Vec<u8>, Option<Vec<u8>>);

/// Random bytes, or bytes from a 4-letter alphabet so compressors find something to do.
pub fn payload(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..max_len), vec(0u8..4, 0..max_len * 4)]
}

pub fn codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(ALL_CODECS.to_vec())
}

/// Timestamps at the i64 edges as well as realistic epoch milliseconds.
pub fn timestamp(realistic_only: bool) -> BoxedStrategy<i64> {
    if realistic_only {
        (0i64..1 << 42).boxed()
    } else {
        prop_oneof![
            0i64..1 << 42,
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
            Just(-1i64)
        ]
        .boxed()
    }
}

/// Header keys are distinct ASCII strings when `distinct_string_keys` (what the
/// `kafka-protocol` crate's map of headers can represent), any bytes otherwise.
pub fn headers(distinct_string_keys: bool) -> BoxedStrategy<Vec<TestHeader>> {
    let value = proptest::option::of(payload(16));
    if distinct_string_keys {
        proptest::collection::btree_map("[a-z]{0,8}", value, 0..4)
            .prop_map(|map| {
                map.into_iter()
                    .map(|(key, value)| (key.into_bytes(), value))
                    .collect()
            })
            .boxed()
    } else {
        vec((payload(8), value), 0..4).boxed()
    }
}

/// 1..=`max_records` records with increasing offset deltas (gaps when `gaps`).
pub fn records(
    max_records: usize,
    gaps: bool,
    kafka_compatible: bool,
) -> impl Strategy<Value = Vec<TestRecord>> {
    let gap_max = if gaps { 3 } else { 0 };
    let one = (
        0..=gap_max,
        timestamp(kafka_compatible),
        proptest::option::of(payload(32)),
        proptest::option::of(payload(128)),
        headers(kafka_compatible),
    );
    vec(one, 1..=max_records).prop_map(|items| {
        let mut offset_delta = -1;
        items
            .into_iter()
            .map(|(gap, timestamp, key, value, headers)| {
                offset_delta += 1 + gap;
                TestRecord {
                    offset_delta,
                    timestamp,
                    key,
                    value,
                    headers,
                }
            })
            .collect()
    })
}

/// Batch fields with every flag and codec; LogAppendTime only when `any_timestamp_type`.
pub fn batch_fields(any_timestamp_type: bool) -> impl Strategy<Value = BatchFields> {
    let timestamp_type = if any_timestamp_type {
        prop_oneof![
            Just(TimestampType::CreateTime),
            Just(TimestampType::LogAppendTime)
        ]
        .boxed()
    } else {
        Just(TimestampType::CreateTime).boxed()
    };
    (
        (
            0i64..1 << 50,
            any::<i32>(),
            any::<i64>(),
            any::<i16>(),
            any::<i32>(),
        ),
        (codec(), timestamp_type, any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (base_offset, partition_leader_epoch, producer_id, producer_epoch, base_sequence),
                (compression, timestamp_type, transactional, control),
            )| BatchFields {
                base_offset,
                partition_leader_epoch,
                producer_id,
                producer_epoch,
                base_sequence,
                compression,
                timestamp_type,
                transactional,
                control,
            },
        )
}

/// Builds one batch from `records` with [`BatchBuilder::push_at`].
pub fn build(fields: &BatchFields, records: &[TestRecord]) -> Bytes {
    let mut builder = BatchBuilder::new(fields.clone(), MAX_TEST_BYTES);
    for record in records {
        let headers: Vec<NewHeader<'_>> = record
            .headers
            .iter()
            .map(|(key, value)| NewHeader {
                key,
                value: value.as_deref(),
            })
            .collect();
        let new = NewRecord {
            timestamp: record.timestamp,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
        };
        builder
            .push_at(record.offset_delta, &new)
            .unwrap_or_else(|e| panic!("push failed: {e}"));
    }
    builder
        .finish()
        .unwrap_or_else(|e| panic!("finish failed: {e}"))
}

pub fn to_bytes(bytes: &Option<Vec<u8>>) -> Option<Bytes> {
    bytes.as_ref().map(|b| Bytes::copy_from_slice(b))
}
