//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs over TCP at the lowest and
//! highest versions we advertise, one file per concept: what describe reports (sources,
//! broker defaults, DescribeConfigs v0's wire format byte by byte, every Kafka 4 topic
//! config), alter → describe round trips (surviving a restart, concurrent alters), and
//! topic configs taking effect on the log. The helpers below are shared by all of them.

#![allow(clippy::unwrap_used)]

mod alter_round_trips;
mod describe_results;
mod topic_effects;

use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::CreateTopicsRequest;
use runnel_tests::requests::{
    alter_configs, creatable_topic, describe_configs, incremental_alter_configs, metadata,
};
use runnel_tests::TestClient;

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

/// Creates `name` (one partition) with `configs`; answers the error code.
async fn create_with(client: &mut TestClient, name: &str, configs: &[(&str, &str)]) -> i16 {
    let create = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic(name, 1, configs)])
        .with_timeout_ms(30_000);
    client.send(create, 7).await.topics[0].error_code
}
