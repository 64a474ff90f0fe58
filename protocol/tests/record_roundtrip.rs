//! Property tests: records → `BatchBuilder` → `RecordBatch::parse` + `verify_crc` +
//! `records()` gives back exactly the input, for every codec; and our batches agree with the
//! `kafka-protocol` crate's encoder and decoder in both directions, so the format we write
//! and read is the real Kafka one.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use bytes::{Bytes, BytesMut};
use common::{batch_fields, build, records, to_bytes, TestRecord, MAX_TEST_BYTES};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records as kp;
use proptest::prelude::*;
use runnel_protocol::batch::{BatchSplitter, Compression, RecordBatch, TimestampType};
use runnel_protocol::builder::BatchFields;
use runnel_protocol::records::{records as decode_records, Record, RecordHeader};

fn expected_record(fields: &BatchFields, input: &TestRecord, max_timestamp: i64) -> Record {
    Record {
        offset: fields.base_offset + i64::from(input.offset_delta),
        timestamp: match fields.timestamp_type {
            TimestampType::CreateTime => input.timestamp,
            TimestampType::LogAppendTime => max_timestamp,
        },
        key: to_bytes(&input.key),
        value: to_bytes(&input.value),
        headers: input
            .headers
            .iter()
            .map(|(key, value)| RecordHeader {
                key: Bytes::copy_from_slice(key),
                value: to_bytes(value),
            })
            .collect(),
    }
}

fn decode_all(batch: &RecordBatch) -> Vec<Record> {
    decode_records(batch, MAX_TEST_BYTES)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn built_batches_read_back_exactly(fields in batch_fields(true), input in records(12, true, false)) {
        let batch = RecordBatch::parse(build(&fields, &input)).unwrap();
        batch.verify_crc().unwrap();
        let last = input.last().unwrap();
        let max_timestamp = input.iter().map(|r| r.timestamp).max().unwrap();
        prop_assert_eq!(batch.compression(), Ok(fields.compression));
        prop_assert_eq!(batch.timestamp_type(), fields.timestamp_type);
        prop_assert_eq!((batch.is_transactional(), batch.is_control()), (fields.transactional, fields.control));
        prop_assert_eq!(batch.record_count() as usize, input.len());
        prop_assert_eq!(batch.last_offset_delta(), last.offset_delta);
        prop_assert_eq!(batch.base_timestamp(), input[0].timestamp);
        prop_assert_eq!(batch.max_timestamp(), max_timestamp);
        prop_assert_eq!(
            (batch.producer_id(), batch.producer_epoch(), batch.base_sequence(), batch.partition_leader_epoch()),
            (fields.producer_id, fields.producer_epoch, fields.base_sequence, fields.partition_leader_epoch)
        );
        let expected: Vec<Record> = input.iter().map(|r| expected_record(&fields, r, max_timestamp)).collect();
        prop_assert_eq!(decode_all(&batch), expected);
    }

    #[test]
    fn kafka_protocol_decodes_our_batches(fields in batch_fields(false), input in records(12, false, true)) {
        let mut bytes = build(&fields, &input);
        let decoded = kp::RecordBatchDecoder::decode(&mut bytes).unwrap();
        prop_assert_eq!(decoded.compression as u8, fields.compression.id());
        prop_assert_eq!(decoded.records.len(), input.len());
        for (theirs, ours) in decoded.records.iter().zip(&input) {
            prop_assert_eq!(theirs.offset, fields.base_offset + i64::from(ours.offset_delta));
            prop_assert_eq!(theirs.timestamp, ours.timestamp);
            prop_assert_eq!(&theirs.key, &to_bytes(&ours.key));
            prop_assert_eq!(&theirs.value, &to_bytes(&ours.value));
            prop_assert_eq!(theirs.sequence, fields.base_sequence.wrapping_add(ours.offset_delta));
            prop_assert_eq!((theirs.producer_id, theirs.producer_epoch), (fields.producer_id, fields.producer_epoch));
            prop_assert_eq!((theirs.transactional, theirs.control), (fields.transactional, fields.control));
            prop_assert_eq!(theirs.partition_leader_epoch, fields.partition_leader_epoch);
            let headers: Vec<(Vec<u8>, Option<Bytes>)> =
                theirs.headers.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.clone())).collect();
            let expected: Vec<(Vec<u8>, Option<Bytes>)> =
                ours.headers.iter().map(|(k, v)| (k.clone(), to_bytes(v))).collect();
            prop_assert_eq!(headers, expected);
        }
    }

    #[test]
    fn we_decode_kafka_protocol_batches(fields in batch_fields(false), input in records(12, false, true)) {
        let theirs: Vec<kp::Record> = input.iter().map(|r| to_kafka_protocol(&fields, r)).collect();
        let mut encoded = BytesMut::new();
        let options = kp::RecordEncodeOptions { version: 2, compression: kafka_protocol_codec(fields.compression) };
        kp::RecordBatchEncoder::encode(&mut encoded, &theirs, &options).unwrap();
        let mut batches = BatchSplitter::new(encoded.freeze());
        let batch = batches.next().unwrap().unwrap();
        prop_assert!(batches.next().is_none(), "one batch expected");
        batch.verify_crc().unwrap();
        prop_assert_eq!(batch.compression(), Ok(fields.compression));
        prop_assert_eq!(batch.base_sequence(), fields.base_sequence);
        let max_timestamp = input.iter().map(|r| r.timestamp).max().unwrap();
        prop_assert_eq!(batch.max_timestamp(), max_timestamp);
        let expected: Vec<Record> = input.iter().map(|r| expected_record(&fields, r, max_timestamp)).collect();
        prop_assert_eq!(decode_all(&batch), expected);
    }
}

fn kafka_protocol_codec(compression: Compression) -> kp::Compression {
    match compression {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

fn to_kafka_protocol(fields: &BatchFields, record: &TestRecord) -> kp::Record {
    let headers: IndexMap<StrBytes, Option<Bytes>> = record
        .headers
        .iter()
        .map(|(key, value)| {
            (
                StrBytes::from_string(String::from_utf8(key.clone()).unwrap()),
                to_bytes(value),
            )
        })
        .collect();
    kp::Record {
        transactional: fields.transactional,
        control: fields.control,
        delete_horizon: false,
        partition_leader_epoch: fields.partition_leader_epoch,
        producer_id: fields.producer_id,
        producer_epoch: fields.producer_epoch,
        timestamp_type: kp::TimestampType::Creation,
        offset: fields.base_offset + i64::from(record.offset_delta),
        sequence: fields.base_sequence.wrapping_add(record.offset_delta),
        timestamp: record.timestamp,
        key: to_bytes(&record.key),
        value: to_bytes(&record.value),
        headers,
    }
}
