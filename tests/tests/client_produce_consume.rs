//! runnel-client producer → consumer (assign mode) against an in-process broker: every
//! codec, keys land where the Java client would put them, headers and timestamps survive,
//! seek / pause / resume / commit behave.

use std::collections::BTreeMap;
use std::time::Duration;

use runnel_client::admin::NewTopic;
use runnel_client::partitioner::partition_for_key;
use runnel_client::{
    Acks, Admin, ClientConfig, Compression, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset,
    Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use runnel_tests::TestBroker;

const WAIT: Duration = Duration::from_secs(20);

async fn consume_n(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while out.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} records",
            out.len()
        );
        out.extend(
            consumer
                .poll(Duration::from_millis(500))
                .await
                .expect("poll"),
        );
    }
    out
}

async fn create_topic(addr: &str, name: &str, partitions: i32) {
    let admin = Admin::new(ClientConfig::new(addr)).await.expect("admin");
    admin
        .create_topics(&[NewTopic::new(name, partitions)])
        .await
        .expect("create");
}

fn consumer_config(addr: &str) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(addr);
    config.auto_offset_reset = OffsetReset::Earliest;
    config.fetch_wait_ms_max = 100;
    config
}

#[tokio::test]
async fn every_codec_round_trips_with_keys_headers_and_timestamps() {
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    create_topic(&addr, "codecs", 3).await;
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut expected = Vec::new();
    for (c, codec) in codecs.into_iter().enumerate() {
        let mut config = ProducerConfig::new(&addr);
        config.compression = codec;
        config.acks = if c % 2 == 0 { Acks::All } else { Acks::Leader };
        let producer = Producer::new(config).await.expect("producer");
        let mut deliveries = Vec::new();
        for i in 0..40 {
            let key = format!("key-{c}-{i}");
            let record = ProducerRecord::new("codecs", format!("value-{c}-{i}"))
                .with_key(key.clone())
                .with_header("codec", format!("{codec:?}"))
                .with_timestamp(1_700_000_000_000 + i);
            deliveries.push((key, producer.send(record).await.expect("send")));
        }
        producer.flush().await.expect("flush");
        for (key, delivery) in deliveries {
            let metadata = delivery.await.expect("delivered");
            assert_eq!(
                metadata.partition,
                partition_for_key(key.as_bytes(), 3),
                "murmur2 partition"
            );
            assert!(metadata.offset >= 0);
            expected.push(key);
        }
    }
    let mut consumer = Consumer::new(consumer_config(&addr))
        .await
        .expect("consumer");
    consumer
        .assign(
            &(0..3)
                .map(|p| TopicPartition::new("codecs", p))
                .collect::<Vec<_>>(),
        )
        .expect("assign");
    let records = consume_n(&mut consumer, expected.len()).await;
    let mut keys: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned())
        .collect();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected);
    for record in &records {
        let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
        let value =
            String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned();
        assert_eq!(value, key.replace("key", "value"));
        assert_eq!(record.headers.len(), 1);
        assert!(
            record.timestamp_ms >= 1_700_000_000_000 && record.timestamp_ms < 1_700_000_000_040
        );
    }
}

#[tokio::test]
async fn acks_zero_delivers_without_offsets() {
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    let mut config = ProducerConfig::new(&addr);
    config.acks = Acks::None;
    let producer = Producer::new(config).await.expect("producer");
    let delivery = producer
        .send(ProducerRecord::new("acks0", "x").with_partition(0))
        .await
        .expect("send");
    producer.flush().await.expect("flush");
    assert_eq!(delivery.await.expect("delivered").offset, -1);
    let mut consumer = Consumer::new(consumer_config(&addr))
        .await
        .expect("consumer");
    consumer
        .assign(&[TopicPartition::new("acks0", 0)])
        .expect("assign");
    assert_eq!(
        consume_n(&mut consumer, 1).await[0].value.as_deref(),
        Some(&b"x"[..])
    );
}

/// A task that produces in a tight loop (never waiting on a delivery, memory to spare)
/// still gets its batches sent as they fill: `send` yields once per batch so the sender —
/// and here, on one thread, the broker too — can run. Before, nothing went out until the
/// buffer was full.
#[tokio::test]
async fn a_tight_producing_loop_hands_each_full_batch_to_the_sender() {
    const BUFFER_BYTES: usize = 64 << 20;
    const VALUE_BYTES: usize = 100;
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    create_topic(&addr, "tight-loop", 1).await;
    let mut config = ProducerConfig::new(&addr);
    // The leader's answer, not an fsync: this is about scheduling, not the disk.
    config.acks = Acks::Leader;
    config.batch_size_bytes = 16 * 1024;
    config.buffer_memory_bytes = BUFFER_BYTES;
    let producer = Producer::new(config).await.expect("producer");
    let value = bytes::Bytes::from(vec![b'v'; VALUE_BYTES]);
    // Well below what fills the buffer (each record holds more than its value).
    let records_max = BUFFER_BYTES / VALUE_BYTES / 2;
    let first = producer
        .send(ProducerRecord::new("tight-loop", value.clone()))
        .await
        .expect("send");
    let mut sent = 1;
    while first.completed_at().is_none() && sent < records_max {
        producer
            .send(ProducerRecord::new("tight-loop", value.clone()))
            .await
            .expect("send");
        sent += 1;
    }
    assert!(
        first.completed_at().is_some(),
        "the first batch was still unacknowledged after {sent} records"
    );
    assert_eq!(first.await.expect("delivered").offset, 0);
    producer.flush().await.expect("flush");
}

/// Several batches of one partition in flight at once (`in_flight_per_partition_max` 5,
/// small batches, so a partition has many sealed batches waiting): with no retry, every
/// record lands at the offset of its place in the sending order, and reads back in it. On
/// two runtime threads, so that the requests' tasks race for the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_batches_of_a_partition_in_flight_keep_the_sending_order() {
    const RECORDS: usize = 3_000;
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    create_topic(&addr, "in-flight", 1).await;
    let mut config = ProducerConfig::new(&addr);
    config.acks = Acks::Leader;
    config.batch_size_bytes = 2 * 1024;
    config.linger_ms = 0;
    config.in_flight_per_partition_max = Some(5);
    let producer = Producer::new(config).await.expect("producer");
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let record = ProducerRecord::new("in-flight", format!("{i:06}-{}", "x".repeat(100)));
        deliveries.push(producer.send(record).await.expect("send"));
    }
    producer.flush().await.expect("flush");
    for (i, delivery) in deliveries.into_iter().enumerate() {
        assert_eq!(delivery.await.expect("delivered").offset, i as i64);
    }
    let mut consumer = Consumer::new(consumer_config(&addr))
        .await
        .expect("consumer");
    consumer
        .assign(&[TopicPartition::new("in-flight", 0)])
        .expect("assign");
    let records = consume_n(&mut consumer, RECORDS).await;
    for (i, record) in records.iter().enumerate() {
        let value = record.value.as_deref().expect("a value");
        assert!(
            value.starts_with(format!("{i:06}-").as_bytes()),
            "record {i} out of order"
        );
    }
}

/// `current_lag` is the last fetch answer's high watermark minus the position: unknown
/// before the first answer, then what is left to read.
#[tokio::test]
async fn current_lag_is_what_is_left_after_the_position() {
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    create_topic(&addr, "lag", 1).await;
    let producer = Producer::new(ProducerConfig::new(&addr))
        .await
        .expect("producer");
    for i in 0..30 {
        producer
            .send(ProducerRecord::new("lag", format!("{i}")))
            .await
            .expect("send");
    }
    producer.flush().await.expect("flush");
    let mut config = consumer_config(&addr);
    config.max_poll_records = 10;
    let mut consumer = Consumer::new(config).await.expect("consumer");
    let tp = TopicPartition::new("lag", 0);
    consumer.assign(std::slice::from_ref(&tp)).expect("assign");
    assert_eq!(consumer.current_lag(&tp), None, "no fetch answered yet");
    let first = consume_n(&mut consumer, 10).await;
    assert_eq!(first.len(), 10);
    assert_eq!(consumer.position(&tp), Some(10));
    assert_eq!(consumer.current_lag(&tp), Some(20));
    consume_n(&mut consumer, 20).await;
    assert_eq!(consumer.current_lag(&tp), Some(0));
    let other = TopicPartition::new("lag", 7);
    assert_eq!(consumer.current_lag(&other), None, "not assigned");
}

#[tokio::test]
async fn seek_pause_resume_and_commit() {
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    create_topic(&addr, "seek", 2).await;
    let producer = Producer::new(ProducerConfig::new(&addr))
        .await
        .expect("producer");
    for i in 0..20i64 {
        for p in 0..2 {
            let record = ProducerRecord::new("seek", format!("{i}"))
                .with_partition(p)
                .with_timestamp(1_000 + i * 10);
            producer.send(record).await.expect("send");
        }
    }
    producer.flush().await.expect("flush");
    let mut config = consumer_config(&addr);
    config.group_id = Some("seekers".to_owned());
    config.auto_commit = false;
    let mut consumer = Consumer::new(config.clone()).await.expect("consumer");
    let p0 = TopicPartition::new("seek", 0);
    let p1 = TopicPartition::new("seek", 1);
    consumer.assign(&[p0.clone(), p1.clone()]).expect("assign");

    consumer.pause(std::slice::from_ref(&p1));
    let records = consume_n(&mut consumer, 20).await;
    assert!(
        records.iter().all(|r| r.partition == 0),
        "paused partition returns nothing"
    );
    assert!(consumer
        .poll(Duration::from_millis(300))
        .await
        .expect("poll")
        .is_empty());
    consumer.resume(std::slice::from_ref(&p1));
    let records = consume_n(&mut consumer, 20).await;
    assert!(records.iter().all(|r| r.partition == 1));

    consumer.seek(&p0, 15).expect("seek");
    let records = consume_n(&mut consumer, 5).await;
    assert_eq!(records[0].offset, 15);
    consumer
        .seek_to_timestamp(std::slice::from_ref(&p0), 1_000 + 7 * 10)
        .await
        .expect("seek ts");
    assert_eq!(consume_n(&mut consumer, 1).await[0].offset, 7);
    consumer
        .seek_to_beginning(std::slice::from_ref(&p0))
        .await
        .expect("seek begin");
    assert_eq!(consume_n(&mut consumer, 1).await[0].offset, 0);
    consumer
        .seek_to_end(std::slice::from_ref(&p0))
        .await
        .expect("seek end");
    assert_eq!(consumer.position(&p0), Some(20));

    let offsets = BTreeMap::from([(p0.clone(), 12), (p1.clone(), 4)]);
    consumer.commit_offsets(&offsets).await.expect("commit");
    assert_eq!(
        consumer
            .committed(&[p0.clone(), p1.clone()])
            .await
            .expect("committed"),
        offsets
    );
    // A new consumer in the group starts from the commits.
    let mut second = Consumer::new(config).await.expect("consumer");
    second.assign(std::slice::from_ref(&p0)).expect("assign");
    assert_eq!(consume_n(&mut second, 1).await[0].offset, 12);
    let handle = second.commit_async().await.expect("commit async");
    handle.await.expect("joined").expect("committed");
    let committed = second
        .committed(std::slice::from_ref(&p0))
        .await
        .expect("committed");
    assert!(committed[&p0] >= 13);
}

/// A consumer that lags far behind the broker's cached tail (`--log-page-cache-bytes` of
/// 64 KiB here, so each partition keeps the 64 KiB floor) reads from disk while the broker drops the pages behind it: every record
/// comes back, in order, byte for byte, while a producer keeps appending.
#[tokio::test]
async fn a_consumer_far_behind_the_cached_tail_reads_everything_back() {
    let dir = tempfile::tempdir().expect("tempdir"); // a real disk: tmpfs keeps its pages
    let broker = TestBroker::start_in(dir.path(), |config| {
        config.page_cache_bytes = 64 * 1024;
    })
    .await;
    let addr = broker.addr.to_string();
    create_topic(&addr, "lagging", 2).await;
    let value = |i: usize| format!("{i:08}-{}", "x".repeat(1000));
    const RECORDS: usize = 8_000; // ~8 MiB: 64 times the tail per partition
    let producer = Producer::new(ProducerConfig::new(&addr))
        .await
        .expect("producer");
    for i in 0..RECORDS {
        let record = ProducerRecord::new("lagging", value(i)).with_partition((i % 2) as i32);
        producer.send(record).await.expect("send");
    }
    producer.flush().await.expect("flush");
    // Give the flusher a few ticks to write back and drop what lies behind the tail.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut consumer = Consumer::new(consumer_config(&addr))
        .await
        .expect("consumer");
    consumer
        .assign(&[
            TopicPartition::new("lagging", 0),
            TopicPartition::new("lagging", 1),
        ])
        .expect("assign");
    // More appends while the lagging consumer reads.
    for i in RECORDS..RECORDS + 200 {
        let record = ProducerRecord::new("lagging", value(i)).with_partition((i % 2) as i32);
        producer.send(record).await.expect("send");
    }
    producer.flush().await.expect("flush");
    let records = consume_n(&mut consumer, RECORDS + 200).await;
    let mut next = [0usize, 1];
    for record in &records {
        let slot = &mut next[record.partition as usize];
        assert_eq!(
            record.offset,
            (*slot / 2) as i64,
            "partition {}",
            record.partition
        );
        assert_eq!(record.value.as_deref(), Some(value(*slot).as_bytes()));
        *slot += 2;
    }
    assert_eq!(next, [RECORDS + 200, RECORDS + 201]);
    // What it did shows on /metrics: the floor share, and megabytes advised out.
    let (status, page) = broker.http_get("/metrics").await;
    assert_eq!(status, 200);
    let series = |name: &str| -> f64 {
        page.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    assert_eq!(series("runnel_log_page_cache_tail_bytes"), 65_536.0);
    let dropped = series("runnel_log_page_cache_dropped_bytes_total");
    assert!(
        dropped > 4e6,
        "only {dropped} bytes dropped of ~8 MB behind the tails"
    );
}

/// `n` records, values `0..n`, to partition 0 of a new one-partition topic `topic`.
async fn topic_of_records(addr: &str, topic: &str, n: i64) {
    create_topic(addr, topic, 1).await;
    let producer = Producer::new(ProducerConfig::new(addr))
        .await
        .expect("producer");
    for i in 0..n {
        let record = ProducerRecord::new(topic, format!("{i}")).with_partition(0);
        producer.send(record).await.expect("send");
    }
    producer.flush().await.expect("flush");
}

/// `recv` polls a whole batch and holds back what it has not handed out yet: `commit`,
/// `commit_async` and `position` count only the records the application received.
#[tokio::test]
async fn commit_after_recv_covers_only_the_records_received() {
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    topic_of_records(&addr, "received", 10).await;
    let mut config = consumer_config(&addr);
    config.group_id = Some("receivers".to_owned());
    config.auto_commit = false;
    let mut consumer = Consumer::new(config).await.expect("consumer");
    let p0 = TopicPartition::new("received", 0);
    consumer.assign(std::slice::from_ref(&p0)).expect("assign");

    assert_eq!(consumer.recv().await.expect("recv").offset, 0);
    assert_eq!(consumer.position(&p0), Some(1));
    consumer.commit().await.expect("commit");
    let committed = consumer.committed(std::slice::from_ref(&p0)).await;
    assert_eq!(committed.expect("committed")[&p0], 1);

    assert_eq!(consumer.recv().await.expect("recv").offset, 1);
    let handle = consumer.commit_async().await.expect("commit async");
    handle.await.expect("joined").expect("committed");
    let committed = consumer.committed(std::slice::from_ref(&p0)).await;
    assert_eq!(committed.expect("committed")[&p0], 2);
}

/// With auto-commit, `close` after `recv` commits only what was received: the next member
/// of the group starts at the first record the last one never saw.
#[tokio::test]
async fn close_after_recv_resumes_at_the_first_record_not_received() {
    let broker = TestBroker::start_with(|c| c.groups.initial_rebalance_delay_ms = 100).await;
    let addr = broker.addr.to_string();
    topic_of_records(&addr, "received", 10).await;
    let mut config = consumer_config(&addr);
    config.group_id = Some("receivers".to_owned());
    config.auto_commit = true;
    let mut consumer = Consumer::new(config.clone()).await.expect("consumer");
    consumer.subscribe(&["received"]).expect("subscribe");
    let mut offsets = Vec::new();
    for _ in 0..3 {
        let record = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .expect("a record");
        offsets.push(record.expect("recv").offset);
    }
    assert_eq!(offsets, vec![0, 1, 2]);
    consumer.close().await.expect("close");

    let mut next = Consumer::new(config).await.expect("consumer");
    next.subscribe(&["received"]).expect("subscribe");
    let record = tokio::time::timeout(WAIT, next.recv())
        .await
        .expect("a record");
    assert_eq!(record.expect("recv").offset, 3);
    next.close().await.expect("close");
}
