//! `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` (KIP-937) over TCP:
//! set by CreateTopics, IncrementalAlterConfigs and AlterConfigs and as a broker-wide
//! default, shown by DescribeConfigs, and enforced by Produce: a CreateTime batch too far
//! before or after the broker's clock is INVALID_TIMESTAMP and nothing is appended.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    incremental_alter_configs_request, CreateTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::records::batch_at;
use runnel_tests::requests::{alter_configs, creatable_topic, list_offsets, produce};
use runnel_tests::{TestBroker, TestClient};

const HOUR_MS: i64 = 3_600_000;
const INVALID_TIMESTAMP: i16 = 32;
const RESOURCE_TOPIC: i8 = 2;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const OP_SET: i8 = 0;
const BEFORE: &str = "message.timestamp.before.max.ms";
const AFTER: &str = "message.timestamp.after.max.ms";

fn name(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    since_epoch.as_millis() as i64
}

/// One CreateTime batch of two records stamped `at_ms` and `at_ms + 1`.
fn stamped(at_ms: i64) -> Bytes {
    batch_at(&[(None, Some(b"a")), (None, Some(b"b"))], at_ms)
}

/// Produces at `at_ms` (relative to now) and returns the error code.
async fn produce_at(client: &mut TestClient, topic: &str, at_ms: i64) -> i16 {
    let response = client.send(produce(topic, 0, stamped(at_ms), 1), 9).await;
    response.responses[0].partition_responses[0].error_code
}

async fn end_offset(client: &mut TestClient, topic: &str) -> i64 {
    client.send(list_offsets(topic, 0, -1), 7).await.topics[0].partitions[0].offset
}

/// (value, source) of `key` for `topic`, at DescribeConfigs v4.
async fn described(client: &mut TestClient, topic: &str, key: &str) -> (String, i8) {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(name(topic))
        .with_configuration_keys(Some(vec![name(key)]));
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    let result = client.send(request, 4).await.results.remove(0);
    assert_eq!(result.error_code, 0);
    let config = &result.configs[0];
    assert_eq!(config.name.as_str(), key);
    (
        config.value.as_ref().unwrap().to_string(),
        config.config_source,
    )
}

async fn create(client: &mut TestClient, topic: &str, configs: &[(&str, &str)]) {
    let wanted = creatable_topic(topic, 1, configs);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![wanted])
        .with_timeout_ms(30_000);
    let response = client.send(request, 5).await;
    assert_eq!(response.topics[0].error_code, 0, "create {topic}");
}

async fn set_incrementally(client: &mut TestClient, topic: &str, key: &str, value: &str) -> i16 {
    let config = incremental_alter_configs_request::AlterableConfig::default()
        .with_name(name(key))
        .with_config_operation(OP_SET)
        .with_value(Some(name(value)));
    let resource = incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(name(topic))
        .with_configs(vec![config]);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    client.send(request, 1).await.responses[0].error_code
}

/// AlterConfigs replaces every override of the topic with `configs`.
async fn replace(client: &mut TestClient, topic: &str, configs: &[(&str, &str)]) -> i16 {
    client
        .send(alter_configs(topic, configs), 1)
        .await
        .responses[0]
        .error_code
}

#[tokio::test]
async fn produce_outside_the_timestamp_bounds_is_invalid_timestamp() {
    // Broker-wide: nothing more than an hour ahead of the broker's clock.
    let broker = TestBroker::start_with(|config| {
        config
            .topic_defaults
            .insert(AFTER.to_owned(), HOUR_MS.to_string());
    })
    .await;
    let mut client = broker.client().await;
    // Topic: nothing more than an hour behind either.
    create(&mut client, "bounded", &[(BEFORE, "3600000")]).await;
    assert_eq!(
        described(&mut client, "bounded", BEFORE).await,
        ("3600000".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
    // The operator's broker-wide value, not Kafka's built-in default.
    assert_eq!(
        described(&mut client, "bounded", AFTER).await,
        ("3600000".to_owned(), SOURCE_STATIC_BROKER)
    );

    let now = now_ms();
    assert_eq!(produce_at(&mut client, "bounded", now).await, 0);
    assert_eq!(end_offset(&mut client, "bounded").await, 2);
    for at_ms in [now - 2 * HOUR_MS, now + 2 * HOUR_MS, 0] {
        let code = produce_at(&mut client, "bounded", at_ms).await;
        assert_eq!(code, INVALID_TIMESTAMP, "at {at_ms}");
        assert_eq!(code, ResponseError::InvalidTimestamp.code());
    }
    assert_eq!(
        end_offset(&mut client, "bounded").await,
        2,
        "nothing appended"
    );

    // A topic without its own bound: old timestamps pass, the broker default still holds.
    create(&mut client, "loose", &[]).await;
    assert_eq!(
        described(&mut client, "loose", BEFORE).await,
        (i64::MAX.to_string(), SOURCE_DEFAULT)
    );
    assert_eq!(produce_at(&mut client, "loose", now - 2 * HOUR_MS).await, 0);
    let ahead = produce_at(&mut client, "loose", now + 2 * HOUR_MS).await;
    assert_eq!(ahead, INVALID_TIMESTAMP);

    // IncrementalAlterConfigs tightens it; a bad value is refused.
    assert_eq!(
        set_incrementally(&mut client, "loose", BEFORE, "60000").await,
        0
    );
    let refused = set_incrementally(&mut client, "loose", BEFORE, "-1").await;
    assert_eq!(refused, ResponseError::InvalidConfig.code());
    assert_eq!(
        produce_at(&mut client, "loose", now - 2 * HOUR_MS).await,
        INVALID_TIMESTAMP
    );

    // AlterConfigs replaces the overrides: "bounded" now allows a day ahead, and its
    // "before" bound is back to the default (none).
    assert_eq!(
        replace(&mut client, "bounded", &[(AFTER, "86400000")]).await,
        0
    );
    assert_eq!(
        described(&mut client, "bounded", AFTER).await,
        ("86400000".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(
        produce_at(&mut client, "bounded", now + 2 * HOUR_MS).await,
        0
    );
    assert_eq!(produce_at(&mut client, "bounded", 0).await, 0);
    assert_eq!(end_offset(&mut client, "bounded").await, 6);

    // LogAppendTime topics take the broker's time anyway: the bounds do not apply.
    create(
        &mut client,
        "appended",
        &[("message.timestamp.type", "LogAppendTime"), (BEFORE, "0")],
    )
    .await;
    assert_eq!(produce_at(&mut client, "appended", 0).await, 0);
}
