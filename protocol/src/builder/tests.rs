//! Unit tests for the batch builder: header fields, offset gaps, bounds, errors.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use super::*;
use crate::batch::RecordBatch;
use crate::records::records;

const MAX_BYTES: usize = 1 << 20;

fn record(timestamp: i64, value: &[u8]) -> NewRecord<'_> {
    NewRecord {
        timestamp,
        key: None,
        value: Some(value),
        headers: &[],
    }
}

#[test]
fn header_fields_are_filled_in() {
    let fields = BatchFields {
        base_offset: 1_000,
        partition_leader_epoch: 3,
        producer_id: 77,
        producer_epoch: 2,
        base_sequence: 40,
        compression: Compression::Zstd,
        timestamp_type: TimestampType::CreateTime,
        transactional: true,
        control: false,
    };
    let mut builder = BatchBuilder::new(fields, MAX_BYTES);
    // Timestamps out of order: base is the first, max is the largest, deltas may be negative.
    for (i, timestamp) in [500, 400, 900, 600].into_iter().enumerate() {
        assert_eq!(builder.push(&record(timestamp, b"v")), Ok(i as i32));
    }
    let batch = RecordBatch::parse(builder.finish().unwrap()).unwrap();
    batch.verify_crc().unwrap();
    assert_eq!(batch.base_offset(), 1_000);
    assert_eq!(batch.partition_leader_epoch(), 3);
    assert_eq!(
        (
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence()
        ),
        (77, 2, 40)
    );
    assert_eq!(batch.compression(), Ok(Compression::Zstd));
    assert!(batch.is_transactional() && !batch.is_control());
    assert_eq!(
        (
            batch.record_count(),
            batch.last_offset_delta(),
            batch.last_offset()
        ),
        (4, 3, 1_003)
    );
    assert_eq!((batch.base_timestamp(), batch.max_timestamp()), (500, 900));
    let timestamps: Vec<i64> = records(&batch, MAX_BYTES)
        .unwrap()
        .map(|r| r.unwrap().timestamp)
        .collect();
    assert_eq!(timestamps, vec![500, 400, 900, 600]);
}

#[test]
fn explicit_offset_deltas_keep_gaps() {
    let mut builder = BatchBuilder::new(
        BatchFields {
            base_offset: 50,
            ..BatchFields::default()
        },
        MAX_BYTES,
    );
    builder.push_at(0, &record(1, b"a")).unwrap();
    builder.push_at(5, &record(2, b"b")).unwrap();
    assert_eq!(builder.push(&record(3, b"c")), Ok(6));
    assert!(matches!(
        builder.push_at(6, &record(4, b"d")),
        Err(BuildError::OffsetDeltaOutOfOrder { .. })
    ));
    let batch = RecordBatch::parse(builder.finish().unwrap()).unwrap();
    let offsets: Vec<i64> = records(&batch, MAX_BYTES)
        .unwrap()
        .map(|r| r.unwrap().offset)
        .collect();
    assert_eq!(offsets, vec![50, 55, 56]);
    assert_eq!((batch.record_count(), batch.last_offset()), (3, 56));
}

#[test]
fn a_minimum_last_offset_delta_keeps_the_header_past_the_last_record() {
    let fields = || BatchFields {
        base_offset: 50,
        ..BatchFields::default()
    };
    let mut kept = BatchBuilder::new(fields(), MAX_BYTES).with_last_offset_delta_min(9);
    kept.push_at(2, &record(1, b"a")).unwrap();
    let batch = RecordBatch::parse(kept.finish().unwrap()).unwrap();
    assert!(batch.verify_crc().is_ok());
    assert_eq!((batch.record_count(), batch.last_offset()), (1, 59));
    // Below the last record's delta it changes nothing.
    let mut past = BatchBuilder::new(fields(), MAX_BYTES).with_last_offset_delta_min(1);
    past.push_at(4, &record(1, b"a")).unwrap();
    let batch = RecordBatch::parse(past.finish().unwrap()).unwrap();
    assert_eq!(batch.last_offset(), 54);
}

#[test]
fn decoded_records_can_be_rebuilt_like_compaction_does() {
    let mut builder = BatchBuilder::new(
        BatchFields {
            base_offset: 10,
            ..BatchFields::default()
        },
        MAX_BYTES,
    );
    for i in 0..5 {
        builder
            .push(&NewRecord {
                timestamp: 100 + i,
                key: Some(b"k"),
                value: Some(b"v"),
                headers: &[NewHeader {
                    key: b"h",
                    value: None,
                }],
            })
            .unwrap();
    }
    let original = RecordBatch::parse(builder.finish().unwrap()).unwrap();
    let kept: Vec<Record> = records(&original, MAX_BYTES)
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|r| r.offset % 2 == 0)
        .collect();
    let fields = BatchFields {
        base_offset: 10,
        compression: Compression::Gzip,
        ..BatchFields::default()
    };
    let mut rebuilt = BatchBuilder::new(fields, MAX_BYTES);
    for record in &kept {
        rebuilt.push_record(record).unwrap();
    }
    let rebuilt = RecordBatch::parse(rebuilt.finish().unwrap()).unwrap();
    let again: Vec<Record> = records(&rebuilt, MAX_BYTES)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(again, kept);
    assert_eq!(rebuilt.last_offset(), 14);
}

#[test]
fn empty_batch_is_an_error() {
    let builder = BatchBuilder::new(BatchFields::default(), MAX_BYTES);
    assert!(builder.is_empty());
    assert_eq!(builder.finish(), Err(BuildError::Empty));
}

#[test]
fn a_record_that_does_not_fit_is_refused_and_the_batch_stays_usable() {
    let mut builder = BatchBuilder::new(BatchFields::default(), 200);
    builder.push(&record(1, &[7u8; 100])).unwrap();
    let size_before = builder.uncompressed_size_bytes();
    assert!(matches!(
        builder.push(&record(2, &[7u8; 100])),
        Err(BuildError::TooLarge { max_bytes: 200, .. })
    ));
    assert_eq!(builder.uncompressed_size_bytes(), size_before);
    assert_eq!(builder.record_count(), 1);
    let batch = builder.finish().unwrap();
    assert!(batch.len() <= 200);
}

#[test]
fn compressed_batches_may_hold_more_than_they_weigh() {
    let value = vec![0u8; 50_000];
    let fields = BatchFields {
        compression: Compression::Lz4,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields.clone(), 10_000);
    assert!(matches!(
        builder.push(&record(1, &value)),
        Err(BuildError::TooLarge { .. })
    ));
    let mut builder = BatchBuilder::new(fields, 10_000).with_max_uncompressed_bytes(100_000);
    builder.push(&record(1, &value)).unwrap();
    let batch = builder.finish().unwrap();
    assert!(batch.len() <= 10_000);
}

#[test]
fn finished_size_is_checked_after_compression() {
    // Incompressible bytes: compression framing makes the batch bigger than its records.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..4_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    let fields = BatchFields {
        compression: Compression::Gzip,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 4_075).with_max_uncompressed_bytes(MAX_BYTES);
    builder.push(&record(1, &noise)).unwrap();
    assert!(matches!(
        builder.finish(),
        Err(BuildError::TooLarge {
            max_bytes: 4_075,
            ..
        })
    ));
}

/// Deterministic records mixing text and noise, large enough for several codec blocks.
fn golden_values() -> Vec<Vec<u8>> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..600)
        .map(|i: usize| {
            let text_bytes = (i * 37) % 700;
            let noise_bytes = (i * 11) % 90;
            let mut value: Vec<u8> = (0..text_bytes).map(|j| b"runnel golden "[j % 14]).collect();
            value.extend((0..noise_bytes).map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            }));
            value
        })
        .collect()
}

fn golden_batch(compression: Compression) -> Bytes {
    let fields = BatchFields {
        base_offset: 42,
        producer_id: 7,
        producer_epoch: 1,
        base_sequence: 3,
        compression,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, MAX_BYTES);
    for (i, value) in golden_values().iter().enumerate() {
        builder.push(&record(1_000 + i as i64, value)).unwrap();
    }
    builder.finish().unwrap()
}

/// The finished bytes of every codec are pinned (length, CRC-32C of the whole batch) to
/// what the builder wrote before it compressed in place: a cheaper path must not change a
/// byte producers send or the broker stores.
#[test]
fn finished_batches_are_byte_for_byte_stable() {
    let pinned: [(Compression, usize, u32); 5] = [
        (Compression::None, 240_665, 2_941_488_366),
        (Compression::Gzip, 34_945, 3_747_820_913),
        (Compression::Snappy, 45_627, 1_099_795_033),
        (Compression::Lz4, 38_640, 1_658_462_363),
        (Compression::Zstd, 35_113, 2_025_183_923),
    ];
    for (compression, size_bytes, crc) in pinned {
        let batch = golden_batch(compression);
        assert_eq!(
            (batch.len(), crc32c::crc32c(&batch)),
            (size_bytes, crc),
            "{compression:?}"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever the records, each codec's batch decodes back to them.
    #[test]
    fn every_codec_roundtrips_through_the_decoder(
        values in proptest::collection::vec(
            proptest::option::of(proptest::collection::vec(0u8..4, 0..3_000)),
            1..40,
        ),
        codec_index in 0usize..5,
    ) {
        let compression = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ][codec_index];
        let fields = BatchFields { compression, ..BatchFields::default() };
        let mut builder = BatchBuilder::new(fields, MAX_BYTES);
        for (i, value) in values.iter().enumerate() {
            let new = NewRecord { timestamp: i as i64, key: None, value: value.as_deref(), headers: &[] };
            builder.push(&new).unwrap();
        }
        let batch = RecordBatch::parse(builder.finish().unwrap()).unwrap();
        batch.verify_crc().unwrap();
        proptest::prop_assert_eq!(batch.compression().unwrap(), compression);
        let decoded: Vec<Option<Vec<u8>>> = records(&batch, MAX_BYTES)
            .unwrap()
            .map(|record| record.unwrap().value.map(|v| v.to_vec()))
            .collect();
        proptest::prop_assert_eq!(decoded, values);
    }
}
