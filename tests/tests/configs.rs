//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs over TCP at the lowest and
//! highest versions we advertise: alter → describe reflects it, and survives a restart;
//! DescribeConfigs v0's wire format byte by byte.

#![allow(clippy::unwrap_used)]

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::CreateTopicsRequest;
use runnel_protocol::batch::{Compression, RecordBatch};
use runnel_protocol::builder::{BatchBuilder, BatchFields, NewHeader, NewRecord};
use runnel_tests::records::{batch_at, decode};
use runnel_tests::requests::{
    alter_configs, creatable_topic, describe_configs, incremental_alter_configs, metadata, produce,
};
use runnel_tests::wire::{frame, get_nullable_str, get_str, put_str};
use runnel_tests::{TestBroker, TestClient};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

async fn describe(
    client: &mut TestClient,
    version: i16,
    resource_type: i8,
    resource: &str,
    synonyms: bool,
) -> DescribeConfigsResult {
    let request = describe_configs(resource_type, resource, synonyms)
        .with_include_documentation(version >= 3);
    client.send(request, version).await.results.remove(0)
}

/// (value, source) of one key in a describe result.
fn entry(result: &DescribeConfigsResult, key: &str) -> (String, i8) {
    let config = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap();
    (
        config.value.as_ref().unwrap().to_string(),
        config.config_source,
    )
}

async fn alter(
    client: &mut TestClient,
    version: i16,
    topic: &str,
    configs: &[(&str, &str)],
) -> i16 {
    let request = alter_configs(topic, configs);
    client.send(request, version).await.responses[0].error_code
}

async fn incremental(
    client: &mut TestClient,
    version: i16,
    resource_type: i8,
    resource: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> i16 {
    let request = incremental_alter_configs(resource_type, resource, ops);
    let response = client.send(request, version).await;
    assert_eq!(response.responses[0].resource_name.as_str(), resource);
    response.responses[0].error_code
}

async fn topic(client: &mut TestClient, topic: &str) {
    assert_eq!(
        client.send(metadata(Some(&[topic])), 12).await.topics[0].error_code,
        0
    );
}

#[tokio::test]
async fn describe_topic_at_min_and_max_versions() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    for version in [1, 4] {
        let result = describe(&mut client, version, TOPIC, "t", true).await;
        assert_eq!(result.error_code, 0, "v{version}");
        assert!(result.configs.len() >= 14, "v{version}");
        assert_eq!(
            entry(&result, "retention.ms"),
            ("604800000".to_owned(), SOURCE_DEFAULT)
        );
        assert_eq!(
            entry(&result, "cleanup.policy"),
            ("delete".to_owned(), SOURCE_DEFAULT)
        );
        let retention = result
            .configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .unwrap();
        // Kafka's `log.retention.ms` has no built-in default and is not set, so (as
        // `ConfigHelper.configSynonyms` lists them) retention.ms has no synonym.
        assert!(retention.synonyms.is_empty(), "v{version}");
        // Below v3 documentation is not on the wire (the decoder leaves its default "").
        let documented = retention
            .documentation
            .as_ref()
            .is_some_and(|d| !d.is_empty());
        assert_eq!(documented, version >= 3, "v{version}");
    }
    let missing = describe(&mut client, 4, TOPIC, "missing", false).await;
    assert_eq!(
        missing.error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[tokio::test]
async fn describe_broker_defaults_and_foreign_brokers() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let node_id = broker.context().node_id.to_string();
    for version in [1, 4] {
        let result = describe(&mut client, version, BROKER, &node_id, false).await;
        assert_eq!(result.error_code, 0);
        assert_eq!(
            entry(&result, "log.retention.ms"),
            ("604800000".to_owned(), SOURCE_DEFAULT)
        );
        // Topic defaults are dynamic broker configs (KIP-226); the identity is static.
        let read_only = |name: &str| {
            result
                .configs
                .iter()
                .any(|c| c.name.as_str() == name && c.read_only)
        };
        assert!(!read_only("log.retention.ms") && read_only("node.id"));
        let other = describe(&mut client, version, BROKER, "12345", false).await;
        assert_eq!(other.error_code, ResponseError::InvalidRequest.code());
    }
}

#[tokio::test]
async fn alter_replaces_overrides_at_min_and_max_versions() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    assert_eq!(
        alter(
            &mut client,
            0,
            "t",
            &[("retention.ms", "1000"), ("segment.ms", "5000")]
        )
        .await,
        0
    );
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    assert_eq!(
        entry(&result, "retention.ms"),
        ("1000".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(
        entry(&result, "segment.ms"),
        ("5000".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
    // Full replacement: segment.ms goes back to the default.
    assert_eq!(
        alter(&mut client, 2, "t", &[("retention.ms", "2000")]).await,
        0
    );
    let result = describe(&mut client, 1, TOPIC, "t", false).await;
    assert_eq!(
        entry(&result, "retention.ms"),
        ("2000".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(entry(&result, "segment.ms").1, SOURCE_DEFAULT);
    let bad = alter(
        &mut client,
        2,
        "t",
        &[("retention.ms", "3000"), ("no.such", "1")],
    )
    .await;
    assert_eq!(bad, ResponseError::InvalidConfig.code());
    let missing = alter(&mut client, 2, "missing", &[("retention.ms", "1")]).await;
    assert_eq!(missing, ResponseError::UnknownTopicOrPartition.code());
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    assert_eq!(entry(&result, "retention.ms").0, "2000");
}

#[tokio::test]
async fn incremental_ops_at_min_and_max_versions() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    let set = [
        ("retention.ms", SET, Some("1000")),
        ("segment.ms", SET, Some("5000")),
    ];
    assert_eq!(incremental(&mut client, 0, TOPIC, "t", &set).await, 0);
    let ops = [
        ("segment.ms", DELETE, None),
        ("cleanup.policy", APPEND, Some("compact")),
    ];
    assert_eq!(incremental(&mut client, 1, TOPIC, "t", &ops).await, 0);
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    assert_eq!(
        entry(&result, "retention.ms"),
        ("1000".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(entry(&result, "segment.ms").1, SOURCE_DEFAULT);
    assert_eq!(entry(&result, "cleanup.policy").1, SOURCE_DYNAMIC_TOPIC);
    let subtract = [("cleanup.policy", SUBTRACT, Some("delete"))];
    assert_eq!(incremental(&mut client, 1, TOPIC, "t", &subtract).await, 0);
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    assert_eq!(entry(&result, "cleanup.policy").0, "compact");

    let not_a_list = [("retention.ms", APPEND, Some("5"))];
    let code = incremental(&mut client, 1, TOPIC, "t", &not_a_list).await;
    assert_eq!(code, ResponseError::InvalidConfig.code());
    let node_id = broker.context().node_id.to_string();
    // A broker config that is not a topic default cannot change at run time.
    let broker_op = [("num.partitions", SET, Some("5"))];
    let code = incremental(&mut client, 1, BROKER, &node_id, &broker_op).await;
    assert_eq!(code, ResponseError::InvalidRequest.code());
}

#[tokio::test]
async fn altered_configs_survive_a_restart() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    let ops = [("retention.ms", SET, Some("123456"))];
    assert_eq!(incremental(&mut client, 1, TOPIC, "t", &ops).await, 0);
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    assert_eq!(
        entry(&result, "retention.ms"),
        ("123456".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
}

#[tokio::test]
async fn every_advertised_version_round_trips() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    for version in 0..=2 {
        let value = format!("{}", 1_000 + i64::from(version));
        assert_eq!(
            alter(&mut client, version, "t", &[("retention.ms", &value)]).await,
            0
        );
        for describe_version in 1..=4 {
            let result = describe(&mut client, describe_version, TOPIC, "t", true).await;
            assert_eq!(
                entry(&result, "retention.ms"),
                (value.clone(), SOURCE_DYNAMIC_TOPIC)
            );
        }
    }
    for version in 0..=1 {
        let ops = [("retention.ms", DELETE, None)];
        assert_eq!(incremental(&mut client, version, TOPIC, "t", &ops).await, 0);
        let result = describe(&mut client, 4, TOPIC, "t", false).await;
        assert_eq!(entry(&result, "retention.ms").1, SOURCE_DEFAULT);
    }
}

/// Two admins altering different keys of one topic at once must not undo each other: each
/// IncrementalAlterConfigs edits the overrides as they are when it is applied (Kafka's
/// controller serialises them), so the last value each admin set is the one that stays.
/// (Several runtime threads, so the two connections' requests are applied side by side.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_incremental_alters_of_different_keys_lose_nothing() {
    const ROUNDS: u32 = 60;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    let admin = |key: &'static str| {
        let addr = broker.addr;
        tokio::spawn(async move {
            let mut client = TestClient::connect(addr).await;
            for round in 1..=ROUNDS {
                let value = (60_000 + round).to_string();
                let ops = [(key, SET, Some(value.as_str()))];
                assert_eq!(incremental(&mut client, 1, TOPIC, "t", &ops).await, 0);
            }
        })
    };
    let (a, b) = (admin("retention.ms"), admin("segment.ms"));
    a.await.unwrap();
    b.await.unwrap();
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    let last = (60_000 + ROUNDS).to_string();
    assert_eq!(
        entry(&result, "retention.ms"),
        (last.clone(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(entry(&result, "segment.ms"), (last, SOURCE_DYNAMIC_TOPIC));
}

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

/// Creates `name` (one partition) with `configs`; answers the error code.
async fn create_with(client: &mut TestClient, name: &str, configs: &[(&str, &str)]) -> i16 {
    let create = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic(name, 1, configs)])
        .with_timeout_ms(30_000);
    client.send(create, 7).await.topics[0].error_code
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

/// A topic default the operator set (flag, environment or properties file) is reported with
/// Kafka's STATIC_BROKER_CONFIG source, on the topic, in its synonym, on the broker and in
/// CreateTopics' answer; it used to be DEFAULT_CONFIG, which admin clients read as "Kafka's
/// built-in default" (`ConfigEntry.isDefault()`) although the value differs from it.
#[tokio::test]
async fn broker_set_defaults_are_static_broker_config() {
    const SOURCE_STATIC_BROKER: i8 = 4;
    let broker = TestBroker::start_with(|config| {
        config
            .topic_defaults
            .insert("retention.ms".to_owned(), "3600000".to_owned());
    })
    .await;
    let mut client = broker.client().await;
    let create = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic("t", 1, &[])])
        .with_timeout_ms(30_000);
    let created = client.send(create, 7).await.topics.remove(0);
    let configs = created.configs.unwrap();
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.config_source, SOURCE_STATIC_BROKER);
    let result = describe(&mut client, 4, TOPIC, "t", true).await;
    assert_eq!(
        entry(&result, "retention.ms"),
        ("3600000".to_owned(), SOURCE_STATIC_BROKER)
    );
    assert_eq!(entry(&result, "segment.ms").1, SOURCE_DEFAULT);
    let retention = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    // Kafka's order: the operator's setting, then the built-in defaults of every broker
    // config that can set it (only log.retention.hours has one).
    let synonyms: Vec<(&str, &str, i8)> = retention
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref().unwrap_or(""), s.source))
        .collect();
    assert_eq!(
        synonyms,
        vec![
            ("log.retention.ms", "3600000", SOURCE_STATIC_BROKER),
            ("log.retention.hours", "168", SOURCE_DEFAULT)
        ]
    );
    let node_id = broker.context().node_id.to_string();
    let result = describe(&mut client, 4, BROKER, &node_id, true).await;
    assert_eq!(
        entry(&result, "log.retention.ms"),
        ("3600000".to_owned(), SOURCE_STATIC_BROKER)
    );
    assert_eq!(entry(&result, "log.roll.ms").1, SOURCE_DEFAULT);
    // An override still wins and says so.
    let ops = [("retention.ms", SET, Some("1000"))];
    assert_eq!(incremental(&mut client, 1, TOPIC, "t", &ops).await, 0);
    let result = describe(&mut client, 4, TOPIC, "t", true).await;
    assert_eq!(
        entry(&result, "retention.ms"),
        ("1000".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
}

/// DescribeConfigs v0, as sarama before 1.23 sends it for `ListTopics` and `DescribeConfig`
/// (the broker used to close the connection). Built and read byte by byte, so the wire format
/// is checked against Kafka's v0 schema rather than against our codec: no include_synonyms in
/// the request; in the response `is_default` where v1 has the source, and no synonyms.
#[tokio::test]
async fn describe_v0_wire_format_says_is_default_and_has_no_synonyms() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    assert_eq!(
        alter(&mut client, 0, "t", &[("retention.ms", "123456")]).await,
        0
    );

    let mut body = BytesMut::new();
    body.put_i32(1); // resources
    body.put_i8(TOPIC);
    put_str(&mut body, "t");
    body.put_i32(2); // configuration keys
    put_str(&mut body, "retention.ms");
    put_str(&mut body, "cleanup.policy");
    client.send_raw(&frame(32, 0, &body)).await;
    let mut response = client
        .read_frame()
        .await
        .expect("a v0 response, not a closed connection");
    assert_eq!(response.get_i32(), 1, "correlation id");
    assert_eq!(response.get_i32(), 0, "throttle time");
    assert_eq!(response.get_i32(), 1, "results");
    assert_eq!(response.get_i16(), 0, "error code");
    let _error_message = get_nullable_str(&mut response);
    assert_eq!(response.get_i8(), TOPIC);
    assert_eq!(get_str(&mut response), "t");
    let mut configs = Vec::new();
    for _ in 0..response.get_i32() {
        let name = get_str(&mut response);
        let value = get_nullable_str(&mut response);
        let read_only = response.get_u8();
        let is_default = response.get_u8();
        let is_sensitive = response.get_u8();
        configs.push((name, value, read_only, is_default, is_sensitive));
    }
    assert_eq!(response.remaining(), 0, "nothing after the configs at v0");
    configs.sort();
    assert_eq!(
        configs,
        vec![
            (
                "cleanup.policy".to_owned(),
                Some("delete".to_owned()),
                0,
                1,
                0
            ),
            (
                "retention.ms".to_owned(),
                Some("123456".to_owned()),
                0,
                0,
                0
            ),
        ]
    );

    // Our codec reads v0 back the same way: default → DEFAULT source, otherwise UNKNOWN.
    let result = describe(&mut client, 0, TOPIC, "t", false).await;
    assert_eq!(entry(&result, "retention.ms"), ("123456".to_owned(), 0));
    assert_eq!(
        entry(&result, "cleanup.policy"),
        ("delete".to_owned(), SOURCE_DEFAULT)
    );
    assert!(result.configs.iter().all(|c| c.synonyms.is_empty()));
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

/// Every Kafka 4.0 topic config is accepted, validated and described, with its broker
/// synonym where Kafka has one; `remote.storage.enable=true` is refused as tiered storage is
/// not supported.
#[tokio::test]
async fn every_kafka_4_topic_config_is_accepted_and_described() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let configs = [
        ("compression.type", "lz4"),
        ("compression.gzip.level", "5"),
        ("compression.lz4.level", "12"),
        ("compression.zstd.level", "-3"),
        ("segment.jitter.ms", "1000"),
        ("preallocate", "true"),
        ("file.delete.delay.ms", "1"),
        ("unclean.leader.election.enable", "true"),
        ("leader.replication.throttled.replicas", "0:0"),
        ("follower.replication.throttled.replicas", "*"),
        ("local.retention.ms", "1000"),
        ("local.retention.bytes", "1000"),
        ("remote.log.copy.disable", "true"),
        ("remote.log.delete.on.disable", "true"),
        ("message.downconversion.enable", "false"),
        ("remote.storage.enable", "false"),
    ];
    assert_eq!(create_with(&mut client, "all", &configs).await, 0);
    topic(&mut client, "defaults").await;
    let result = describe(&mut client, 4, TOPIC, "all", true).await;
    assert_eq!(result.configs.len(), 34, "Kafka 4.0 has 34 topic configs");
    for (key, value) in configs {
        assert_eq!(
            entry(&result, key),
            (value.to_owned(), SOURCE_DYNAMIC_TOPIC),
            "{key}"
        );
    }
    let defaults = describe(&mut client, 4, TOPIC, "defaults", true).await;
    let synonym_of = |key: &str| {
        let config = defaults
            .configs
            .iter()
            .find(|c| c.name.as_str() == key)
            .unwrap();
        assert_eq!(config.config_source, SOURCE_DEFAULT, "{key}");
        config.synonyms.first().map(|s| s.name.to_string())
    };
    for (key, broker_key, value) in [
        ("compression.type", Some("compression.type"), "producer"),
        // Kafka's log.roll.jitter.ms has no built-in default: no synonym until it is set.
        ("segment.jitter.ms", None, "0"),
        ("preallocate", Some("log.preallocate"), "false"),
        (
            "file.delete.delay.ms",
            Some("log.segment.delete.delay.ms"),
            "60000",
        ),
        ("local.retention.ms", Some("log.local.retention.ms"), "-2"),
        (
            "message.downconversion.enable",
            Some("log.message.downconversion.enable"),
            "true",
        ),
        ("remote.storage.enable", None, "false"),
        ("leader.replication.throttled.replicas", None, ""),
    ] {
        assert_eq!(synonym_of(key).as_deref(), broker_key, "{key}");
        assert_eq!(entry(&defaults, key).0, value, "{key}");
    }
    let code = create_with(&mut client, "tiered", &[("remote.storage.enable", "true")]).await;
    assert_eq!(code, ResponseError::InvalidConfig.code());
    for (key, bad) in [
        ("compression.type", "brotli"),
        ("compression.gzip.level", "0"),
        ("compression.lz4.level", "18"),
        ("compression.zstd.level", "23"),
        ("segment.jitter.ms", "-1"),
        ("preallocate", "maybe"),
        ("leader.replication.throttled.replicas", "x"),
        ("local.retention.ms", "-3"),
        ("remote.storage.enable", "true"),
    ] {
        let ops = [(key, SET, Some(bad))];
        let code = incremental(&mut client, 1, TOPIC, "all", &ops).await;
        assert_eq!(code, ResponseError::InvalidConfig.code(), "{key}={bad}");
    }
    // Throttled replicas are lists: APPEND works on them as on cleanup.policy.
    let ops = [("leader.replication.throttled.replicas", APPEND, Some("1:0"))];
    assert_eq!(incremental(&mut client, 1, TOPIC, "all", &ops).await, 0);
    let result = describe(&mut client, 4, TOPIC, "all", false).await;
    assert_eq!(
        entry(&result, "leader.replication.throttled.replicas").0,
        "0:0,1:0"
    );
}
