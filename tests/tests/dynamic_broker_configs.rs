//! Dynamic broker configs (Kafka's KIP-226) over TCP: IncrementalAlterConfigs and
//! AlterConfigs of the BROKER resource ("" the cluster-wide default, the node id this
//! broker's own) change the topic defaults live: topics without an override describe the
//! new value with its dynamic source and retention acts on it; this broker's value wins
//! over the cluster default; deleting restores; a restart keeps them; refused names and
//! values and validate_only change nothing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{alter_configs_request, AlterConfigsRequest, CreateTopicsRequest};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::records::{batch_at, now_ms};
use runnel_tests::requests::{
    creatable_topic, describe_configs, incremental_alter_configs, list_offsets, produce,
};
use runnel_tests::{TestBroker, TestClient};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_DEFAULT: i8 = 5;
/// One operation: broker config name, op, value.
type Op<'a> = (&'a str, i8, Option<&'a str>);

const SET: i8 = 0;
const DELETE: i8 = 1;
const EARLIEST: i64 = -2;
/// Kafka's `log.retention.hours` default, in ms.
const RETENTION_DEFAULT_MS: &str = "604800000";

fn name(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

async fn incremental(
    client: &mut TestClient,
    resource: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> i16 {
    let request =
        incremental_alter_configs(BROKER, resource, ops).with_validate_only(validate_only);
    let response = client.send(request, 1).await;
    let answer = &response.responses[0];
    assert_eq!(answer.error_code == 0, answer.error_message.is_none());
    answer.error_code
}

async fn alter_whole(client: &mut TestClient, resource: &str, configs: &[(&str, &str)]) -> i16 {
    let configs = configs
        .iter()
        .map(|(key, value)| {
            alter_configs_request::AlterableConfig::default()
                .with_name(name(key))
                .with_value(Some(name(value)))
        })
        .collect();
    let wanted = alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(BROKER)
        .with_resource_name(name(resource))
        .with_configs(configs);
    let request = AlterConfigsRequest::default().with_resources(vec![wanted]);
    client.send(request, 2).await.responses[0].error_code
}

async fn describe(
    client: &mut TestClient,
    resource_type: i8,
    resource: &str,
) -> DescribeConfigsResult {
    let request = describe_configs(resource_type, resource, true);
    let result = client.send(request, 4).await.results.remove(0);
    assert_eq!(result.error_code, 0);
    result
}

/// (value, source, synonym sources) of one key; `None` when not listed.
async fn entry(
    client: &mut TestClient,
    resource_type: i8,
    resource: &str,
    key: &str,
) -> Option<(String, i8, Vec<i8>)> {
    let result = describe(client, resource_type, resource).await;
    let config = result.configs.iter().find(|c| c.name.as_str() == key)?;
    Some((
        config.value.as_ref().unwrap().to_string(),
        config.config_source,
        config.synonyms.iter().map(|s| s.source).collect(),
    ))
}

/// `key`'s value and source as the resource describes it (it must be listed).
async fn value_source(
    client: &mut TestClient,
    resource_type: i8,
    resource: &str,
    key: &str,
) -> (String, i8) {
    let (value, source, _) = entry(client, resource_type, resource, key)
        .await
        .unwrap_or_else(|| panic!("{key} is not described"));
    (value, source)
}

/// Each resource's description, in order.
async fn describe_each(
    client: &mut TestClient,
    resources: &[(i8, &str)],
) -> Vec<DescribeConfigsResult> {
    let mut described = Vec::with_capacity(resources.len());
    for &(resource_type, resource) in resources {
        described.push(describe(client, resource_type, resource).await);
    }
    described
}

async fn create(client: &mut TestClient, topic: &str, configs: &[(&str, &str)]) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic(topic, 1, configs)])
        .with_timeout_ms(30_000);
    assert_eq!(client.send(request, 7).await.topics[0].error_code, 0);
}

async fn earliest(client: &mut TestClient, topic: &str) -> i64 {
    let response = client.send(list_offsets(topic, 0, EARLIEST), 7).await;
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    response.topics[0].partitions[0].offset
}

#[tokio::test]
async fn cluster_default_is_described_and_drives_retention() {
    let broker = TestBroker::start_with(|c| c.retention_check_interval_ms = 50).await;
    let mut client = broker.client().await;
    // Small segments so the records an hour old fill sealed ones retention may delete.
    create(&mut client, "plain", &[("segment.bytes", "100")]).await;
    create(
        &mut client,
        "kept",
        &[("segment.bytes", "100"), ("retention.ms", "-1")],
    )
    .await;
    let value = [b'v'; 120];
    for topic in ["plain", "kept"] {
        for i in 0..3 {
            let batch = batch_at(&[(None, Some(value.as_slice()))], now_ms() - 3_600_000 + i);
            let response = client.send(produce(topic, 0, batch, -1), 9).await;
            assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        earliest(&mut client, "plain").await,
        0,
        "the default keeps a week"
    );

    let ops = [("log.retention.ms", SET, Some("60000"))];
    assert_eq!(incremental(&mut client, "", &ops, false).await, 0);
    let (value, source, synonyms) = entry(&mut client, TOPIC, "plain", "retention.ms")
        .await
        .unwrap();
    assert_eq!(
        (value.as_str(), source),
        ("60000", SOURCE_DYNAMIC_DEFAULT_BROKER)
    );
    assert_eq!(
        synonyms,
        vec![SOURCE_DYNAMIC_DEFAULT_BROKER, SOURCE_DEFAULT]
    );
    assert_eq!(
        value_source(&mut client, TOPIC, "kept", "retention.ms").await,
        (String::from("-1"), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(
        value_source(&mut client, BROKER, "", "log.retention.ms").await,
        (String::from("60000"), SOURCE_DYNAMIC_DEFAULT_BROKER)
    );
    // The HTTP admin API shows the topic's effective config: the dynamic default.
    let (status, body) = broker.http_get("/v1/topics/plain").await;
    assert_eq!(status, 200);
    let topic: serde_json::Value = serde_json::from_str(&body).unwrap();
    let retention = &topic["configs"]["retention.ms"];
    assert_eq!(retention["value"], "60000", "{retention}");
    assert_eq!(retention["is_override"], false);

    // Retention of the topic without an override now deletes the hour-old segments.
    let mut start = 0;
    for _ in 0..200 {
        start = earliest(&mut client, "plain").await;
        if start > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(start > 0, "retention did not apply the dynamic default");
    assert_eq!(earliest(&mut client, "kept").await, 0);
}

#[tokio::test]
async fn this_brokers_value_wins_deletes_restore_and_a_restart_keeps() {
    let broker = TestBroker::start().await;
    let me = broker.context().node_id.to_string();
    let mut client = broker.client().await;
    create(&mut client, "t", &[]).await;
    let set = |value| [("log.retention.ms", SET, Some(value))];
    assert_eq!(incremental(&mut client, "", &set("60000"), false).await, 0);
    assert_eq!(
        incremental(&mut client, &me, &set("120000"), false).await,
        0
    );
    assert_eq!(
        value_source(&mut client, BROKER, &me, "log.retention.ms").await,
        (String::from("120000"), SOURCE_DYNAMIC_BROKER)
    );
    let order = vec![
        SOURCE_DYNAMIC_BROKER,
        SOURCE_DYNAMIC_DEFAULT_BROKER,
        SOURCE_DEFAULT,
    ];
    let mine = entry(&mut client, BROKER, &me, "log.retention.ms")
        .await
        .unwrap();
    assert_eq!(mine.2, order, "synonyms in Kafka's order");
    assert_eq!(
        value_source(&mut client, TOPIC, "t", "retention.ms").await,
        (String::from("120000"), SOURCE_DYNAMIC_BROKER)
    );
    let context = broker.context().clone();
    assert_eq!(
        context.logs.topic("t").unwrap().config.retention_ms,
        120_000
    );
    drop((client, context));

    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(
        value_source(&mut client, TOPIC, "t", "retention.ms").await,
        (String::from("120000"), SOURCE_DYNAMIC_BROKER)
    );
    let listed = entry(&mut client, BROKER, "", "log.retention.ms")
        .await
        .unwrap();
    assert_eq!(listed.0, "60000");

    let delete = [("log.retention.ms", DELETE, None)];
    assert_eq!(incremental(&mut client, &me, &delete, false).await, 0);
    assert_eq!(
        value_source(&mut client, TOPIC, "t", "retention.ms").await,
        (String::from("60000"), SOURCE_DYNAMIC_DEFAULT_BROKER)
    );
    assert_eq!(incremental(&mut client, "", &delete, false).await, 0);
    assert_eq!(
        value_source(&mut client, TOPIC, "t", "retention.ms").await,
        (String::from(RETENTION_DEFAULT_MS), SOURCE_DEFAULT)
    );
    assert!(describe(&mut client, BROKER, "").await.configs.is_empty());
    let context = broker.context();
    assert_eq!(
        context.logs.topic("t").unwrap().config.retention_ms,
        604_800_000
    );
}

#[tokio::test]
async fn refusals_and_validate_only_change_nothing() {
    let broker = TestBroker::start().await;
    let me = broker.context().node_id.to_string();
    let mut client = broker.client().await;
    create(&mut client, "t", &[]).await;
    let invalid_request = ResponseError::InvalidRequest.code();
    let invalid_config = ResponseError::InvalidConfig.code();
    let other = (broker.context().node_id + 1).to_string();
    let cases: [(&str, Op<'_>, i16); 6] = [
        (
            &other,
            ("log.retention.ms", SET, Some("1")),
            invalid_request,
        ),
        ("", ("num.partitions", SET, Some("2")), invalid_request),
        (&me, ("node.id", SET, Some("2")), invalid_request),
        ("", ("no.such.config", SET, Some("2")), invalid_request),
        ("", ("log.retention.ms", SET, Some("soon")), invalid_request),
        ("", ("log.segment.bytes", 2, Some("1")), invalid_config),
    ];
    for (resource, op, code) in cases {
        assert_eq!(
            incremental(&mut client, resource, &[op], false).await,
            code,
            "{op:?}"
        );
    }
    let ops = [("log.retention.ms", SET, Some("1000"))];
    assert_eq!(incremental(&mut client, "", &ops, true).await, 0);
    assert!(describe(&mut client, BROKER, "").await.configs.is_empty());
    assert_eq!(
        value_source(&mut client, TOPIC, "t", "retention.ms").await,
        (String::from(RETENTION_DEFAULT_MS), SOURCE_DEFAULT)
    );

    // AlterConfigs replaces the whole dynamic set of the resource.
    assert_eq!(
        alter_whole(&mut client, "", &[("log.roll.ms", "60000")]).await,
        0
    );
    assert_eq!(
        alter_whole(&mut client, "", &[("log.retention.ms", "5000")]).await,
        0
    );
    assert!(entry(&mut client, BROKER, "", "log.roll.ms")
        .await
        .is_none());
    assert_eq!(
        value_source(&mut client, TOPIC, "t", "retention.ms").await,
        (String::from("5000"), SOURCE_DYNAMIC_DEFAULT_BROKER)
    );
    assert_eq!(alter_whole(&mut client, &other, &[]).await, invalid_request);
    assert_eq!(
        alter_whole(&mut client, "", &[("broker.id", "3")]).await,
        invalid_request
    );
    let topic = entry(&mut client, TOPIC, "t", "retention.ms")
        .await
        .unwrap();
    assert_eq!(topic.0, "5000");
}

/// A default that an existing topic's own overrides cannot stand on (its
/// min.compaction.lag.ms above the new max.compaction.lag.ms) is refused with
/// INVALID_REQUEST (Kafka's KAFKA-13609 code for a broker config it cannot apply), by both
/// alter APIs, validate_only or not, and every description stays as it was.
#[tokio::test]
async fn a_default_that_breaks_a_topics_overrides_is_refused() {
    let broker = TestBroker::start().await;
    let me = broker.context().node_id.to_string();
    let mut client = broker.client().await;
    create(&mut client, "lagged", &[("min.compaction.lag.ms", "60000")]).await;
    create(&mut client, "plain", &[]).await;
    let resources = [
        (TOPIC, "lagged"),
        (TOPIC, "plain"),
        (BROKER, ""),
        (BROKER, &me),
    ];
    let before = describe_each(&mut client, &resources).await;
    assert!(before[2].configs.is_empty(), "no cluster default yet");

    let breaking = "log.cleaner.max.compaction.lag.ms";
    let invalid_request = ResponseError::InvalidRequest.code();
    for resource in ["", me.as_str()] {
        for validate_only in [true, false] {
            let ops = [(breaking, SET, Some("1000"))];
            let code = incremental(&mut client, resource, &ops, validate_only).await;
            assert_eq!(code, invalid_request, "{resource:?} {validate_only}");
        }
        let whole = [(breaking, "1000"), ("log.retention.ms", "5000")];
        assert_eq!(
            alter_whole(&mut client, resource, &whole).await,
            invalid_request
        );
    }
    assert_eq!(describe_each(&mut client, &resources).await, before);

    // The same value is accepted once it leaves the topic's overrides valid.
    let fits = [(breaking, SET, Some("60000"))];
    assert_eq!(incremental(&mut client, "", &fits, false).await, 0);
}

/// GET `path` as JSON (it must answer 200).
async fn http_json(broker: &TestBroker, path: &str) -> serde_json::Value {
    let (status, body) = broker.http_get(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// (value, source) of a topic's config in the HTTP admin API's view of the topic.
async fn http_topic_config(broker: &TestBroker, topic: &str, key: &str) -> (String, String) {
    let topic = http_json(broker, &format!("/v1/topics/{topic}")).await;
    let config = &topic["configs"][key];
    let text = |field: &str| config[field].as_str().unwrap_or_else(|| panic!("{config}"));
    (text("value").to_owned(), text("source").to_owned())
}

/// The dynamic broker configs `/v1/broker` lists.
async fn dynamic_configs(broker: &TestBroker) -> serde_json::Value {
    http_json(broker, "/v1/broker").await["dynamic_configs"].clone()
}

/// The HTTP admin API follows dynamic values: a topic's config shows the value in force and
/// its source as DescribeConfigs names it, `/v1/broker` lists each dynamic set, and a
/// deleted dynamic value leaves both views.
#[tokio::test]
async fn http_admin_api_shows_dynamic_values_and_their_sources() {
    let broker = TestBroker::start().await;
    let me = broker.context().node_id.to_string();
    let mut client = broker.client().await;
    create(&mut client, "t", &[]).await;
    create(&mut client, "own", &[("retention.ms", "-1")]).await;
    let set = |value| [("log.retention.ms", SET, Some(value))];
    let delete = [("log.retention.ms", DELETE, None)];
    let retention = |value: &str, source: &str| (value.to_owned(), source.to_owned());

    assert_eq!(incremental(&mut client, "", &set("60000"), false).await, 0);
    assert_eq!(
        http_topic_config(&broker, "t", "retention.ms").await,
        retention("60000", "DYNAMIC_DEFAULT_BROKER_CONFIG")
    );
    assert_eq!(
        http_topic_config(&broker, "own", "retention.ms").await,
        retention("-1", "DYNAMIC_TOPIC_CONFIG")
    );
    assert_eq!(
        incremental(&mut client, &me, &set("120000"), false).await,
        0
    );
    assert_eq!(
        http_topic_config(&broker, "t", "retention.ms").await,
        retention("120000", "DYNAMIC_BROKER_CONFIG")
    );
    assert_eq!(
        dynamic_configs(&broker).await,
        serde_json::json!({
            "cluster": { "retention.ms": "60000" },
            "this_broker": { "retention.ms": "120000" },
        })
    );
    // A dynamic default is not one of the topic's own overrides.
    let listed = http_json(&broker, "/v1/topics").await;
    let t = listed["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "t");
    assert_eq!(t.unwrap()["overrides"], serde_json::json!({}));

    assert_eq!(incremental(&mut client, &me, &delete, false).await, 0);
    assert_eq!(
        http_topic_config(&broker, "t", "retention.ms").await,
        retention("60000", "DYNAMIC_DEFAULT_BROKER_CONFIG")
    );
    assert_eq!(
        dynamic_configs(&broker).await["this_broker"],
        serde_json::json!({})
    );
    assert_eq!(incremental(&mut client, "", &delete, false).await, 0);
    assert_eq!(
        http_topic_config(&broker, "t", "retention.ms").await,
        retention(RETENTION_DEFAULT_MS, "DEFAULT_CONFIG")
    );
    assert_eq!(
        dynamic_configs(&broker).await,
        serde_json::json!({ "cluster": {}, "this_broker": {} })
    );
}
