//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs over TCP at the lowest and
//! highest versions we advertise: alter → describe reflects it, and survives a restart;
//! DescribeConfigs v0's wire format byte by byte.

#![allow(clippy::unwrap_used)]

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    incremental_alter_configs_request, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::requests::{alter_configs, metadata};
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

fn name(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

async fn describe(
    client: &mut TestClient,
    version: i16,
    resource_type: i8,
    resource: &str,
    synonyms: bool,
) -> DescribeConfigsResult {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(name(resource))
        .with_configuration_keys(None);
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![resource])
        .with_include_synonyms(synonyms)
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
    let configs = ops
        .iter()
        .map(|(key, op, value)| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(name(key))
                .with_config_operation(*op)
                .with_value(value.map(name))
        })
        .collect();
    let wanted = incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(name(resource))
        .with_configs(configs);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![wanted]);
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
        assert_eq!(retention.synonyms[0].name.as_str(), "log.retention.ms");
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
        assert!(result.configs.iter().all(|c| c.read_only));
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
    let broker_op = [("log.retention.ms", SET, Some("5"))];
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
