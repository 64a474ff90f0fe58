//! rskafka offsets: ListOffsets (earliest, latest, by timestamp), delete_records, and the
//! stream consumer across segment rolls.

use super::*;

/// Earliest / Latest / a timestamp answer as Kafka's ListOffsets; delete_records moves the
/// earliest offset and a fetch below it is out of range.
#[tokio::test]
async fn offsets_and_delete_records_follow_kafka() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    create(&client, "rsk-offsets", 1).await;
    let partition = partition_of(&client, "rsk-offsets", 0).await;
    let offset = |at| bounded("get_offset", partition.get_offset(at));
    assert_eq!(offset(OffsetAt::Earliest).await.unwrap(), 0);
    assert_eq!(offset(OffsetAt::Latest).await.unwrap(), 0);
    let empty_lookup = OffsetAt::Timestamp(at_ms(now_ms()));
    assert_eq!(offset(empty_lookup).await.unwrap(), -1);

    // Timestamps 10 ms apart, one batch each, so a lookup lands between them.
    let base_ms = now_ms() - 60_000;
    for i in 0..4 {
        let call = partition.produce(records("ts", 1, base_ms + i * 10), Compression::Lz4);
        bounded("produce", call).await.unwrap();
    }
    assert_eq!(offset(OffsetAt::Earliest).await.unwrap(), 0);
    assert_eq!(offset(OffsetAt::Latest).await.unwrap(), 4);
    let at = |ms| OffsetAt::Timestamp(at_ms(ms));
    assert_eq!(offset(at(base_ms - 1_000)).await.unwrap(), 0);
    assert_eq!(offset(at(base_ms + 10)).await.unwrap(), 1);
    assert_eq!(offset(at(base_ms + 15)).await.unwrap(), 2);
    // Kafka answers a timestamp after every record with offset -1 and no error.
    assert_eq!(offset(at(base_ms + 1_000)).await.unwrap(), -1);
    // rskafka sends any timestamp as asked: -1 and -2 are latest and earliest; -3 (max
    // timestamp) needs ListOffsets v7, and rskafka's v3 gets UNSUPPORTED_VERSION as from
    // Kafka 4.0.
    assert_eq!(offset(at(-1)).await.unwrap(), 4);
    assert_eq!(offset(at(-2)).await.unwrap(), 0);
    let error = offset(at(-3)).await.unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::UnsupportedVersion);

    bounded("delete_records", partition.delete_records(2, 5_000))
        .await
        .unwrap();
    assert_eq!(offset(OffsetAt::Earliest).await.unwrap(), 2);
    assert_eq!(offset(OffsetAt::Latest).await.unwrap(), 4);
    let call = partition.fetch_records(0, FETCH_BYTES, 100);
    let error = bounded("fetch below start", call).await.unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::OffsetOutOfRange);
    let offsets: Vec<i64> = fetch_all(&partition, 2)
        .await
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, vec![2, 3]);
}

/// Inside one compressed batch a timestamp lookup answers the first record at or after it
/// (Kafka reads into the batch), not the batch's base offset.
#[tokio::test]
async fn timestamp_lookup_lands_inside_a_compressed_batch() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    create(&client, "rsk-ts-batch", 1).await;
    let partition = partition_of(&client, "rsk-ts-batch", 0).await;
    let base_ms = now_ms() - 60_000;
    let call = partition.produce(records("tsb", 5, base_ms), Compression::Gzip);
    bounded("produce", call).await.unwrap();
    let call = partition.produce(records("tsb2", 5, base_ms + 100), Compression::Zstd);
    bounded("produce", call).await.unwrap();
    for (target_ms, expected) in [(0, 0), (2, 2), (4, 4), (50, 5), (103, 8), (105, -1)] {
        let at = OffsetAt::Timestamp(at_ms(base_ms + target_ms));
        let answer = bounded("get_offset", partition.get_offset(at))
            .await
            .unwrap();
        assert_eq!(answer, expected, "timestamp base + {target_ms} ms");
    }
}

/// delete_records past the high watermark is OFFSET_OUT_OF_RANGE, at it empties the log.
#[tokio::test]
async fn delete_records_bounds() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    create(&client, "rsk-delete", 1).await;
    let partition = partition_of(&client, "rsk-delete", 0).await;
    let call = partition.produce(records("d", 3, now_ms()), Compression::Snappy);
    bounded("produce", call).await.unwrap();
    let error = bounded("delete past end", partition.delete_records(4, 5_000))
        .await
        .unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::OffsetOutOfRange);
    // Inside a batch: the start moves to the exact offset, and the fetch skips below it.
    bounded("delete inside batch", partition.delete_records(1, 5_000))
        .await
        .unwrap();
    let earliest = partition.get_offset(OffsetAt::Earliest);
    assert_eq!(bounded("earliest", earliest).await.unwrap(), 1);
    // A timestamp before every record answers the log start, not the batch's base offset.
    let first = partition.get_offset(OffsetAt::Timestamp(at_ms(0)));
    assert_eq!(bounded("timestamp lookup", first).await.unwrap(), 1);
    let offsets: Vec<i64> = fetch_all(&partition, 1)
        .await
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, vec![1, 2]);
    bounded("delete all", partition.delete_records(3, 5_000))
        .await
        .unwrap();
    let earliest = partition.get_offset(OffsetAt::Earliest);
    assert_eq!(bounded("earliest", earliest).await.unwrap(), 3);
    let (empty, high_watermark) = bounded("fetch", partition.fetch_records(3, FETCH_BYTES, 100))
        .await
        .unwrap();
    assert!(empty.is_empty());
    assert_eq!(high_watermark, 3);
}

/// The stream consumer reads a produced range in order, across several segments.
#[tokio::test]
async fn stream_consumer_reads_across_segment_rolls() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    create_with_configs(&broker, "rsk-stream", &[("segment.bytes", "1024")]).await;
    let partition = Arc::new(partition_of(&client, "rsk-stream", 0).await);
    let batches: i64 = 40;
    let base_ms = now_ms() - 60_000;
    for i in 0..batches {
        let batch = records(&format!("s{i}"), 2, base_ms + i);
        let call = partition.produce(batch, Compression::NoCompression);
        assert_eq!(
            bounded("produce", call).await.unwrap(),
            vec![2 * i, 2 * i + 1]
        );
    }
    let segments = std::fs::read_dir(broker.data_dir().join("rsk-stream-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count();
    assert!(segments > 3, "{segments} segments");

    let mut stream = StreamConsumerBuilder::new(Arc::clone(&partition), StartOffset::Earliest)
        .with_max_wait_ms(100)
        .with_max_batch_size(2_000)
        .build();
    for expected in 0..2 * batches {
        let next = bounded("stream next", stream.next()).await;
        let (record, high_watermark) = next.unwrap().unwrap();
        assert_eq!(record.offset, expected);
        assert_eq!(high_watermark, 2 * batches);
        let key = format!("s{}-key-{}", expected / 2, expected % 2);
        assert_eq!(record.record.key, Some(key.into_bytes()));
    }
    // Nothing more: the consumer keeps waiting at the end.
    let idle = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(idle.is_err(), "{idle:?}");

    // Timestamp lookups and delete_records across segments.
    let offset = |at| bounded("get_offset", partition.get_offset(at));
    let at = |ms| OffsetAt::Timestamp(at_ms(ms));
    // Batch i holds offsets 2i and 2i+1 stamped base+i and base+i+1: the first record at
    // base+25 is batch 24's second.
    assert_eq!(offset(at(base_ms + 25)).await.unwrap(), 49);
    assert_eq!(offset(at(base_ms + 40)).await.unwrap(), 79);
    assert_eq!(offset(at(base_ms + 41)).await.unwrap(), -1);
    bounded("delete_records", partition.delete_records(31, 5_000))
        .await
        .unwrap();
    assert_eq!(offset(OffsetAt::Earliest).await.unwrap(), 31);
    assert_eq!(offset(at(base_ms)).await.unwrap(), 31);
    let mut from_start = StreamConsumerBuilder::new(Arc::clone(&partition), StartOffset::Earliest)
        .with_max_wait_ms(100)
        .build();
    let (first, _) = bounded("from start", from_start.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.offset, 31);

    // From the middle of a later segment, and from the end as new records arrive.
    let middle = 2 * batches - 7;
    let mut from_middle =
        StreamConsumerBuilder::new(Arc::clone(&partition), StartOffset::At(middle))
            .with_max_wait_ms(100)
            .build();
    let mut latest = StreamConsumerBuilder::new(Arc::clone(&partition), StartOffset::Latest)
        .with_max_wait_ms(100)
        .build();
    let idle = tokio::time::timeout(Duration::from_millis(300), latest.next()).await;
    assert!(idle.is_err(), "{idle:?}");
    let call = partition.produce(records("late", 2, now_ms()), Compression::Gzip);
    bounded("produce", call).await.unwrap();
    for expected in middle..2 * batches + 2 {
        let (record, _) = bounded("from middle", from_middle.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.offset, expected);
    }
    for expected in 2 * batches..2 * batches + 2 {
        let (record, _) = bounded("latest", latest.next()).await.unwrap().unwrap();
        assert_eq!(record.offset, expected);
    }
}
