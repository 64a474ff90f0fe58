use super::*;

fn sample(records: &[u8]) -> Bytes {
    build_raw_batch(&RawBatchFields {
        base_offset: 0,
        last_offset_delta: 2,
        record_count: 3,
        base_timestamp: 1_000,
        max_timestamp: 1_002,
        records,
        ..RawBatchFields::default()
    })
}

#[test]
fn parses_header_fields() {
    let batch = RecordBatch::parse(sample(b"abc")).expect("valid batch");
    assert_eq!(batch.size_bytes(), BATCH_HEADER_BYTES + 3);
    assert_eq!(batch.last_offset(), 2);
    assert_eq!(batch.record_count(), 3);
    assert_eq!(batch.max_timestamp(), 1_002);
    assert_eq!(batch.compression(), Ok(Compression::None));
    assert_eq!(batch.records_bytes().as_ref(), b"abc");
    assert!(batch.verify_crc().is_ok());
}

#[test]
fn patching_offset_and_epoch_keeps_crc_valid() {
    let mut raw = sample(b"xyz").to_vec();
    set_base_offset(&mut raw, 1_234_567);
    set_partition_leader_epoch(&mut raw, 7);
    let batch = RecordBatch::parse(Bytes::from(raw)).expect("valid batch");
    assert_eq!(batch.base_offset(), 1_234_567);
    assert_eq!(batch.partition_leader_epoch(), 7);
    assert_eq!(batch.last_offset(), 1_234_569);
    assert!(batch.verify_crc().is_ok());
}

#[test]
fn setting_the_max_timestamp_rewrites_the_crc() {
    let mut raw = sample(b"xyz").to_vec();
    set_max_timestamp(&mut raw, 9_999);
    let batch = RecordBatch::parse(Bytes::from(raw)).expect("valid batch");
    assert_eq!(batch.max_timestamp(), 9_999);
    assert_eq!(
        batch.base_timestamp(),
        1_000,
        "only the max timestamp changes"
    );
    assert_eq!(batch.records_bytes().as_ref(), b"xyz");
    assert!(batch.verify_crc().is_ok());
}

#[test]
fn setting_the_producer_state_rewrites_the_crc() {
    let mut raw = sample(b"xyz").to_vec();
    set_producer_state(&mut raw, 4_000_000_001, 7, i32::MAX - 1);
    let batch = RecordBatch::parse(Bytes::from(raw)).expect("valid batch");
    assert_eq!(
        (
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence()
        ),
        (4_000_000_001, 7, i32::MAX - 1)
    );
    assert_eq!((batch.max_timestamp(), batch.record_count()), (1_002, 3));
    assert_eq!(batch.records_bytes().as_ref(), b"xyz");
    assert!(batch.verify_crc().is_ok());
}

#[test]
fn crc_covers_attributes_to_end() {
    let mut raw = sample(b"xyz").to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 0xff;
    let batch = RecordBatch::parse(Bytes::from(raw)).expect("framing still valid");
    assert!(matches!(
        batch.verify_crc(),
        Err(BatchError::CrcMismatch { .. })
    ));
}

#[test]
fn rejects_bad_framing() {
    let good = sample(b"abc");
    assert!(matches!(
        RecordBatch::parse(good.slice(..good.len() - 1)),
        Err(BatchError::Truncated { .. })
    ));
    assert!(matches!(
        RecordBatch::parse(good.slice(..5)),
        Err(BatchError::Truncated { .. })
    ));
    let mut long = good.to_vec();
    long.push(0);
    assert!(RecordBatch::parse(Bytes::from(long)).is_err());
    let mut bad_magic = good.to_vec();
    bad_magic[OFFSET_MAGIC] = 1;
    assert_eq!(
        RecordBatch::parse(Bytes::from(bad_magic)),
        Err(BatchError::UnsupportedMagic(1))
    );
    let mut negative = good.to_vec();
    negative[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(
        RecordBatch::parse(Bytes::from(negative)),
        Err(BatchError::BadLength { .. })
    ));
}

#[test]
fn batch_frames_follow_kafkas_batch_iterator() {
    let good = sample(b"abc");
    let whole = Some(BatchFrame {
        size_bytes: good.len(),
        magic: MAGIC_V2,
    });
    assert_eq!(peek_batch_frame(&good), Ok(whole));
    let mut two = good.to_vec();
    two.extend_from_slice(&good);
    assert_eq!(peek_batch_frame(&two), Ok(whole), "the first of two");
    // Too short for the length or the magic, or cut short: no batch.
    for cut in [0, 11, 16, good.len() - 1] {
        assert_eq!(peek_batch_frame(&good[..cut]), Ok(None), "cut at {cut}");
    }
    // A legacy message is framed from a 14-byte length on, with its magic.
    let mut legacy = vec![0u8; 26];
    legacy[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4].copy_from_slice(&14i32.to_be_bytes());
    legacy[OFFSET_MAGIC] = 1;
    let legacy_frame = Some(BatchFrame {
        size_bytes: 26,
        magic: 1,
    });
    assert_eq!(peek_batch_frame(&legacy), Ok(legacy_frame));
    let mut short = legacy.clone();
    short[OFFSET_BATCH_LENGTH + 3] = 13;
    assert_eq!(
        peek_batch_frame(&short),
        Err(BatchError::BadLength { batch_length: 13 })
    );
    for magic in [3u8, 0xff] {
        let mut unknown = good.to_vec();
        unknown[OFFSET_MAGIC] = magic;
        assert_eq!(
            peek_batch_frame(&unknown),
            Err(BatchError::UnsupportedMagic(magic as i8))
        );
    }
}

#[test]
fn splitter_yields_each_batch_then_reports_a_cut_tail() {
    let one = sample(b"a");
    let two = sample(b"bb");
    let mut blob = one.to_vec();
    blob.extend_from_slice(&two);
    blob.extend_from_slice(&two[..20]);
    let mut split = BatchSplitter::new(Bytes::from(blob));
    assert_eq!(
        split.next().map(|b| b.map(|b| b.size_bytes())),
        Some(Ok(one.len()))
    );
    assert_eq!(
        split.next().map(|b| b.map(|b| b.size_bytes())),
        Some(Ok(two.len()))
    );
    assert!(matches!(
        split.next(),
        Some(Err(BatchError::Truncated { .. }))
    ));
    assert!(split.next().is_none());
    assert_eq!(split.remaining().len(), 20);
}

#[test]
fn batch_attributes_round_trip_through_the_view() {
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for compression in codecs {
        for timestamp_type in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
            for (transactional, control) in [(false, false), (true, false), (true, true)] {
                let attributes =
                    batch_attributes(compression, timestamp_type, transactional, control);
                let raw = build_raw_batch(&RawBatchFields {
                    attributes,
                    ..RawBatchFields::default()
                });
                let batch = RecordBatch::parse(raw).expect("framing valid");
                assert_eq!(batch.compression(), Ok(compression));
                assert_eq!(batch.timestamp_type(), timestamp_type);
                assert_eq!(
                    (batch.is_transactional(), batch.is_control()),
                    (transactional, control)
                );
            }
        }
    }
}

#[test]
fn unknown_codec_is_an_error_not_a_panic() {
    let raw = build_raw_batch(&RawBatchFields {
        attributes: 7,
        ..RawBatchFields::default()
    });
    let batch = RecordBatch::parse(raw).expect("framing valid");
    assert_eq!(batch.compression(), Err(BatchError::UnknownCompression(7)));
}
