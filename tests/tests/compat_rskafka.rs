//! rskafka (InfluxData's minimal pure-Rust client, its own protocol codec) against the real
//! broker over TCP: topic admin, produce with every compression, fetch, list offsets, delete
//! records, the stream consumer, large records. rskafka caps its versions below today's
//! clients (Fetch v4 only, Produce v7, ListOffsets v3, Metadata v4, CreateTopics v5), so this
//! covers request versions the other suites rarely send.
//!
//! Every rskafka call runs under [`CALL_TIMEOUT`] and the client's retries end after
//! [`RETRY_DEADLINE`], so a broker bug fails a test instead of hanging it.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kafka_protocol::messages::CreateTopicsRequest;
use rskafka::chrono::{DateTime, TimeZone, Utc};
use rskafka::client::consumer::{StartOffset, StreamConsumerBuilder};
use rskafka::client::error::{Error, ProtocolError};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::{Record, RecordAndOffset};
use rskafka::BackoffConfig;
use runnel_tests::requests::creatable_topic;
use runnel_tests::TestBroker;

/// Longest any one rskafka call may take before the test fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// rskafka retries some errors forever by default; this bounds them.
const RETRY_DEADLINE: Duration = Duration::from_secs(5);
/// Fetch size range for reads that must return everything produced.
const FETCH_BYTES: std::ops::Range<i32> = 1..4 * 1024 * 1024;

/// Runs `call` under [`CALL_TIMEOUT`].
async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no answer within {CALL_TIMEOUT:?}"),
    }
}

async fn connect(broker: &TestBroker) -> Client {
    let backoff = BackoffConfig {
        deadline: Some(RETRY_DEADLINE),
        ..BackoffConfig::default()
    };
    let build = ClientBuilder::new(vec![broker.addr.to_string()])
        .backoff_config(backoff)
        .build();
    bounded("connect", build).await.unwrap()
}

/// Creates `name` through rskafka's controller client (replication 1).
async fn create(client: &Client, name: &str, partitions: i32) {
    let controller = client.controller_client().unwrap();
    let call = controller.create_topic(name, partitions, 1, 5_000);
    bounded("create_topic", call).await.unwrap();
}

/// Creates `name` (one partition) with topic configs: rskafka's create_topic sends none, so
/// this goes through the raw test client.
async fn create_with_configs(broker: &TestBroker, name: &str, configs: &[(&str, &str)]) {
    let mut raw = broker.client().await;
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic(name, 1, configs)])
        .with_timeout_ms(5_000);
    let response = raw.send(request, 7).await;
    assert_eq!(
        response.topics[0].error_code, 0,
        "create {name} {configs:?}"
    );
}

async fn partition_of(client: &Client, topic: &str, index: i32) -> PartitionClient {
    let call = client.partition_client(topic, index, UnknownTopicHandling::Error);
    bounded("partition_client", call).await.unwrap()
}

/// The Kafka error code behind an rskafka error, or a panic naming what came instead.
fn protocol_error(error: Error) -> ProtocolError {
    match error {
        Error::ServerError { protocol_error, .. } => protocol_error,
        other => panic!("expected a Kafka error code, got {other}"),
    }
}

/// Milliseconds since the epoch as rskafka's timestamp type.
fn at_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

/// `count` records with distinct keys, values, two headers and timestamps `base_ms + i`.
fn records(tag: &str, count: usize, base_ms: i64) -> Vec<Record> {
    (0..count)
        .map(|i| Record {
            key: Some(format!("{tag}-key-{i}").into_bytes()),
            value: Some(format!("{tag}-value-{i}-{}", "x".repeat(i * 7)).into_bytes()),
            headers: BTreeMap::from([
                ("source".to_owned(), b"rskafka".to_vec()),
                ("index".to_owned(), i.to_string().into_bytes()),
            ]),
            timestamp: at_ms(base_ms + i as i64),
        })
        .collect()
}

/// Every record from `offset` to the high watermark, fetched in as many calls as needed.
async fn fetch_all(client: &PartitionClient, offset: i64) -> Vec<RecordAndOffset> {
    let mut next = offset;
    let mut all = Vec::new();
    for _ in 0..1_000 {
        let call = client.fetch_records(next, FETCH_BYTES, 1_000);
        let (batch, high_watermark) = bounded("fetch_records", call).await.unwrap();
        all.extend(batch.into_iter().filter(|r| r.offset >= next));
        next = all.last().map_or(next, |r| r.offset + 1);
        if next >= high_watermark {
            return all;
        }
    }
    panic!("fetch from {offset} did not reach the high watermark");
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    since_epoch.as_millis() as i64
}

// The tests are split by concept; the helpers above serve all of them.
mod offsets;
mod produce_fetch;

/// Create, list, duplicate, delete; bad names and partition counts get Kafka's errors.
#[tokio::test]
async fn topics_are_created_listed_and_deleted() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    create(&client, "rsk-admin", 3).await;
    // rskafka falls back to older ApiVersions versions on an error; it must not need to.
    let (_, metrics) = broker.http_get("/metrics").await;
    let api_versions_errors = "runnel_request_errors_total{api=\"ApiVersions\"";
    assert!(!metrics.contains(api_versions_errors), "{metrics}");
    let topics = bounded("list_topics", client.list_topics()).await.unwrap();
    let listed = topics.iter().find(|t| t.name == "rsk-admin").unwrap();
    let mut partitions: Vec<i32> = listed.partitions.iter().copied().collect();
    partitions.sort_unstable();
    assert_eq!(partitions, vec![0, 1, 2]);

    let controller = client.controller_client().unwrap();
    let again = controller.create_topic("rsk-admin", 3, 1, 5_000);
    let error = bounded("duplicate create", again).await.unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::TopicAlreadyExists);

    let bad_name = controller.create_topic("bad name!", 1, 1, 5_000);
    let error = bounded("bad name", bad_name).await.unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::InvalidTopicException);
    let zero = controller.create_topic("rsk-zero", 0, 1, 5_000);
    let error = bounded("0 partitions", zero).await.unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::InvalidPartitions);
    let negative = controller.create_topic("rsk-negative", -5, 1, 5_000);
    let error = bounded("-5 partitions", negative).await.unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::InvalidPartitions);
    let long_name = "r".repeat(250);
    let error = bounded(
        "250-char name",
        controller.create_topic(long_name, 1, 1, 5_000),
    )
    .await
    .unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::InvalidTopicException);
    for replicas in [0, 3] {
        let call = controller.create_topic("rsk-replicas", 1, replicas, 5_000);
        let error = bounded("replication factor", call).await.unwrap_err();
        assert_eq!(
            protocol_error(error),
            ProtocolError::InvalidReplicationFactor,
            "{replicas} replicas"
        );
    }
    // -1 partitions and -1 replicas (CreateTopics v4+): the broker's defaults.
    bounded(
        "defaults",
        controller.create_topic("rsk-defaults", -1, -1, 5_000),
    )
    .await
    .unwrap();
    let topics = bounded("list_topics", client.list_topics()).await.unwrap();
    let defaults = topics.iter().find(|t| t.name == "rsk-defaults").unwrap();
    assert_eq!(defaults.partitions.len(), 1);

    bounded("delete", controller.delete_topic("rsk-admin", 5_000))
        .await
        .unwrap();
    let topics = bounded("list_topics", client.list_topics()).await.unwrap();
    assert!(topics.iter().all(|t| t.name != "rsk-admin"), "{topics:?}");
    let error = bounded("delete again", controller.delete_topic("rsk-admin", 5_000))
        .await
        .unwrap_err();
    assert_eq!(
        protocol_error(error),
        ProtocolError::UnknownTopicOrPartition
    );
}

/// A topic that does not exist (auto-create off) is UNKNOWN_TOPIC_OR_PARTITION, as is a
/// delete_records on it. A partition past the topic's count never reaches the broker:
/// rskafka finds it missing from the Metadata answer (which, as Kafka's, lists only the
/// partitions that exist) and reports its own InvalidResponse, so only that is checked.
#[tokio::test]
async fn unknown_topics_and_partitions_are_errors() {
    let broker = TestBroker::start_with(|config| config.auto_create_topics = false).await;
    let client = connect(&broker).await;
    create(&client, "rsk-known", 1).await;
    let call = client.partition_client("rsk-absent", 0, UnknownTopicHandling::Error);
    let error = bounded("partition_client", call).await.unwrap_err();
    assert_eq!(
        protocol_error(error),
        ProtocolError::UnknownTopicOrPartition
    );

    let call = client.partition_client("rsk-known", 1, UnknownTopicHandling::Error);
    match bounded("partition_client", call).await {
        Err(Error::InvalidResponse(message)) => assert!(message.contains("partition 1")),
        other => panic!("expected rskafka's InvalidResponse, got {:?}", other.err()),
    }

    // The topic vanishes after the partition client found it: the broker's own answers.
    let partition = partition_of(&client, "rsk-known", 0).await;
    let controller = client.controller_client().unwrap();
    bounded("delete", controller.delete_topic("rsk-known", 5_000))
        .await
        .unwrap();
    let error = bounded(
        "produce",
        partition.produce(records("gone", 1, 0), Compression::NoCompression),
    )
    .await
    .unwrap_err();
    assert_eq!(
        protocol_error(error),
        ProtocolError::UnknownTopicOrPartition
    );
    let error = bounded("fetch", partition.fetch_records(0, FETCH_BYTES, 100))
        .await
        .unwrap_err();
    assert_eq!(
        protocol_error(error),
        ProtocolError::UnknownTopicOrPartition
    );
    let error = bounded("get_offset", partition.get_offset(OffsetAt::Latest))
        .await
        .unwrap_err();
    assert_eq!(
        protocol_error(error),
        ProtocolError::UnknownTopicOrPartition
    );
    let error = bounded("delete_records", partition.delete_records(0, 1_000))
        .await
        .unwrap_err();
    assert_eq!(
        protocol_error(error),
        ProtocolError::UnknownTopicOrPartition
    );
}

/// Topic configs rskafka cannot set but meets: a compacted topic refuses a keyless record
/// with INVALID_RECORD; on a LogAppendTime topic a timestamp lookup uses the broker's append
/// time; delete_records at -1 (Kafka's "high watermark") empties the partition.
#[tokio::test]
async fn topic_configs_shape_the_answers() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    create_with_configs(&broker, "rsk-compact", &[("cleanup.policy", "compact")]).await;
    let compact = partition_of(&client, "rsk-compact", 0).await;
    let keyless = vec![Record {
        key: None,
        value: Some(b"v".to_vec()),
        headers: BTreeMap::new(),
        timestamp: at_ms(now_ms()),
    }];
    let call = compact.produce(keyless, Compression::NoCompression);
    let error = bounded("keyless on compacted", call).await.unwrap_err();
    assert_eq!(protocol_error(error), ProtocolError::InvalidRecord);

    let appended = &[("message.timestamp.type", "LogAppendTime")];
    create_with_configs(&broker, "rsk-append", appended).await;
    let append = partition_of(&client, "rsk-append", 0).await;
    let before_ms = now_ms();
    let call = append.produce(records("a", 3, 0), Compression::NoCompression);
    assert_eq!(bounded("produce", call).await.unwrap(), vec![0, 1, 2]);
    let call = append.produce(records("b", 3, 0), Compression::Gzip);
    assert_eq!(bounded("produce", call).await.unwrap(), vec![3, 4, 5]);
    let offset = |ms| {
        bounded(
            "get_offset",
            append.get_offset(OffsetAt::Timestamp(at_ms(ms))),
        )
    };
    // Stamped 0..2 by the producer, but appended now: every record is at or after 1000.
    assert_eq!(offset(1_000).await.unwrap(), 0);
    assert_eq!(offset(before_ms - 1_000).await.unwrap(), 0);
    assert_eq!(offset(now_ms() + 3_600_000).await.unwrap(), -1);
    // Not checked: the fetched records' timestamps. rskafka reads first_timestamp + delta
    // and ignores the batch's LogAppendTime attribute (Kafka, too, leaves those fields and
    // sets only max_timestamp), so it reports the producer's 0, 1, 2.

    bounded("delete to -1", append.delete_records(-1, 5_000))
        .await
        .unwrap();
    let earliest = append.get_offset(OffsetAt::Earliest);
    assert_eq!(bounded("earliest", earliest).await.unwrap(), 6);
}

/// A partition client rides over a broker restart (same address): it reconnects, and the
/// records from before are still there.
#[tokio::test]
async fn reconnects_across_a_broker_restart() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let broker = TestBroker::start_with(|c| c.listen = format!("127.0.0.1:{port}")).await;
    let client = connect(&broker).await;
    create(&client, "rsk-restart", 1).await;
    let partition = partition_of(&client, "rsk-restart", 0).await;
    let call = partition.produce(records("before", 3, now_ms()), Compression::Zstd);
    assert_eq!(bounded("produce", call).await.unwrap(), vec![0, 1, 2]);
    let _broker = broker.restart().await;
    let call = partition.produce(records("after", 3, now_ms()), Compression::Zstd);
    assert_eq!(bounded("produce", call).await.unwrap(), vec![3, 4, 5]);
    let keys: Vec<Vec<u8>> = fetch_all(&partition, 0)
        .await
        .into_iter()
        .filter_map(|r| r.record.key)
        .collect();
    assert_eq!(keys.len(), 6);
    assert_eq!(keys[0], b"before-key-0");
    assert_eq!(keys[5], b"after-key-2");
}

/// A topic deleted and created again starts empty at offset 0, before and after a restart,
/// whatever the old one's log start was; a missing topic is auto-created (on by default)
/// with the default partition count.
#[tokio::test]
async fn a_recreated_topic_starts_empty() {
    let broker = TestBroker::start().await;
    let client = connect(&broker).await;
    create_with_configs(&broker, "rsk-again", &[("segment.bytes", "1024")]).await;
    let old = partition_of(&client, "rsk-again", 0).await;
    for i in 0..20 {
        let call = old.produce(
            records(&format!("old{i}"), 2, now_ms()),
            Compression::Snappy,
        );
        bounded("produce", call).await.unwrap();
    }
    bounded("delete_records", old.delete_records(25, 5_000))
        .await
        .unwrap();
    let controller = client.controller_client().unwrap();
    bounded("delete", controller.delete_topic("rsk-again", 5_000))
        .await
        .unwrap();
    create(&client, "rsk-again", 1).await;
    let fresh = partition_of(&client, "rsk-again", 0).await;
    let offset = |at| bounded("get_offset", fresh.get_offset(at));
    assert_eq!(offset(OffsetAt::Earliest).await.unwrap(), 0);
    assert_eq!(offset(OffsetAt::Latest).await.unwrap(), 0);
    let call = fresh.produce(records("new", 2, now_ms()), Compression::NoCompression);
    assert_eq!(bounded("produce", call).await.unwrap(), vec![0, 1]);
    let fetched = fetch_all(&fresh, 0).await;
    assert_eq!(fetched.len(), 2);
    assert_eq!(fetched[0].record.key.as_deref(), Some(&b"new-key-0"[..]));

    let broker = broker.restart().await;
    let client = connect(&broker).await;
    let fresh = partition_of(&client, "rsk-again", 0).await;
    let offset = |at| bounded("get_offset", fresh.get_offset(at));
    assert_eq!(offset(OffsetAt::Earliest).await.unwrap(), 0);
    assert_eq!(offset(OffsetAt::Latest).await.unwrap(), 2);

    let auto = partition_of(&client, "rsk-auto", 0).await;
    let call = auto.produce(records("auto", 1, now_ms()), Compression::NoCompression);
    assert_eq!(bounded("produce", call).await.unwrap(), vec![0]);
    let topics = bounded("list_topics", client.list_topics()).await.unwrap();
    let created = topics.iter().find(|t| t.name == "rsk-auto").unwrap();
    assert_eq!(created.partitions.len(), 1);
}
