//! What DescribeConfigs reports: topic and broker configs at the lowest and highest
//! versions, operator-set defaults as STATIC_BROKER_CONFIG, v0's wire format byte by byte,
//! and every Kafka 4.0 topic config accepted and described.

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::CreateTopicsRequest;
use runnel_tests::requests::creatable_topic;
use runnel_tests::wire::{frame, get_nullable_str, get_str, put_str};
use runnel_tests::TestBroker;

use super::{
    alter, create_with, describe, entry, incremental, topic, APPEND, BROKER, SET, SOURCE_DEFAULT,
    SOURCE_DYNAMIC_TOPIC, TOPIC,
};

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
        // As Kafka: every unit of the time settings, `log.retention.ms` null (no built-in
        // default, not set), the week under `log.retention.hours`.
        let retention_ms = (result.configs.iter())
            .find(|c| c.name.as_str() == "log.retention.ms")
            .unwrap();
        assert_eq!(retention_ms.value, None);
        assert_eq!(retention_ms.config_source, SOURCE_DEFAULT);
        assert_eq!(
            entry(&result, "log.retention.hours"),
            ("168".to_owned(), SOURCE_DEFAULT)
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

/// A topic default the operator set (flag, environment or properties file) is reported with
/// Kafka's STATIC_BROKER_CONFIG source, on the topic, in its synonym, on the broker and in
/// CreateTopics' answer; it used to be DEFAULT_CONFIG, which admin clients read as "Kafka's
/// built-in default" (`ConfigEntry.isDefault()`) although the value differs from it.
#[tokio::test]
async fn broker_set_defaults_are_static_broker_config() {
    const SOURCE_STATIC_BROKER: i8 = 4;
    let broker = TestBroker::start_with(|config| {
        // As `--log-retention-ms 3600000` resolves.
        config
            .topic_defaults
            .insert("retention.ms".to_owned(), "3600000".to_owned());
        (config.static_unit_configs).insert("log.retention.ms", "3600000".to_owned());
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
    let roll_ms = (result.configs.iter())
        .find(|c| c.name.as_str() == "log.roll.ms")
        .unwrap();
    assert_eq!(
        (roll_ms.value.as_deref(), roll_ms.config_source),
        (None, SOURCE_DEFAULT)
    );
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
