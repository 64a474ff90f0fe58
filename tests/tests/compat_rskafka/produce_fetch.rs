//! rskafka produce and fetch: every codec, the end of the log, fetch sizes, odd records,
//! pipelined produces, record-size limits.

use super::*;

/// Each codec: two batches get consecutive offsets; a fetch from 0 gives back every record
/// with its key, value, headers and timestamp.
#[tokio::test]
async fn every_compression_round_trips() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    let codecs = [
        ("none", Compression::NoCompression),
        ("gzip", Compression::Gzip),
        ("lz4", Compression::Lz4),
        ("snappy", Compression::Snappy),
        ("zstd", Compression::Zstd),
    ];
    let base_ms = now_ms() - 60_000;
    for (name, compression) in codecs {
        let topic = format!("rsk-codec-{name}");
        create(&client, &topic, 1).await;
        let partition = partition_of(&client, &topic, 0).await;
        let first = records(name, 5, base_ms);
        let second = records(&format!("{name}-2"), 3, base_ms + 100);
        let call = partition.produce(first.clone(), compression);
        let offsets = bounded("produce", call).await.unwrap();
        assert_eq!(offsets, vec![0, 1, 2, 3, 4], "{name}");
        let call = partition.produce(second.clone(), compression);
        let offsets = bounded("produce", call).await.unwrap();
        assert_eq!(offsets, vec![5, 6, 7], "{name}");

        let fetched = fetch_all(&partition, 0).await;
        let expected: Vec<RecordAndOffset> = first
            .into_iter()
            .chain(second)
            .enumerate()
            .map(|(offset, record)| RecordAndOffset {
                record,
                offset: offset as i64,
            })
            .collect();
        assert_eq!(fetched, expected, "{name}");
    }
}

/// A fetch at the high watermark waits out max_wait and returns nothing; one past it is
/// OFFSET_OUT_OF_RANGE.
#[tokio::test]
async fn fetch_at_the_end_waits_and_past_it_is_out_of_range() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    create(&client, "rsk-end", 1).await;
    let partition = partition_of(&client, "rsk-end", 0).await;
    let call = partition.produce(records("end", 2, now_ms()), Compression::NoCompression);
    bounded("produce", call).await.unwrap();

    let started = Instant::now();
    let call = partition.fetch_records(2, FETCH_BYTES, 500);
    let (empty, high_watermark) = bounded("fetch at end", call).await.unwrap();
    assert!(empty.is_empty(), "{empty:?}");
    assert_eq!(high_watermark, 2);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    let call = partition.fetch_records(3, FETCH_BYTES, 500);
    let error = bounded("fetch past end", call).await.unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::OffsetOutOfRange);
    let call = partition.fetch_records(-1, FETCH_BYTES, 500);
    let error = bounded("fetch at -1", call).await.unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::OffsetOutOfRange);

    // A waiting fetch answers as soon as a produce arrives, long before its max_wait.
    let started = Instant::now();
    let waiting = partition.fetch_records(2, FETCH_BYTES, 10_000);
    let produce = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let call = partition.produce(records("late", 1, now_ms()), Compression::Gzip);
        bounded("produce", call).await.unwrap()
    };
    let ((woken, high_watermark), offsets) = tokio::join!(
        async { bounded("waiting fetch", waiting).await.unwrap() },
        produce
    );
    assert_eq!(offsets, vec![2]);
    assert_eq!(woken.len(), 1);
    assert_eq!(high_watermark, 3);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Fetch sizes: min_bytes above what exists waits max_wait and returns what there is; a
/// max_bytes smaller than the first batch still returns that batch (KIP-74); a fetch from
/// the middle of a batch returns the batch and rskafka drops the records before the offset.
#[tokio::test]
async fn fetch_sizes_follow_kafka() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    create(&client, "rsk-sizes", 1).await;
    let partition = partition_of(&client, "rsk-sizes", 0).await;
    let call = partition.produce(records("z", 6, now_ms()), Compression::NoCompression);
    bounded("produce", call).await.unwrap();
    let call = partition.produce(records("y", 2, now_ms()), Compression::NoCompression);
    bounded("produce", call).await.unwrap();

    let started = Instant::now();
    let call = partition.fetch_records(0, 1_000_000..2_000_000, 600);
    let (all, _) = bounded("fetch min_bytes", call).await.unwrap();
    assert_eq!(all.len(), 8);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );

    let call = partition.fetch_records(0, 1..11, 100);
    let (first, high_watermark) = bounded("fetch tiny max_bytes", call).await.unwrap();
    let offsets: Vec<i64> = first.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(high_watermark, 8);

    // max_bytes 0 (rskafka sends end - 1) still returns the first batch.
    let call = partition.fetch_records(0, 0..1, 100);
    let (first, _) = bounded("fetch max_bytes 0", call).await.unwrap();
    assert_eq!(first.len(), 6);

    let call = partition.fetch_records(4, FETCH_BYTES, 100);
    let (tail, _) = bounded("fetch mid batch", call).await.unwrap();
    let offsets: Vec<i64> = tail.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![4, 5, 6, 7]);

    // max_wait 0 answers at once, even with a min_bytes nothing could meet.
    let started = Instant::now();
    let call = partition.fetch_records(0, 2_000_000_000..2_000_000_001, 0);
    let (all, _) = bounded("fetch max_wait 0", call).await.unwrap();
    assert_eq!(all.len(), 8);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// Records without key or value, with an empty header value, and many produces in flight
/// at once on one connection: offsets are distinct and cover the range.
#[tokio::test]
async fn odd_records_and_pipelined_produces() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    create(&client, "rsk-odd", 3).await;
    let partition = partition_of(&client, "rsk-odd", 2).await;
    let odd = vec![
        Record {
            key: None,
            value: None,
            headers: BTreeMap::new(),
            timestamp: at_ms(now_ms()),
        },
        Record {
            key: Some(Vec::new()),
            value: Some(Vec::new()),
            headers: BTreeMap::from([(String::new(), Vec::new())]),
            timestamp: at_ms(0),
        },
    ];
    let call = partition.produce(odd.clone(), Compression::Zstd);
    assert_eq!(bounded("produce odd", call).await.unwrap(), vec![0, 1]);
    let fetched: Vec<Record> = fetch_all(&partition, 0)
        .await
        .into_iter()
        .map(|r| r.record)
        .collect();
    assert_eq!(fetched, odd);

    let produces = (0..20).map(|i| {
        let compression = if i % 2 == 0 {
            Compression::Lz4
        } else {
            Compression::NoCompression
        };
        partition.produce(records(&format!("p{i}"), 3, now_ms()), compression)
    });
    let answers = bounded("pipelined produces", futures::future::join_all(produces)).await;
    let mut offsets: Vec<i64> = answers.into_iter().flat_map(|a| a.unwrap()).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (2..62).collect::<Vec<i64>>());
    assert_eq!(fetch_all(&partition, 0).await.len(), 62);
}

/// A ~900 KiB record round-trips; a batch over max.message.bytes is MESSAGE_TOO_LARGE.
#[tokio::test]
async fn large_records_round_trip_and_oversized_are_refused() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    create(&client, "rsk-large", 1).await;
    let partition = partition_of(&client, "rsk-large", 0).await;
    let large = Record {
        key: Some(b"large".to_vec()),
        value: Some((0..900 * 1024).map(|i| (i % 251) as u8).collect()),
        headers: BTreeMap::new(),
        timestamp: at_ms(now_ms()),
    };
    let call = partition.produce(vec![large.clone()], Compression::NoCompression);
    assert_eq!(bounded("produce large", call).await.unwrap(), vec![0]);
    let fetched = fetch_all(&partition, 0).await;
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].record, large);

    let oversized = Record {
        value: Some(vec![7; 1_100 * 1024]),
        ..large
    };
    let call = partition.produce(vec![oversized], Compression::NoCompression);
    let error = bounded("produce oversized", call).await.unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::MessageTooLarge);
    let latest = partition.get_offset(OffsetAt::Latest);
    assert_eq!(bounded("get_offset", latest).await.unwrap(), 1);

    // Over 1 MiB before compression, well under it after: accepted, as Kafka checks the
    // batch as sent.
    let compressible = Record {
        key: None,
        value: Some(vec![b'a'; 3 * 1024 * 1024]),
        headers: BTreeMap::new(),
        timestamp: at_ms(now_ms()),
    };
    let call = partition.produce(vec![compressible.clone()], Compression::Gzip);
    assert_eq!(
        bounded("produce compressible", call).await.unwrap(),
        vec![1]
    );
    let fetched = fetch_all(&partition, 1).await;
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].record, compressible);

    // A topic's own max.message.bytes.
    create_with_configs(&broker, "rsk-small-max", &[("max.message.bytes", "2000")]).await;
    let small = partition_of(&client, "rsk-small-max", 0).await;
    let fits = records("fits", 1, now_ms());
    assert_eq!(
        bounded(
            "produce fits",
            small.produce(fits, Compression::NoCompression)
        )
        .await
        .unwrap(),
        vec![0]
    );
    let too_big = vec![Record {
        key: None,
        value: Some(vec![1; 3_000]),
        headers: BTreeMap::new(),
        timestamp: at_ms(now_ms()),
    }];
    let error = bounded(
        "produce too big",
        small.produce(too_big, Compression::NoCompression),
    )
    .await
    .unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::MessageTooLarge);
}

/// Four clients' partition clients produce to one partition at once, every codec in turn,
/// while a stream consumer reads: the offsets handed out are exactly 0..n and the consumer
/// sees every one in order, across segment rolls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_and_a_stream_consumer() {
    const PRODUCERS: usize = 4;
    const BATCHES: usize = 100;
    const RECORDS: usize = 5;
    const TOTAL: i64 = (PRODUCERS * BATCHES * RECORDS) as i64;
    let broker = TestBroker::start().await;
    let client = Arc::new(connect(&broker).await);
    create_with_configs(&broker, "rsk-busy", &[("segment.bytes", "20000")]).await;
    let codecs = [
        Compression::NoCompression,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Snappy,
        Compression::Zstd,
    ];
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let client = Arc::clone(&client);
            tokio::spawn(async move {
                let partition = partition_of(&client, "rsk-busy", 0).await;
                let mut offsets = Vec::new();
                for batch in 0..BATCHES {
                    let records = records(&format!("p{producer}-{batch}"), RECORDS, now_ms());
                    let call = partition.produce(records, codecs[batch % codecs.len()]);
                    offsets.extend(bounded("produce", call).await.unwrap());
                }
                offsets
            })
        })
        .collect();
    let partition = Arc::new(partition_of(&client, "rsk-busy", 0).await);
    let consumer = tokio::spawn(async move {
        let mut stream = StreamConsumerBuilder::new(partition, StartOffset::Earliest)
            .with_max_wait_ms(50)
            .with_max_batch_size(10_000)
            .build();
        for expected in 0..TOTAL {
            let (record, _) = bounded("stream next", stream.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(record.offset, expected);
        }
    });
    let mut offsets = Vec::new();
    for producer in producers {
        offsets.extend(producer.await.unwrap());
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..TOTAL).collect::<Vec<i64>>());
    bounded("consumer", consumer).await.unwrap();
    let segments = std::fs::read_dir(broker.data_dir().join("rsk-busy-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count();
    assert!(segments > 2, "{segments} segments");
}
