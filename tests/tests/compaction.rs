//! Log compaction end to end: a compacted topic with small segments,
//! keyed zstd and gzip batches produced like a client would, the broker's cleaner left to
//! run on its own, then a fetch from the beginning decoded by kafka-protocol's decoder.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::records::Record;
use runnel_protocol::batch::Compression;
use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};
use runnel_tests::records::decode;
use runnel_tests::requests::{fetch, produce};
use runnel_tests::{TestBroker, TestClient};

/// Longest the test waits for the cleaner (its default backoff is 1 s).
const CLEANER_WAIT: Duration = Duration::from_secs(20);

/// Creates the compacted topic through the broker's own `LogManager`: CreateTopics is still
/// being written on the server branch (it answers with an empty response here). Switch to
/// the wire request once it lands.
fn create_compacted(broker: &TestBroker, topic: &str) {
    let configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "2048"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "86400000"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    broker
        .context()
        .logs
        .create_topic(topic, 1, configs, false)
        .unwrap();
}

/// One keyed batch built with the protocol crate's builder (as `runnel-client` does).
fn keyed_batch(compression: Compression, records: &[(String, Option<String>)]) -> Bytes {
    let fields = BatchFields {
        compression,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    for (key, value) in records {
        let record = NewRecord {
            timestamp: 1_700_000_000_000,
            key: Some(key.as_bytes()),
            value: value.as_deref().map(str::as_bytes),
            headers: &[],
        };
        builder.push(&record).unwrap();
    }
    builder.finish().unwrap()
}

/// Every record of partition 0 from offset 0, fetched batch by batch (a batch comes whole:
/// what lies below the requested offset is skipped).
async fn fetch_records(client: &mut TestClient, topic: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let response = client.send(fetch(topic, 0, offset, 0, 0), 12).await;
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        let records = decode(partition.records.as_ref().unwrap());
        let Some(last) = records.last() else {
            return out;
        };
        let from = offset;
        offset = last.offset + 1;
        out.extend(records.into_iter().filter(|r| r.offset >= from));
        if offset >= partition.high_watermark {
            return out;
        }
    }
}

/// Every record from offset 0 as (offset, key, value).
async fn fetch_all(client: &mut TestClient, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let text = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
    fetch_records(client, topic)
        .await
        .into_iter()
        .map(|r| (r.offset, text(r.key.unwrap()), r.value.map(text)))
        .collect()
}

#[tokio::test]
async fn the_cleaner_keeps_the_latest_value_per_key_with_original_offsets() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_compacted(&broker, "kv");
    let mut model: Vec<(i64, String, Option<String>)> = Vec::new();
    for round in 0..30 {
        let codec = if round % 2 == 0 {
            Compression::Zstd
        } else {
            Compression::Gzip
        };
        let records: Vec<(String, Option<String>)> = (0..4)
            .map(|i| {
                let key = format!("key-{}", (round * 4 + i) % 7);
                let value =
                    (round != 29 || i != 0).then(|| format!("v{round}-{i}-{}", "x".repeat(60)));
                (key, value)
            })
            .collect();
        let response = client
            .send(produce("kv", 0, keyed_batch(codec, &records), -1), 9)
            .await;
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0);
        for (i, (key, value)) in records.into_iter().enumerate() {
            model.push((partition.base_offset + i as i64, key, value));
        }
    }
    assert_eq!(fetch_all(&mut client, "kv").await, model);
    let logs = &broker.context().logs;
    let deadline = Instant::now() + CLEANER_WAIT;
    while logs.cleaner_stats().records_removed_total == 0 {
        assert!(Instant::now() < deadline, "the cleaner never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fetched = fetch_all(&mut client, "kv").await;
    // Every key's latest record (the tombstone included: delete.retention.ms is a day) is
    // there with its original offset, in offset order; nothing that never existed appears.
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for (offset, key, _) in &model {
        latest.insert(key, *offset);
    }
    for (offset, key, _) in &model {
        if latest[key.as_str()] == *offset {
            assert!(
                fetched.iter().any(|f| f.0 == *offset),
                "latest of {key} at {offset} kept"
            );
        }
    }
    assert!(
        fetched.len() < model.len(),
        "superseded records were removed"
    );
    for record in &fetched {
        assert!(model.contains(record), "{record:?} was produced as is");
    }
    assert!(fetched.windows(2).all(|w| w[0].0 < w[1].0), "offset order");
    let stats = logs.cleaner_stats();
    assert_eq!(stats.errors_total, 0);
    assert_eq!(stats.partitions[0].topic, "kv");
}

/// Every record from offset 0 as (offset, key), keyless ones included.
async fn fetch_keys(client: &mut TestClient, topic: &str) -> Vec<(i64, Option<Bytes>)> {
    fetch_records(client, topic)
        .await
        .into_iter()
        .map(|r| (r.offset, r.key))
        .collect()
}

/// Kafka's cleaner drops records without a key from a compacted log (`shouldRetainRecord`
/// counts them invalid). Produce refuses them on compacted topics, but a topic switched
/// from delete to compact keeps the ones written before: the cleaner kept them forever.
#[tokio::test]
async fn keyless_records_from_before_a_switch_to_compact_are_dropped() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let configs: BTreeMap<String, String> = [("segment.bytes", "2048")]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let logs = &broker.context().logs;
    logs.create_topic("switched", 1, configs, false).unwrap();
    let padding = "x".repeat(200);
    // Stamped now, so time retention (delete policy until the switch) leaves them alone.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for _ in 0..10 {
        let value = Some(padding.as_bytes());
        let records = runnel_tests::records::batch_at(&[(None, value), (None, value)], now_ms);
        let response = client.send(produce("switched", 0, records, -1), 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let compact = runnel_tests::requests::alter_configs(
        "switched",
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "2048"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    assert_eq!(client.send(compact, 0).await.responses[0].error_code, 0);
    for round in 0..20 {
        let records: Vec<(String, Option<String>)> = (0..4)
            .map(|i| (format!("key-{i}"), Some(format!("v{round}-{padding}"))))
            .collect();
        let batch = keyed_batch(Compression::Zstd, &records);
        let response = client.send(produce("switched", 0, batch, -1), 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let before = fetch_keys(&mut client, "switched").await;
    assert_eq!(before.iter().filter(|(_, key)| key.is_none()).count(), 20);
    let deadline = Instant::now() + CLEANER_WAIT;
    loop {
        let fetched = fetch_keys(&mut client, "switched").await;
        if fetched.iter().all(|(_, key)| key.is_some()) {
            // The keyed records' latest values are all still there.
            for i in 0..4 {
                let key = format!("key-{i}");
                assert!(fetched
                    .iter()
                    .any(|(_, k)| k.as_deref() == Some(key.as_bytes())));
            }
            break;
        }
        assert!(Instant::now() < deadline, "keyless records never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(logs.cleaner_stats().errors_total, 0);
}
