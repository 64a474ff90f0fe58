//! Property tests: every decoder is total. Arbitrary bytes and mutated valid batches go into
//! `RecordBatch::parse`, `BatchSplitter`, `verify_crc` and `records()`; nothing panics and
//! nothing allocates by an unchecked length. Decompression bombs give `TooLarge`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use bytes::Bytes;
use common::{batch_fields, build, codec, records, ALL_CODECS};
use proptest::collection::vec;
use proptest::prelude::*;
use runnel_protocol::batch::{
    build_raw_batch, BatchSplitter, Compression, RawBatchFields, RecordBatch,
};
use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};
use runnel_protocol::records::{codec as records_codec, records as decode_records, RecordError};

/// Small bound so a test that decompresses garbage stays cheap.
const MAX_BYTES: usize = 64 * 1024;

/// Walks everything a consumer of `blob` would: split, CRC, decompress, decode every record.
/// Returns how many records decoded cleanly, so the work cannot be optimised away.
fn exercise(blob: Bytes) -> usize {
    let mut decoded = 0;
    // The splitter stops after its first error, and each batch takes at least 61 bytes.
    for batch in BatchSplitter::new(blob).flatten() {
        let _ = batch.verify_crc();
        let Ok(iter) = decode_records(&batch, MAX_BYTES) else {
            continue;
        };
        let declared = usize::try_from(batch.record_count()).unwrap_or(0);
        let mut yielded = 0;
        for record in iter {
            yielded += 1;
            assert!(
                yielded <= declared + 1,
                "records() must stop at the declared count"
            );
            decoded += usize::from(record.is_ok());
        }
    }
    decoded
}

/// A batch whose header says `compression` over an arbitrary records section.
fn raw_batch(compression: Compression, record_count: i32, section: &[u8]) -> Bytes {
    build_raw_batch(&RawBatchFields {
        attributes: i16::from(compression.id()),
        record_count,
        records: section,
        ..RawBatchFields::default()
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { at: usize },
    Overwrite { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (
            any::<usize>(),
            prop_oneof![
                Just(vec![0xff; 4]),
                Just(vec![0x7f, 0xff, 0xff, 0xff]),
                Just(vec![0x80; 4]),
                Just(vec![0; 4]),
                vec(any::<u8>(), 1..8),
            ]
        )
            .prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
    ]
}

fn apply(batch: &mut Vec<u8>, mutation: &Mutation) {
    let len = batch.len();
    match mutation {
        Mutation::Flip { at, mask } => batch[at % len] ^= mask,
        Mutation::Truncate { at } => batch.truncate(at % len),
        Mutation::Overwrite { at, bytes } => {
            let start = at % len;
            let end = (start + bytes.len()).min(len);
            batch[start..end].copy_from_slice(&bytes[..end - start]);
        }
    }
}

/// Recomputes the CRC (when the framing still allows) so a mutation reaches `records()`
/// the way it would after a producer with a buggy encoder sealed it properly.
fn reseal(batch: &mut [u8]) {
    if batch.len() >= 61 {
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(blob in vec(any::<u8>(), 0..512)) {
        let _ = RecordBatch::parse(Bytes::from(blob.clone()));
        exercise(Bytes::from(blob));
    }

    #[test]
    fn arbitrary_records_sections_never_panic(compression in codec(), count in -2i32..40, section in vec(any::<u8>(), 0..512)) {
        exercise(raw_batch(compression, count, &section));
    }

    #[test]
    fn garbage_inside_valid_compression_never_panics(compression in codec(), count in 0i32..40, section in vec(any::<u8>(), 0..512)) {
        // Valid compression framing around garbage records: the record parser sees it all.
        let packed = records_codec::compress(compression, &section).unwrap();
        exercise(raw_batch(compression, count, &packed));
    }

    #[test]
    fn mutated_valid_batches_never_panic(
        fields in batch_fields(true),
        input in records(6, true, false),
        mutations in vec(mutation(), 1..4),
        resealed in any::<bool>(),
    ) {
        let original = build(&fields, &input);
        let mut batch = original.to_vec();
        for mutation in &mutations {
            if batch.is_empty() {
                break;
            }
            apply(&mut batch, mutation);
        }
        if resealed {
            reseal(&mut batch);
        }
        // A mutated batch followed by the original: the splitter must not lose its footing.
        let mut blob = batch;
        blob.extend_from_slice(&original);
        exercise(Bytes::from(blob));
    }
}

#[test]
fn decompression_bombs_are_too_large() {
    let zeros = vec![0u8; 1 << 20];
    for compression in ALL_CODECS.into_iter().filter(|c| *c != Compression::None) {
        let fields = BatchFields {
            compression,
            ..BatchFields::default()
        };
        let mut builder = BatchBuilder::new(fields, 1 << 20).with_max_uncompressed_bytes(2 << 20);
        builder
            .push(&NewRecord {
                timestamp: 0,
                key: None,
                value: Some(&zeros),
                headers: &[],
            })
            .unwrap();
        let batch = RecordBatch::parse(builder.finish().unwrap()).unwrap();
        assert!(
            batch.size_bytes() < MAX_BYTES,
            "{compression:?}: the bomb must be small"
        );
        let result = decode_records(&batch, MAX_BYTES).err();
        assert_eq!(
            result,
            Some(RecordError::TooLarge {
                max_bytes: MAX_BYTES
            }),
            "{compression:?}"
        );
    }
}

#[test]
fn snappy_declared_sizes_are_not_trusted() {
    // Raw snappy whose preamble claims ~4 GiB: refused before anything is allocated.
    let raw = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    let result = records_codec::decompress(Compression::Snappy, &raw, MAX_BYTES);
    assert_eq!(
        result,
        Err(RecordError::TooLarge {
            max_bytes: MAX_BYTES
        })
    );
    // xerial framing: a block length past the end, then a negative one.
    let mut xerial = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
    xerial.extend_from_slice(&i32::MAX.to_be_bytes());
    assert!(records_codec::decompress(
        Compression::Snappy,
        &Bytes::from(xerial.clone()),
        MAX_BYTES
    )
    .is_err());
    xerial.truncate(16);
    xerial.extend_from_slice(&(-1i32).to_be_bytes());
    assert!(
        records_codec::decompress(Compression::Snappy, &Bytes::from(xerial), MAX_BYTES).is_err()
    );
}

#[test]
fn huge_counts_and_lengths_fail_without_allocating() {
    // record_count i32::MAX over a few bytes, and a header count of i32::MAX inside a record.
    assert!(decode_records(
        &RecordBatch::parse(raw_batch(Compression::None, i32::MAX, &[0; 16])).unwrap(),
        MAX_BYTES
    )
    .is_err());
    // Null key and value, then a header count of 2^30 in five varint bytes.
    let record = [0x14, 0, 0, 0, 1, 1, 0x80, 0x80, 0x80, 0x80, 0x08];
    let batch = RecordBatch::parse(raw_batch(Compression::None, 1, &record)).unwrap();
    let result: Result<Vec<_>, _> = decode_records(&batch, MAX_BYTES).unwrap().collect();
    assert!(matches!(result, Err(RecordError::Malformed(_))));
}

#[test]
fn offset_overflow_is_an_error() {
    let fields = BatchFields {
        base_offset: i64::MAX,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    builder.push_at(5, &NewRecord::default()).unwrap();
    let batch = RecordBatch::parse(builder.finish().unwrap()).unwrap();
    let result: Result<Vec<_>, _> = decode_records(&batch, MAX_BYTES).unwrap().collect();
    assert!(matches!(result, Err(RecordError::Malformed(_))));
}
