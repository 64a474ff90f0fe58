//! Topic configs taking effect on the log: `segment.ms` across a restart,
//! `min.insync.replicas` refusing acks=all, `flush.messages` fsyncing before the answer,
//! and `compression.type` recompressing batches.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::CreateTopicsRequest;
use runnel_protocol::batch::{Compression, RecordBatch};
use runnel_protocol::builder::{BatchBuilder, BatchFields, NewHeader, NewRecord};
use runnel_tests::records::{batch_at, decode};
use runnel_tests::requests::{creatable_topic, produce};
use runnel_tests::{TestBroker, TestClient};

use super::{create_with, describe, entry, incremental, topic, SET, SOURCE_DYNAMIC_TOPIC, TOPIC};

/// Log segment files of partition 0 of `topic`.
fn segment_files(broker: &TestBroker, topic: &str) -> usize {
    std::fs::read_dir(broker.data_dir().join(format!("{topic}-0")))
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".log")
        })
        .count()
}

/// Produces one record stamped with the wall clock; answers with its offset.
async fn produce_now(client: &mut TestClient, topic: &str) -> i64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let value: &[u8] = b"v";
    let records = batch_at(&[(None, Some(value))], now_ms);
    let response = client.send(produce(topic, 0, records, -1), 9).await;
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0);
    partition.base_offset
}

/// `segment.ms` counts from the active segment's first batch whatever happened since, a
/// restart included (Kafka: the first batch's timestamp; here also never before the
/// segment's file was created). The clock used to start again at each start, so a broker restarted more often than `segment.ms` never rolled a quiet
/// partition by time, and retention, which never deletes the active segment, never
/// deleted its records.
#[tokio::test]
async fn segment_ms_counts_from_the_first_batch_across_a_restart() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let create = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic("aged", 1, &[("segment.ms", "1500")])])
        .with_timeout_ms(30_000);
    assert_eq!(client.send(create, 7).await.topics[0].error_code, 0);
    assert_eq!(produce_now(&mut client, "aged").await, 0);
    // Records stamped long ago (a replay of old data) into a young segment.
    let old = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic("old", 1, &[("segment.ms", "60000")])])
        .with_timeout_ms(30_000);
    assert_eq!(client.send(old, 7).await.topics[0].error_code, 0);
    let replayed = || batch_at(&[(None, Some(b"v".as_slice()))], 1_000);
    let response = client.send(produce("old", 0, replayed(), -1), 9).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    // The old timestamps do not make the young segment old: no roll at each start.
    let response = client.send(produce("old", 0, replayed(), -1), 9).await;
    assert_eq!(response.responses[0].partition_responses[0].base_offset, 1);
    assert_eq!(segment_files(&broker, "old"), 1);
    assert_eq!(segment_files(&broker, "aged"), 1);
    // The segment is older than segment.ms: this append goes to a new one.
    assert_eq!(produce_now(&mut client, "aged").await, 1);
    assert_eq!(segment_files(&broker, "aged"), 2);
    // The new segment is young: the next append joins it.
    assert_eq!(produce_now(&mut client, "aged").await, 2);
    assert_eq!(segment_files(&broker, "aged"), 2);
}

/// Produces one record with `acks`; answers (error code, base offset).
async fn produce_acks(client: &mut TestClient, topic: &str, acks: i16) -> (i16, i64) {
    let value: &[u8] = b"v";
    let records = batch_at(&[(None, Some(value))], 1_000);
    let response = client.send(produce(topic, 0, records, acks), 9).await;
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

/// `min.insync.replicas` is a Kafka topic config (kafka-topics.sh `--config
/// min.insync.replicas=2` is common): it was refused as unknown. This broker is the only
/// replica, so, as Kafka with one replica, an acks=all write to a topic asking for more
/// fails with NOT_ENOUGH_REPLICAS and appends nothing; acks=1 is not affected.
#[tokio::test]
async fn min_insync_replicas_above_one_refuses_acks_all_writes() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    assert_eq!(
        create_with(&mut client, "isr", &[("min.insync.replicas", "2")]).await,
        0
    );
    let result = describe(&mut client, 4, TOPIC, "isr", true).await;
    assert_eq!(
        entry(&result, "min.insync.replicas"),
        ("2".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
    let not_enough = ResponseError::NotEnoughReplicas.code();
    assert_eq!(produce_acks(&mut client, "isr", -1).await, (not_enough, -1));
    assert_eq!(produce_acks(&mut client, "isr", 1).await, (0, 0));
    let ops = [("min.insync.replicas", SET, Some("1"))];
    assert_eq!(incremental(&mut client, 1, TOPIC, "isr", &ops).await, 0);
    assert_eq!(produce_acks(&mut client, "isr", -1).await, (0, 1));
    for bad in ["0", "-1", "x", "2147483648"] {
        let ops = [("min.insync.replicas", SET, Some(bad))];
        let code = incremental(&mut client, 1, TOPIC, "isr", &ops).await;
        assert_eq!(code, ResponseError::InvalidConfig.code(), "{bad}");
    }
}

/// `flush.messages` (Kafka: force an fsync once this many records are not yet on disk;
/// its own docs create a topic with `flush.messages=1`) was refused as unknown. Now an
/// append that leaves that many records unflushed is fsynced before it is answered, acks=1
/// included (acks=0: the fsync is started, nobody waits).
#[tokio::test]
async fn flush_messages_fsyncs_before_an_acks_1_answer() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    // flush.ms of an hour: only flush.messages can make these records durable now.
    let configs = [("flush.messages", "2"), ("flush.ms", "3600000")];
    assert_eq!(create_with(&mut client, "flushed", &configs).await, 0);
    let log = broker.context().logs.partition("flushed", 0).unwrap();
    assert_eq!(produce_acks(&mut client, "flushed", 1).await, (0, 0));
    assert_eq!(
        log.durable_offset(),
        0,
        "one record is below flush.messages"
    );
    assert_eq!(produce_acks(&mut client, "flushed", 1).await, (0, 1));
    assert_eq!(log.durable_offset(), 2, "two unflushed records are fsynced");
    // acks=0 is never answered, but its fsync is started all the same.
    for _ in 0..2 {
        let value: &[u8] = b"v";
        let records = batch_at(&[(None, Some(value))], 1_000);
        client
            .write_request(&produce("flushed", 0, records, 0), 9)
            .await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.durable_offset() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "acks=0 records never fsynced"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for bad in ["0", "-1", "1e9", ""] {
        let ops = [("flush.messages", SET, Some(bad))];
        let code = incremental(&mut client, 1, TOPIC, "flushed", &ops).await;
        assert_eq!(code, ResponseError::InvalidConfig.code(), "{bad:?}");
    }
}

/// Fetches partition 0 of `topic` from offset 0; answers the raw records.
async fn fetch_raw(client: &mut TestClient, topic: &str) -> bytes::Bytes {
    let response = client
        .send(runnel_tests::requests::fetch(topic, 0, 0, 0, 0), 12)
        .await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.records.clone().unwrap()
}

/// An idempotent batch of three records (one with a header) in `compression`, with the
/// leader epoch the broker stores (0), so a batch stored as sent is equal byte for byte.
fn idempotent_batch(compression: Compression) -> bytes::Bytes {
    let fields = BatchFields {
        compression,
        partition_leader_epoch: 0,
        producer_id: 42,
        producer_epoch: 3,
        base_sequence: 0,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    let header = [NewHeader {
        key: b"h",
        value: Some(b"hv"),
    }];
    let values = [
        "first record, long enough to be worth compressing",
        "second",
        "third",
    ];
    for (i, value) in values.into_iter().enumerate() {
        let headers: &[NewHeader<'_>] = if i == 1 { &header } else { &[] };
        let record = NewRecord {
            timestamp: 1_700_000_000_000 + i as i64 * 10,
            key: Some(b"k"),
            value: Some(value.as_bytes()),
            headers,
        };
        builder.push(&record).unwrap();
    }
    builder.finish().unwrap()
}

/// `compression.type` was refused as unknown. Now, as in Kafka, a codec set on the topic
/// makes the broker store batches in that codec: an uncompressed produce is fetched as a
/// zstd batch with the same records, offsets, timestamps, producer id, epoch and sequence;
/// a batch already in zstd is stored byte for byte; `producer` keeps what was sent.
#[tokio::test]
async fn compression_type_recompresses_batches_in_another_codec() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let configs = [
        ("compression.type", "zstd"),
        ("compression.zstd.level", "10"),
    ];
    assert_eq!(create_with(&mut client, "zstd", &configs).await, 0);
    let sent = idempotent_batch(Compression::None);
    let response = client.send(produce("zstd", 0, sent.clone(), -1), 9).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    let stored = fetch_raw(&mut client, "zstd").await;
    let batch = RecordBatch::parse(stored.clone()).unwrap();
    let original = RecordBatch::parse(sent.clone()).unwrap();
    assert_eq!(batch.compression().unwrap(), Compression::Zstd);
    batch.verify_crc().unwrap();
    assert_eq!(batch.size_bytes(), stored.len(), "one batch");
    assert_eq!(
        (
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence()
        ),
        (42, 3, 0)
    );
    assert_eq!(batch.record_count(), original.record_count());
    assert_eq!(batch.last_offset_delta(), original.last_offset_delta());
    assert_eq!(batch.base_timestamp(), original.base_timestamp());
    assert_eq!(batch.max_timestamp(), original.max_timestamp());
    let stored_records = decode(&stored);
    let sent_records = decode(&sent);
    assert_eq!(stored_records, sent_records);
    assert_eq!(stored_records[1].headers.len(), 1);
    // A retry of the same idempotent batch is still recognised as a duplicate.
    let retry = client.send(produce("zstd", 0, sent, -1), 9).await;
    let retried = &retry.responses[0].partition_responses[0];
    assert_eq!((retried.error_code, retried.base_offset), (0, 0));

    // Already zstd: stored exactly as sent (only the base offset is patched, and it is 0).
    assert_eq!(
        create_with(&mut client, "zstd2", &[("compression.type", "zstd")]).await,
        0
    );
    let zstd = idempotent_batch(Compression::Zstd);
    let response = client.send(produce("zstd2", 0, zstd.clone(), -1), 9).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(fetch_raw(&mut client, "zstd2").await, zstd);

    // lz4 from gzip, and uncompressed from snappy.
    for (codec, name, sent_in) in [
        (Compression::Lz4, "lz4", Compression::Gzip),
        (Compression::None, "uncompressed", Compression::Snappy),
    ] {
        assert_eq!(
            create_with(&mut client, name, &[("compression.type", name)]).await,
            0
        );
        let sent = idempotent_batch(sent_in);
        let response = client.send(produce(name, 0, sent.clone(), -1), 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        let stored = fetch_raw(&mut client, name).await;
        let batch = RecordBatch::parse(stored.clone()).unwrap();
        assert_eq!(batch.compression().unwrap(), codec, "{name}");
        assert_eq!(decode(&stored), decode(&sent), "{name}");
    }

    // The default, producer: byte for byte whatever the codec.
    topic(&mut client, "as-sent").await;
    let gzip = idempotent_batch(Compression::Gzip);
    let response = client
        .send(produce("as-sent", 0, gzip.clone(), -1), 9)
        .await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(fetch_raw(&mut client, "as-sent").await, gzip);
    let result = describe(&mut client, 4, TOPIC, "zstd", true).await;
    assert_eq!(
        entry(&result, "compression.type"),
        ("zstd".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
}
