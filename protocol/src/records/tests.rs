//! Unit tests for record decoding: layout, nulls, headers, timestamps, counts, bad input.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use bytes::Bytes;

use super::*;
use crate::batch::{build_raw_batch, Compression, RawBatchFields};
use crate::builder::{BatchBuilder, BatchFields, NewHeader, NewRecord};

const MAX_BYTES: usize = 1 << 20;

fn raw_batch(records: &[u8], record_count: i32) -> RecordBatch {
    let bytes = build_raw_batch(&RawBatchFields {
        base_offset: 100,
        base_timestamp: 5_000,
        max_timestamp: 5_000,
        record_count,
        records,
        ..RawBatchFields::default()
    });
    RecordBatch::parse(bytes).unwrap()
}

fn collect(batch: &RecordBatch) -> Result<Vec<Record>, RecordError> {
    records(batch, MAX_BYTES)?.collect()
}

/// `key = "k"`, `value = "v"`, no headers, both deltas given, encoded by hand.
fn hand_record(timestamp_delta: u8, offset_delta: u8) -> Vec<u8> {
    vec![
        0x10,
        0x00,
        timestamp_delta,
        offset_delta,
        0x02,
        b'k',
        0x02,
        b'v',
        0x00,
    ]
}

#[test]
fn decodes_a_hand_encoded_record() {
    let mut section = hand_record(0, 0);
    section.extend(hand_record(0x04, 0x02)); // zig-zag: +2 ms, offset delta +1
    let decoded = collect(&raw_batch(&section, 2)).unwrap();
    assert_eq!(decoded.len(), 2);
    assert_eq!((decoded[0].offset, decoded[0].timestamp), (100, 5_000));
    assert_eq!((decoded[1].offset, decoded[1].timestamp), (101, 5_002));
    assert_eq!(decoded[1].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(decoded[1].value.as_deref(), Some(&b"v"[..]));
    assert!(decoded[1].headers.is_empty());
}

#[test]
fn uncompressed_values_share_the_batch_bytes() {
    let batch = raw_batch(&hand_record(0, 0), 1);
    let record = collect(&batch).unwrap().remove(0);
    let value = record.value.unwrap();
    let batch_range = batch.as_bytes().as_ptr_range();
    assert!(
        batch_range.contains(&value.as_ptr()),
        "value must be a slice of the batch"
    );
}

fn build(fields: BatchFields, records: &[NewRecord<'_>]) -> RecordBatch {
    let mut builder = BatchBuilder::new(fields, MAX_BYTES);
    for record in records {
        builder.push(record).unwrap();
    }
    RecordBatch::parse(builder.finish().unwrap()).unwrap()
}

#[test]
fn null_and_empty_keys_and_values_are_distinct() {
    let inputs = [
        NewRecord {
            timestamp: 1,
            key: None,
            value: None,
            headers: &[],
        },
        NewRecord {
            timestamp: 2,
            key: Some(b""),
            value: Some(b""),
            headers: &[],
        },
        NewRecord {
            timestamp: 3,
            key: None,
            value: Some(b"tombstone? no"),
            headers: &[],
        },
    ];
    let decoded = collect(&build(BatchFields::default(), &inputs)).unwrap();
    assert_eq!(decoded[0].key, None);
    assert_eq!(decoded[0].value, None);
    assert_eq!(decoded[1].key, Some(Bytes::new()));
    assert_eq!(decoded[1].value, Some(Bytes::new()));
    assert_eq!(decoded[2].value.as_deref(), Some(&b"tombstone? no"[..]));
}

#[test]
fn headers_keep_order_duplicates_and_null_values() {
    let headers = [
        NewHeader {
            key: b"trace",
            value: Some(b"abc"),
        },
        NewHeader {
            key: b"trace",
            value: None,
        },
        NewHeader {
            key: b"",
            value: Some(b""),
        },
    ];
    let inputs = [NewRecord {
        timestamp: 9,
        key: Some(b"k"),
        value: Some(b"v"),
        headers: &headers,
    }];
    let decoded = collect(&build(BatchFields::default(), &inputs)).unwrap();
    let got: Vec<(&[u8], Option<&[u8]>)> = decoded[0]
        .headers
        .iter()
        .map(|h| (&h.key[..], h.value.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (&b"trace"[..], Some(&b"abc"[..])),
            (&b"trace"[..], None),
            (&b""[..], Some(&b""[..]))
        ]
    );
}

#[test]
fn log_append_time_overrides_record_timestamps() {
    let fields = BatchFields {
        timestamp_type: TimestampType::LogAppendTime,
        ..BatchFields::default()
    };
    let inputs = [
        NewRecord {
            timestamp: 10,
            ..NewRecord::default()
        },
        NewRecord {
            timestamp: 30,
            ..NewRecord::default()
        },
        NewRecord {
            timestamp: 20,
            ..NewRecord::default()
        },
    ];
    let batch = build(fields, &inputs);
    assert_eq!(batch.max_timestamp(), 30);
    let timestamps: Vec<i64> = collect(&batch)
        .unwrap()
        .iter()
        .map(|r| r.timestamp)
        .collect();
    assert_eq!(timestamps, vec![30, 30, 30]);
}

#[test]
fn every_codec_decodes_back() {
    let value = vec![b'x'; 10_000];
    let inputs: Vec<NewRecord<'_>> = (0..20)
        .map(|i| NewRecord {
            timestamp: 1_000 + i,
            key: Some(b"key"),
            value: Some(&value),
            headers: &[],
        })
        .collect();
    for compression in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = build(
            BatchFields {
                compression,
                base_offset: 7,
                ..BatchFields::default()
            },
            &inputs,
        );
        assert!(
            batch.size_bytes() < 20_000,
            "{compression:?} should shrink repetitive values"
        );
        let decoded = collect(&batch).unwrap();
        assert_eq!(decoded.len(), 20);
        assert_eq!(decoded[19].offset, 26);
        assert_eq!(decoded[19].timestamp, 1_019);
        assert!(decoded
            .iter()
            .all(|r| r.value.as_deref() == Some(&value[..])));
        // The same batch read with a too-small bound fails instead of allocating.
        assert!(matches!(
            records(&batch, 4_096).err(),
            Some(RecordError::TooLarge { max_bytes: 4_096 })
        ));
    }
}

#[test]
fn record_count_must_match_the_records_section() {
    // One 14-byte record (7-byte key, null value) passes the up-front "two records could fit"
    // check, then the section runs out after one record.
    let long_record = [
        0x1a, 0, 0, 0, 0x0e, b'a', b'b', b'c', b'd', b'e', b'f', b'g', 0x01, 0x00,
    ];
    let missing = collect(&raw_batch(&long_record, 2));
    assert_eq!(
        missing,
        Err(RecordError::CountMismatch {
            declared: 2,
            found: 1
        })
    );
    // More bytes than the declared records hold.
    let mut section = hand_record(0, 0);
    section.extend(hand_record(0, 2));
    assert_eq!(
        collect(&raw_batch(&section, 1)),
        Err(RecordError::Malformed("bytes after the last record"))
    );
    assert_eq!(collect(&raw_batch(&section, 2)).map(|r| r.len()), Ok(2));
    // An empty batch (what compaction may leave behind) has no records and no error.
    assert_eq!(collect(&raw_batch(&[], 0)), Ok(vec![]));
}

#[test]
fn iteration_stops_after_the_first_error() {
    let mut padded = hand_record(0, 0);
    padded.extend([0u8; 5]);
    let mut iter = records(&raw_batch(&padded, 2), MAX_BYTES).unwrap();
    assert!(iter.next().is_some_and(|r| r.is_ok()));
    assert!(
        iter.next().is_some_and(|r| r.is_err()),
        "five zero bytes are not a record"
    );
    assert!(iter.next().is_none());
}

#[test]
fn malformed_lengths_and_counts_are_errors() {
    let cases: [(&[u8], &str); 6] = [
        (
            &[0x7e, 0, 0, 0, 1, 1, 0],
            "record length beyond the section",
        ),
        (&[0x0c, 0, 0, 0, 0x7e, 1, 0], "key length beyond the record"),
        (&[0x0c, 0, 0, 0, 0x03, 1, 0], "key length -2"),
        (
            &[0x0c, 0, 0, 0, 1, 1, 0x7e],
            "header count beyond the record",
        ),
        (&[0x0c, 0, 0, 0, 1, 1, 0x01], "negative header count"),
        (
            &[0x0e, 0, 0, 0, 1, 1, 0, 0],
            "record length longer than its fields",
        ),
    ];
    for (section, why) in cases {
        let result = collect(&raw_batch(section, 1));
        assert!(
            matches!(result, Err(RecordError::Malformed(_))),
            "{why}: {result:?}"
        );
    }
}

#[test]
fn impossible_record_count_is_rejected_up_front() {
    for count in [-1, i32::MAX, 2] {
        let result = records(&raw_batch(&hand_record(0, 0), count), MAX_BYTES);
        assert!(
            matches!(result.err(), Some(RecordError::Malformed(_))),
            "count {count}"
        );
    }
}

#[test]
fn unknown_codec_is_a_batch_error() {
    let bytes = build_raw_batch(&RawBatchFields {
        attributes: 6,
        ..RawBatchFields::default()
    });
    let batch = RecordBatch::parse(bytes).unwrap();
    assert_eq!(
        records(&batch, MAX_BYTES).err(),
        Some(RecordError::Batch(BatchError::UnknownCompression(6)))
    );
}
